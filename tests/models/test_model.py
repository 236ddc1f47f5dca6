"""torchfit.Model: wrapping, devices, input routing, compile, metrics, steps, weights."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.models import model as model_module


def _data(n=16, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, features), dtype=np.float32)
    y = (x @ np.arange(1, features + 1, dtype=np.float32))[:, None]
    return x, y


def _linear_model(**compile_kwargs):
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(**{"optimizer": "sgd", "loss": "mse", **compile_kwargs})
    return model


# -------------------------------------------------------------- wrapping
def test_model_is_a_module_that_trains_the_wrapped_module_in_place():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    before = {key: value.clone() for key, value in net.state_dict().items()}
    model = torchfit.Model(net, device="cpu")
    assert isinstance(model, nn.Module)
    assert model.module is net
    model.compile(optimizer="sgd", loss="mse")
    model.fit(*_data(), epochs=2, verbose=0)
    # The user's own module holds the trained weights.
    assert not torch.equal(net.state_dict()["0.weight"], before["0.weight"])
    assert set(model.module.state_dict()) == set(net.state_dict())
    for key, value in net.state_dict().items():
        assert torch.equal(model.state_dict()[f"module.{key}"], value)
    assert [p is q for p, q in zip(model.parameters(), net.parameters())] == [True] * 4


def test_model_rejects_a_module_that_is_no_nn_module():
    with pytest.raises(
        TypeError, match=r"`module` must be a torch.nn.Module .* Received: module of type function"
    ):
        torchfit.Model(lambda x: x)


def test_model_without_module_or_forward_explains_itself():
    with pytest.raises(NotImplementedError, match=r"must define forward\(\)"):
        torchfit.Model(device="cpu")(torch.zeros(1, 3))


def test_subclass_writes_its_own_forward():
    class Net(torchfit.Model):
        def __init__(self):
            super().__init__(device="cpu")
            self.dense = nn.Linear(3, 1)

        def forward(self, x):
            return self.dense(x)

    torch.manual_seed(0)
    model = Net()
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.1), loss="mse")
    x, y = _data(64)
    history = model.fit(x, y, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(x, verbose=0).shape == (64, 1)


# ---------------------------------------------------------------- device
def test_default_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    assert model_module.default_device() == torch.device("cpu")
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: True)
        assert model_module.default_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert model_module.default_device() == torch.device("cuda", 0)


def test_explicit_device_and_to_are_honoured():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    assert model.device == torch.device("cpu")
    assert next(model.module.parameters()).device == torch.device("cpu")
    assert model.to("cpu") is model
    assert model.device == torch.device("cpu")
    # .to(dtype) alone keeps the device choice.
    model.to(torch.float64)
    assert model.device == torch.device("cpu")
    assert next(model.parameters()).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_moves_batches_and_keeps_metrics_there():
    model = torchfit.Model(nn.Linear(3, 1)).to("cuda")
    assert model.device.type == "cuda"
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    assert next(model.module.parameters()).device.type == "cuda"
    assert all(m.device.type == "cuda" for m in model.metrics)
    assert model.predict(x, verbose=0).shape == (16, 1)


def test_cpu_method_sets_the_device():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu").cpu()
    assert model.device == torch.device("cpu")


# --------------------------------------------------------- input routing
class _TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.image = nn.Linear(3, 1)
        self.meta = nn.Linear(2, 1)

    def forward(self, image, meta):
        return self.image(image) + self.meta(meta)


def test_a_list_input_is_spread_over_forward_parameters():
    model = torchfit.Model(_TwoInputs(), device="cpu")
    image, meta = torch.ones(4, 3), torch.ones(4, 2)
    expected = model.module(image, meta)
    torch.testing.assert_close(model([image, meta]), expected)
    torch.testing.assert_close(model((image, meta)), expected)
    torch.testing.assert_close(model({"meta": meta, "image": image}), expected)
    torch.testing.assert_close(model(image, meta), expected)


def test_a_dict_key_that_is_no_forward_parameter_is_an_error():
    model = torchfit.Model(_TwoInputs(), device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(
        ValueError,
        match=r"The input dict has keys \['imag'\] that are not parameters"
        r" of forward\(\). forward\(\) accepts: \['image', 'meta'\]",
    ):
        model.fit(
            {"imag": np.ones((4, 3), "float32"), "meta": np.ones((4, 2), "float32")},
            np.ones((4, 1), "float32"),
            verbose=0,
        )


def test_dict_input_reaches_var_keyword_forward():
    class Kwargs(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(3, 1)

        def forward(self, **inputs):
            return self.dense(inputs["a"] + inputs["b"])

    model = torchfit.Model(Kwargs(), device="cpu")
    out = model({"a": torch.ones(2, 3), "b": torch.ones(2, 3)})
    assert out.shape == (2, 1)


def test_one_input_forward_gets_a_list_input_whole():
    class TakesList(nn.Module):
        def forward(self, xs):
            return xs[0] + xs[1]

    model = torchfit.Model(TakesList(), device="cpu")
    torch.testing.assert_close(model([torch.ones(2), torch.ones(2)]), torch.full((2,), 2.0))


def test_training_flag_is_passed_only_to_a_forward_that_accepts_it():
    seen = []

    class Flag(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(3, 1)

        def forward(self, x, training=None):
            seen.append((training, self.training))
            return self.dense(x)

    model = torchfit.Model(Flag(), device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data(4)
    model.fit(x, y, batch_size=4, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    # No build pass before the first step: fit trains, evaluate/predict do not.
    assert seen == [(True, True), (False, False), (False, False)]

    plain = torchfit.Model(nn.Linear(3, 1), device="cpu")
    assert plain(torch.ones(1, 3), training=True).shape == (1, 1)


def test_fit_evaluate_predict_set_train_and_eval_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data(8)
    model.fit(x, y, verbose=0)
    assert not net.training  # fit leaves the model in eval mode, as Keras's torch trainer does
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(first, model.predict(x, verbose=0))  # dropout off


# ------------------------------------------------------- calls and modes
def _bn_dropout_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 1), nn.Dropout(0.5)
    )


def test_training_false_runs_one_call_in_eval_mode_and_restores_every_submodule():
    net = _bn_dropout_net()
    model = torchfit.Model(net, device="cpu")
    net[4].eval()  # a part the user keeps in eval mode stays so
    x = torch.randn(16, 3)
    statistics = net[1].running_mean.clone()
    first, second = model(x, training=False), model(x, training=False)
    torch.testing.assert_close(first, second, rtol=0, atol=0)  # dropout off
    torch.testing.assert_close(
        net[1].running_mean, statistics, rtol=0, atol=0
    )  # BN statistics kept
    assert [m.training for m in (model, net, net[1], net[2], net[4])] == [
        True,
        True,
        True,
        True,
        False,
    ]
    # A plain call keeps the current (train) mode: dropout on, statistics updated.
    assert not torch.equal(model(x), first)
    assert not torch.equal(net[1].running_mean, statistics)


def test_training_true_runs_one_call_in_train_mode_and_restores_eval():
    net = _bn_dropout_net()
    model = torchfit.Model(net, device="cpu")
    model.eval()
    statistics = net[1].running_mean.clone()
    model(torch.randn(16, 3), training=True)
    assert not torch.equal(net[1].running_mean, statistics)
    assert not any(module.training for module in model.modules())


def test_the_mode_is_restored_when_the_call_fails():
    net = _bn_dropout_net()
    model = torchfit.Model(net, device="cpu")
    with pytest.raises(RuntimeError):
        model(torch.zeros(4, 5), training=False)
    assert all(module.training for module in model.modules())


def test_training_false_sets_eval_mode_also_for_a_forward_that_takes_training():
    seen = []

    class Flag(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(3, 1)

        def forward(self, x, training=None):
            seen.append((training, self.training))
            return self.dense(x)

    model = torchfit.Model(Flag(), device="cpu")
    model(torch.ones(1, 3), training=False)
    model.eval()
    model(torch.ones(1, 3), training=True)
    assert seen == [(False, False), (True, True)]
    assert not model.training


def test_a_sub_model_called_with_training_false_stays_in_inference_while_the_outer_trains():
    # The transfer-learning pattern: `base_model(x, training=False)` inside a model that trains.
    base = torchfit.Model(
        nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Dropout(0.5)), device="cpu"
    )
    for parameter in base.parameters():
        parameter.requires_grad_(False)
    dropout_modes = []
    base.module[2].register_forward_hook(
        lambda module, args, output: dropout_modes.append(module.training)
    )

    class Outer(torchfit.Model):
        def __init__(self):
            super().__init__(device="cpu")
            self.base = base
            self.head = nn.Linear(8, 1)

        def forward(self, x):
            return self.head(self.base(x, training=False))

    torch.manual_seed(0)
    model = Outer()
    model.compile(optimizer="sgd", loss="mse")
    statistics = [t.clone() for t in (base.module[1].running_mean, base.module[1].running_var)]
    head = model.head.weight.detach().clone()
    model.fit(*_data(16), batch_size=4, epochs=2, verbose=0)
    assert dropout_modes == [False] * 8
    torch.testing.assert_close(base.module[1].running_mean, statistics[0], rtol=0, atol=0)
    torch.testing.assert_close(base.module[1].running_var, statistics[1], rtol=0, atol=0)
    assert not torch.equal(model.head.weight, head)  # the outer model did train


# ------------------------------------------------------- first forward pass
def test_a_bool_input_is_cast_to_the_weights_dtype():
    x, y = _data(16)
    flags = x > 0.5
    model = _linear_model()
    history = model.fit(flags, y, verbose=0)  # was: "mat1 and mat2 must have the same dtype"
    assert np.isfinite(history.history["loss"][0])
    np.testing.assert_array_equal(
        model.predict(flags, verbose=0), model.predict(flags.astype("float32"), verbose=0)
    )


def test_an_integer_input_is_kept_for_an_embedding_and_named_when_forward_fails():
    ids = np.arange(16).reshape(8, 2) % 10
    embedding = torchfit.Model(nn.Sequential(nn.Embedding(10, 2), nn.Flatten()), device="cpu")
    assert embedding.predict(ids, verbose=0).shape == (8, 4)
    with pytest.raises(
        RuntimeError,
        match=r"Input 0 has dtype int64 while the model's weights are"
        r" float32: cast it to a float dtype",
    ):
        _linear_model().fit(np.arange(48).reshape(16, 3), np.zeros((16, 1), "float32"), verbose=0)


def test_a_wrong_feature_count_is_retold_with_every_input_shape_and_dtype():
    x, y = _data(16, features=5)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied") as caught:
        _linear_model().fit(x, y, verbose=0)
    message = str(caught.value)
    assert (
        "The model's first forward pass failed. forward(input) received: input 0: float32 (16, 5)."
    ) in message
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_list_inputs_in_the_wrong_order_are_retold_in_their_order():
    model = torchfit.Model(_TwoInputs(), device="cpu")
    with pytest.raises(
        RuntimeError,
        match=r"forward\(image, meta\) received \(positional inputs in"
        r" this order\): input 0: float32 \(4, 2\); input 1: float32 \(4, 3\)\.",
    ):
        model([torch.ones(4, 2), torch.ones(4, 3)])
    model([torch.ones(4, 3), torch.ones(4, 2)])
    # Only the first successful call is checked: later calls pay nothing and raise as torch does.
    with pytest.raises(RuntimeError) as caught:
        model([torch.ones(4, 2), torch.ones(4, 3)])
    assert "first forward pass" not in str(caught.value)


# --------------------------------------------------------------- compile
def test_compile_resolves_string_ids_objects_and_torch_optimizers():
    model = _linear_model(optimizer="adam")
    assert isinstance(model.optimizer, torchfit.optimizers.Adam)
    model.compile(optimizer=torchfit.optimizers.RMSprop(learning_rate=0.5), loss="mse")
    assert isinstance(model.optimizer, torchfit.optimizers.RMSprop)
    assert model.optimizer.learning_rate == pytest.approx(0.5)
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss=nn.MSELoss())
    assert isinstance(model.optimizer, torch.optim.SGD)
    model.compile(optimizer=torch.optim.Adam, loss="mse")
    assert isinstance(model.optimizer, torch.optim.Adam)
    assert {id(p) for p in model.optimizer.param_groups[0]["params"]} == {
        id(p) for p in model.parameters()
    }
    model.compile(optimizer=torchfit.optimizers.SGD, loss="mse")
    assert isinstance(model.optimizer, torchfit.optimizers.SGD)
    model.fit(*_data(), verbose=0)


def test_a_model_without_trainable_weights_compiles_warns_once_and_changes_nothing():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])  # was: "`params` is empty"
    x, y = _data(16)
    before = [np.array(w, copy=True) for w in model.get_weights()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert [str(w.message) for w in caught].count(
        "The model has no trainable weights: fit() will compute the losses and metrics but"
        " change no weight. Unfreeze parameters (requires_grad=True) and compile() again"
        " to train them."
    ) == 1 and len(caught) == 1
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    predictions = model.predict(x, verbose=0)
    loss, mae = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(float(((predictions - y) ** 2).mean()), rel=1e-5)
    assert history.history["loss"] == [pytest.approx(loss, rel=1e-5)] * 2
    model.compile(optimizer=torch.optim.SGD, loss="mse")  # a torch class cannot be built empty
    assert model.optimizer is None
    model.fit(x, y, verbose=0)


def test_a_weightless_model_that_only_adds_losses_compiles_and_fits():
    class Penalty(nn.Module):
        def forward(self, x):
            torchfit.add_loss((x**2).mean())
            return x

    model = torchfit.Model(Penalty(), device="cpu")
    model.compile()
    x = _data(8)[0]
    history = model.fit(x, batch_size=8, verbose=0)
    assert history.history["loss"] == [pytest.approx(float((x**2).mean()), rel=1e-6)]


def test_an_optimizer_bound_to_another_models_parameters_is_refused():
    first = _linear_model(optimizer=torchfit.optimizers.Adam(name="my_adam"))
    second = torchfit.Model(nn.Linear(3, 1), device="cpu")
    with pytest.raises(
        ValueError,
        match=r"The optimizer 'my_adam' \(Adam\) is already bound to 2 parameters"
        r" that are not in this model \(Model of Linear\)\.",
    ):
        second.compile(optimizer=first.optimizer, loss="mse")
    with pytest.raises(
        ValueError, match=r"The optimizer 'SGD' \(SGD\) is already bound to 2 parameters"
    ):
        second.compile(optimizer=torch.optim.SGD(first.parameters(), lr=0.1), loss="mse")
    # Its own parameters, or a part of them, are fine.
    head_only = torch.optim.SGD([second.module.weight], lr=0.1)
    second.compile(optimizer=head_only, loss="mse")
    assert second.optimizer is head_only


def test_compile_default_optimizer_is_rmsprop():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(loss="mse")
    assert isinstance(model.optimizer, torchfit.optimizers.RMSprop)


def test_unknown_optimizer_id_lists_the_closest_valid_ones():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    with pytest.raises(ValueError, match=r"adamm.*'adam'"):
        model.compile(optimizer="adamm", loss="mse")


def test_unknown_loss_id_lists_the_closest_valid_ones():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    with pytest.raises(
        ValueError,
        match=r"loss='categorical_crossentropyy'.*Did you mean 'categorical_crossentropy'",
    ):
        model.compile(optimizer="sgd", loss="categorical_crossentropyy")
        model.fit(*_data(), verbose=0)


def test_unknown_metric_id_lists_the_closest_valid_ones():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    with pytest.raises(
        ValueError, match=r"'mean_absolute_eror'.*Did you mean: 'mean_absolute_error'"
    ):
        model.compile(optimizer="sgd", loss="mse", metrics=["mean_absolute_eror"])
        model.fit(*_data(), verbose=0)


def test_compile_again_with_a_new_optimizer_starts_it_fresh():
    model = _linear_model(optimizer="adam")
    model.fit(*_data(), batch_size=8, verbose=0)
    first = model.optimizer
    assert first.iterations == 2
    model.compile(optimizer="adam", loss="mse")
    assert model.optimizer is not first
    assert model.optimizer.iterations == 0
    model.fit(*_data(), batch_size=8, verbose=0)
    assert model.optimizer.iterations == 2
    assert first.iterations == 2


def test_compile_rejects_bad_steps_per_execution_and_loss_weights_without_loss():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    with pytest.raises(
        ValueError,
        match=r"`steps_per_execution` must be a positive integer. Received: steps_per_execution=0",
    ):
        model.compile(loss="mse", steps_per_execution=0)
    with pytest.raises(ValueError, match=r"`loss_weights` was given without a `loss`"):
        model.compile(loss_weights=[1.0])


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "test_on_batch"])
def test_training_verbs_before_compile_are_an_error(method):
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    x, y = _data(4)
    with pytest.raises(
        ValueError, match=rf"You must call `compile\(\)` before calling `{method}\(\)`"
    ):
        getattr(model, method)(x, y)


def test_predict_needs_no_compile():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    assert model.predict(_data(4)[0], verbose=0).shape == (4, 1)


def test_no_loss_and_no_add_loss_is_an_error_when_a_loss_is_needed():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(optimizer="sgd")  # fine: a custom train_step may need none
    with pytest.raises(
        ValueError,
        match=r"No loss to compute. Provide a `loss` argument in `compile\(\)`,"
        r" or add one from the model with `add_loss`",
    ):
        model.fit(*_data(4), verbose=0)


def test_compile_without_loss_trains_on_add_loss():
    class Shrink(torchfit.Model):
        def __init__(self):
            super().__init__(device="cpu")
            self.dense = nn.Linear(3, 1)

        def forward(self, x):
            out = self.dense(x)
            torchfit.add_loss((out**2).mean())
            return out

    torch.manual_seed(0)
    model = Shrink()
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.1))
    history = model.fit(_data(32)[0], epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


# --------------------------------------------------------------- metrics
def test_metrics_are_flat_loss_first_after_compile():
    model = _linear_model(
        metrics=["mean_squared_error", torchfit.metrics.MeanAbsoluteError(name="mae")]
    )
    # Known from compile on, as in Keras (the metrics themselves are built by the first batch).
    assert model.metrics_names == ["loss", "mean_squared_error", "mae"]
    model.fit(*_data(), verbose=0)
    assert model.metrics_names == ["loss", "mean_squared_error", "mae"]
    assert isinstance(model.metrics[0], torchfit.metrics.Mean)


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 1), nn.Linear(3, 1)

    def forward(self, x):
        return self.a(x), self.b(x)


def test_metrics_names_are_known_after_compile_and_after_load_model(tmp_path):
    model = _linear_model(
        metrics=["mae", torchfit.metrics.RootMeanSquaredError()], weighted_metrics=["mae"]
    )
    names = ["loss", "mae", "root_mean_squared_error", "weighted_mae"]
    assert model.metrics_names == names
    x, y = _data(8)
    model.save(tmp_path / "model.pt")
    loaded = torchfit.models.load_model(tmp_path / "model.pt")
    assert loaded.metrics_names == names
    # evaluate before any fit: values in metrics_names order.
    results = loaded.evaluate(x, y, verbose=0)
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert results == [logs[name] for name in names] and loaded.metrics_names == names

    heads = torchfit.Model(_TwoHeads(), output_names=["a", "b"], device="cpu")
    heads.compile(optimizer="sgd", loss=["mse", "mae"], metrics=[["mae"], ["mse", "mae"]])
    expected = heads.metrics_names
    assert expected == ["loss", "a_mae", "b_mse", "b_mae", "a_loss", "b_loss"]
    heads.evaluate(x, [y, y], verbose=0)
    assert heads.metrics_names == expected


def test_metrics_names_of_several_outputs_are_known_once_the_model_was_called():
    heads = torchfit.Model(_TwoHeads(), device="cpu")
    heads.compile(optimizer="sgd", loss="mse", metrics=[["mae"], ["mae"]])
    assert heads.metrics_names == ["loss"]  # which outputs? unknown before a call
    heads(torch.ones(2, 3))
    assert heads.metrics_names == [
        "loss",
        "output_1_mae",
        "output_2_mae",
        "output_1_loss",
        "output_2_loss",
    ]


def test_a_metric_object_compiled_again_starts_from_a_fresh_state():
    x, y = _data(8)
    reused = torchfit.metrics.MeanAbsoluteError(name="mae")
    _linear_model(metrics=[reused]).fit(x, y + 100.0, verbose=0)
    again = _linear_model(metrics=[reused]).fit(x, y, verbose=0).history["mae"]
    fresh = _linear_model(metrics=[torchfit.metrics.MeanAbsoluteError(name="mae")]).fit(
        x, y, verbose=0
    )
    assert again == pytest.approx(fresh.history["mae"], rel=1e-6)


def test_epoch_metrics_are_batch_size_weighted_means_of_the_epoch():
    model = _linear_model(metrics=["mse"])
    x, y = _data(10)
    model.fit(x, y, batch_size=4, verbose=0)  # builds; batches of 4, 4, 2
    predictions = model.predict(x, verbose=0)
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    expected = float(((predictions - y) ** 2).mean())
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["mse"] == pytest.approx(expected, rel=1e-5)


def test_metric_attributes_of_a_subclass_are_tracked_and_reset_each_epoch():
    class Counting(torchfit.Model):
        def __init__(self):
            super().__init__(device="cpu")
            self.dense = nn.Linear(3, 1)
            self.seen = torchfit.metrics.Sum(name="seen")

        def forward(self, x):
            return self.dense(x)

        def train_step(self, data):
            logs = super().train_step(data)
            self.seen.update_state(torch.tensor(float(data[0].shape[0])))
            return {**logs, "seen": self.seen.result()}

    model = Counting()
    model.compile(optimizer="sgd", loss="mse")
    assert model.seen in model.metrics
    history = model.fit(*_data(10), batch_size=4, epochs=3, verbose=0)
    # Reset at each epoch: 10 samples per epoch, not 10, 20, 30.
    assert history.history["seen"] == [10.0, 10.0, 10.0]


def _bias_model(learning_rate=1.0):
    """Linear(1, 1) at zero, trained with MAE towards 100: each SGD step adds the
    learning rate to the bias."""
    module = nn.Linear(1, 1)
    with torch.no_grad():
        module.weight.zero_()
        module.bias.zero_()
    model = torchfit.Model(module, device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=learning_rate), loss="mae")
    return model


@pytest.mark.parametrize("aggregation, expected", [("mean", [1.0, 4.0]), ("sum", [3.0, 12.0])])
def test_add_metric_with_a_callable_logs_its_value_at_every_step(aggregation, expected):
    model = _bias_model()
    model.add_metric(lambda: model.module.bias.detach()[0], name="bias", aggregation=aggregation)
    x, y = np.zeros((6, 1), "float32"), np.full((6, 1), 100.0, "float32")
    history = model.fit(
        x,
        y,
        batch_size=2,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(x[:4], y[:4]),
        validation_batch_size=2,
    )
    # The steps of epoch 1 see the bias at 0, 1, 2; those of epoch 2 at 3, 4, 5.
    assert history.history["bias"] == expected
    validation = [3.0, 6.0] if aggregation == "mean" else [6.0, 12.0]  # 2 steps each
    assert history.history["val_bias"] == validation
    assert model.metrics_names == ["loss", "bias"]


@pytest.mark.parametrize(
    "name, aggregation, match",
    [
        ("bias", "max", r"`aggregation` must be one of .* Received: aggregation='max'"),
        ("", "mean", r"needs a `name`.* Received: name=''"),
    ],
)
def test_add_metric_with_a_callable_checks_name_and_aggregation(name, aggregation, match):
    model = _bias_model()
    with pytest.raises(ValueError, match=match):
        model.add_metric(lambda: 1.0, name=name, aggregation=aggregation)


@pytest.mark.parametrize("one_hot", [False, True], ids=["sparse", "one_hot"])
def test_fit_picks_crossentropy_and_accuracy_from_the_targets_and_outputs_shapes(one_hot):
    # The first step builds the compiled loss and metrics from (targets, outputs):
    # built the other way round, sparse labels would meet a categorical rule.
    torch.manual_seed(0)
    model = torchfit.Model(nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=-1)), device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.SGD(learning_rate=0.0),
        loss="crossentropy",
        metrics=["accuracy"],
    )
    x, labels = _data(12)[0], np.arange(12) % 3
    history = model.fit(
        x, np.eye(3, dtype="float32")[labels] if one_hot else labels, batch_size=12, verbose=0
    )
    probabilities = model.predict(x, verbose=0)
    picked = probabilities[np.arange(12), labels]
    assert history.history["loss"][0] == pytest.approx(float(-np.log(picked).mean()), rel=1e-5)
    accuracy = (probabilities.argmax(1) == labels).mean()
    assert history.history["accuracy"][0] == pytest.approx(accuracy)


def test_fit_weighs_the_weighted_metrics_with_the_sample_weights():
    # A prediction of 2 (learning rate 0) against targets 1 and 8, weighted 1 and 3.
    module = nn.Linear(1, 1)
    with torch.no_grad():
        module.weight.zero_()
        module.bias.fill_(2.0)
    model = torchfit.Model(module, device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.SGD(learning_rate=0.0),
        loss="mae",
        metrics=["mae"],
        weighted_metrics=["mae"],
    )
    x, y = np.zeros((2, 1), "float32"), np.array([[1.0], [8.0]], "float32")
    weights = np.array([1.0, 3.0])
    history = model.fit(
        x, y, sample_weight=weights, batch_size=2, verbose=0, validation_data=(x, y, weights)
    )
    logs = {key: values[0] for key, values in history.history.items()}
    assert logs["mae"] == logs["val_mae"] == pytest.approx(3.5)  # (1 + 6) / 2
    assert logs["weighted_mae"] == logs["val_weighted_mae"] == pytest.approx(4.75)  # (1 + 18) / 4
    assert logs["loss"] == logs["val_loss"] == pytest.approx(9.5)  # (1 + 18) / 2, per sample


def test_custom_train_step_in_keras_3_torch_style():
    class CustomModel(torchfit.Model):
        def __init__(self):
            super().__init__(device="cpu")
            self.dense = nn.Linear(3, 1)

        def forward(self, x):
            return self.dense(x)

        def train_step(self, data):
            x, y = data
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            self.zero_grad()
            loss.backward()
            self.optimizer.step()
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    torch.manual_seed(0)
    model = CustomModel()
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.1), loss="mse", metrics=["mae"])
    x, y = _data(64)
    history = model.fit(x, y, epochs=4, verbose=0)
    assert sorted(history.history) == ["loss", "mae"]
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert model.optimizer.iterations == 8


def test_custom_train_step_with_own_trackers_and_no_compiled_loss():
    class OwnLoss(torchfit.Model):
        def __init__(self):
            super().__init__(device="cpu")
            self.dense = nn.Linear(3, 1)
            self.loss_tracker = torchfit.metrics.Mean(name="loss")
            self.mae_metric = torchfit.metrics.MeanAbsoluteError(name="mae")

        def forward(self, x):
            return self.dense(x)

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae_metric]

        def train_step(self, data):
            x, y = data
            y_pred = self(x, training=True)
            loss = ((y_pred - y) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.loss_tracker.update_state(loss.detach())
            self.mae_metric.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            self.loss_tracker.update_state(((y_pred - y) ** 2).mean())
            self.mae_metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    torch.manual_seed(0)
    model = OwnLoss()
    model.compile(optimizer="adam")
    x, y = _data(32)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y))
    assert sorted(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert model.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "mae"}


def test_super_train_step_and_test_step_return_the_logs():
    returned = {}

    class Spy(torchfit.Model):
        def __init__(self):
            super().__init__(nn.Linear(3, 1), device="cpu")

        def train_step(self, data):
            logs = super().train_step(data)
            returned["train"] = dict(logs)
            return logs

        def test_step(self, data):
            logs = super().test_step(data)
            returned["test"] = dict(logs)
            return logs

    model = Spy()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = _data(8)
    model.fit(x, y, batch_size=8, verbose=0, validation_data=(x, y))
    assert set(returned["train"]) == {"loss", "mae"}
    assert set(returned["test"]) == {"loss", "mae"}
    assert all(isinstance(value, float) for value in returned["train"].values())


def test_compute_loss_override_is_used_by_the_default_steps():
    class L1(torchfit.Model):
        def __init__(self):
            super().__init__(nn.Linear(3, 1), device="cpu")

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return (y_pred - y).abs().mean()

    torch.manual_seed(0)
    model = L1()
    model.compile(optimizer="sgd")  # no compiled loss: the override provides it
    x, y = _data(8)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = np.abs(model.predict(x, verbose=0) - y).mean()
    assert logs["loss"] == pytest.approx(float(expected), rel=1e-5)
    model.fit(x, y, verbose=0)


def test_a_compute_loss_override_without_training_works():
    # The signature Keras had before 3.3; Keras inspects the override, so does torchfit.
    class Doubled(torchfit.Model):
        def __init__(self):
            super().__init__(nn.Linear(3, 1), device="cpu")

        def compute_loss(self, x, y, y_pred, sample_weight=None):
            return 2 * super().compute_loss(x, y, y_pred, sample_weight)

    torch.manual_seed(0)
    model = Doubled()
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data(8)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    errors = model.predict(x, verbose=0) - y
    assert logs["loss"] == pytest.approx(2 * float((errors**2).mean()), rel=1e-5)
    assert len(history.history["loss"]) == 2
    # The sample weights reach the override, in training and in evaluation.
    weights = np.linspace(0.0, 3.0, 8)
    weighted = 2 * float((weights * (errors**2)[:, 0]).mean())
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.0), loss="mse")
    history = model.fit(x, y, sample_weight=weights, batch_size=8, verbose=0)
    assert history.history["loss"][0] == pytest.approx(weighted, rel=1e-5)
    logs = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(weighted, rel=1e-5)


class _Noisy(nn.Module):
    """Draws random numbers in every mode and counts its calls."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(3, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.dense(x + 0.1 * torch.randn_like(x))


def test_a_seeded_fit_sees_the_random_stream_of_the_same_hand_written_loop():
    # Compiled metrics are built from the first real step, not by an extra forward pass.
    x, y = _data(16)
    torch.manual_seed(0)
    net = _Noisy()
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss="mse", metrics=["mae"])
    torch.manual_seed(1)
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)

    torch.manual_seed(0)
    reference = _Noisy()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    torch.manual_seed(1)
    for _ in range(2):
        for start in range(0, 16, 4):
            xb, yb = torch.from_numpy(x[start : start + 4]), torch.from_numpy(y[start : start + 4])
            optimizer.zero_grad()
            ((reference(xb) - yb) ** 2).mean().backward()
            optimizer.step()
    assert net.calls == reference.calls == 8
    for trained, expected in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(trained, expected)
    model.evaluate(x, y, batch_size=4, verbose=0)
    assert net.calls == 12  # evaluate too: one call per batch


def test_predict_step_override_shapes_predict_output():
    class Argmax(torchfit.Model):
        def __init__(self):
            super().__init__(nn.Linear(3, 4), device="cpu")

        def predict_step(self, data):
            x = data[0] if isinstance(data, tuple) else data
            return self(x).argmax(dim=-1)

    model = Argmax()
    predictions = model.predict(_data(10)[0], batch_size=4, verbose=0)
    assert predictions.shape == (10,) and predictions.dtype == np.int64


# --------------------------------------------------------------- weights
def test_get_weights_and_set_weights_round_trip():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    model = torchfit.Model(net, device="cpu")
    weights = model.get_weights()
    assert [w.shape for w in weights] == [tuple(t.shape) for t in net.state_dict().values()]
    assert all(isinstance(w, np.ndarray) for w in weights)
    new = [np.full_like(w, 7) for w in weights]
    model.set_weights(new)
    # Buffers too: BatchNorm's running statistics and its integer batch counter.
    for value in net.state_dict().values():
        assert torch.all(value == 7)
    np.testing.assert_array_equal(model.get_weights()[0], new[0])


def test_set_weights_errors_name_count_and_shape():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    with pytest.raises(ValueError, match=r"`set_weights` expected a list of 2 arrays, received 1"):
        model.set_weights([np.zeros((1, 3))])
    with pytest.raises(
        ValueError, match=r"Weight `weight` has shape \(1, 3\), received an array of shape \(3, 1\)"
    ):
        model.set_weights([np.zeros((3, 1)), np.zeros(1)])


def test_same_initial_weights_give_the_same_state_dict_after_training():
    x, y = _data(32)

    def train():
        torch.manual_seed(1)
        model = torchfit.Model(
            nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)), device="cpu"
        )
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model.state_dict()

    first, second = train(), train()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key])


def test_summary_prints_layers_shapes_and_parameter_counts(capsys):
    net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.BatchNorm1d(64), nn.Linear(64, 10))
    model = torchfit.Model(net, device="cpu")
    model.predict(np.zeros((2, 784), "float32"), verbose=0)
    model.summary()
    out = capsys.readouterr().out
    assert "Linear" in out and "BatchNorm1d" in out
    assert "(None, 64)" in out and "(None, 10)" in out
    assert "50,240" in out and "650" in out
    assert "Total params: 51,146" in out
    assert "Trainable params: 51,018" in out
    assert "Non-trainable params: 128" in out
    lines = []
    model.summary(print_fn=lines.append)
    assert any("Total params: 51,146" in line for line in lines)


def test_an_empty_batch_changes_neither_weights_nor_the_running_loss():
    # Under torchrun a rank's share of a tiny last global batch can be empty.
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = np.random.rand(4, 3).astype("float32"), np.random.rand(4, 1).astype("float32")
    model.train_on_batch(x, y)
    before = [w.copy() for w in model.get_weights()]
    model.reset_metrics()
    model.train_step((torch.zeros(0, 3), torch.zeros(0, 1)))
    model.train_step((torch.from_numpy(x), torch.from_numpy(y)))
    logs = model.get_metrics_result()
    assert np.isfinite(float(logs["loss"])) and np.isfinite(float(logs["mae"]))
    assert not np.allclose(before[0], model.get_weights()[0])  # the real batch trained


def test_get_weights_returns_copies_that_do_not_move_with_training():
    net = nn.Sequential(nn.Linear(3, 2))
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    snapshot = model.get_weights()
    before = [np.array(w, copy=True) for w in snapshot]
    model.fit(np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"), epochs=2, verbose=0)
    for kept, original in zip(snapshot, before):
        np.testing.assert_array_equal(kept, original)
    assert not np.array_equal(net[0].weight.detach().numpy(), before[0])
    trained = net[0].weight.detach().clone()
    model.get_weights()[0][...] = 123.0
    assert torch.equal(net[0].weight.detach(), trained)
