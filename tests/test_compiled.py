"""torchfit.compiled: compile()'s losses and metrics per output, and their log names."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit import losses, metrics
from torchfit.compiled import CompileLoss, CompileMetrics, Outputs

CPU = torch.device("cpu")


def _two_outputs(seed=0, batch=6):
    generator = torch.Generator().manual_seed(seed)
    score = torch.rand(batch, 1, generator=generator)
    probs = torch.softmax(torch.randn(batch, 3, generator=generator), dim=-1)
    y_score = torch.rand(batch, 1, generator=generator)
    y_class = torch.eye(3)[torch.randint(0, 3, (batch,), generator=generator)]
    return (score, probs), (y_score, y_class)


# ------------------------------------------------------------------ Outputs
def test_outputs_names_a_single_tensor_output():
    outputs = Outputs(torch.zeros(2, 1))
    assert outputs.kind == "single" and outputs.names == ["output"] and outputs.count == 1
    assert Outputs(torch.zeros(2, 1), ["score"]).names == ["score"]
    # A one-element list is one output.
    assert Outputs([torch.zeros(2, 1)]).kind == "single"


def test_outputs_names_a_tuple_by_output_names_or_position():
    y_pred = (torch.zeros(2, 1), torch.zeros(2, 3))
    assert Outputs(y_pred).names == ["output_1", "output_2"]
    assert Outputs(y_pred, ["score", "cls"]).names == ["score", "cls"]
    with pytest.raises(
        ValueError, match=r"`output_names` has 3 names but the model returned 2 outputs"
    ):
        Outputs(y_pred, ["a", "b", "c"])


def test_outputs_names_a_dict_by_its_keys():
    outputs = Outputs({"b": torch.zeros(2), "a": torch.ones(2)})
    assert outputs.kind == "dict" and outputs.names == ["b", "a"]
    assert [t.sum().item() for t in outputs.flatten({"a": torch.ones(2), "b": torch.zeros(2)})] == [
        0.0,
        2.0,
    ]


def test_outputs_match_lays_targets_out_per_output():
    outputs = Outputs((torch.zeros(2), torch.zeros(2)), ["score", "cls"])
    assert outputs.match(None, "y") == [None, None]
    assert outputs.match([1, 2], "y") == [1, 2]
    assert outputs.match({"cls": 2}, "y") == [None, 2]
    # One sample-weight array serves every output, as in Keras.
    assert outputs.match("w", "sample_weight", broadcast=True) == ["w", "w"]
    with pytest.raises(
        ValueError, match=r"`y` has keys \['clss'\] that are no output of the model"
    ):
        outputs.match({"clss": 1}, "y")
    with pytest.raises(ValueError, match=r"`y` has 3 entries but the model has 2 outputs"):
        outputs.match([1, 2, 3], "y")
    with pytest.raises(ValueError, match=r"The model has 2 outputs .* but `y` is a single"):
        outputs.match(np.zeros(2), "y")


def test_outputs_match_rejects_a_many_key_dict_for_one_output():
    outputs = Outputs(torch.zeros(2))
    assert outputs.match({"anything": 1}, "y") == [1]
    with pytest.raises(
        ValueError, match=r"`y` is a dict with keys \['a', 'b'\] but the model has a single output"
    ):
        outputs.match({"a": 1, "b": 2}, "y")


# -------------------------------------------------------------- CompileLoss
@pytest.mark.parametrize("seed", [0, 1])
def test_single_loss_is_the_loss_value(seed):
    generator = torch.Generator().manual_seed(seed)
    y_pred, y_true = torch.rand(5, 2, generator=generator), torch.rand(5, 2, generator=generator)
    loss = CompileLoss("mse")
    loss.build(y_true, y_pred, CPU)
    torch.testing.assert_close(loss(y_true, y_pred), ((y_true - y_pred) ** 2).mean())
    # One loss: no per-output tracker, so logs hold only `loss`.
    assert loss.metrics == []


def test_single_loss_applies_sample_weight_and_loss_weight():
    y_pred, y_true = torch.tensor([[1.0], [3.0]]), torch.zeros(2, 1)
    loss = CompileLoss("mse", loss_weights=0.5)
    loss.build(y_true, y_pred, CPU)
    # sum_over_batch_size: sum(loss * w) / N, not / sum(w).
    value = loss(y_true, y_pred, sample_weight=torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(value, torch.tensor((1.0 * 2.0 + 9.0 * 0.0) / 2 * 0.5))


@pytest.mark.parametrize("seed", [0, 1])
def test_list_of_losses_with_weights_sums_and_tracks_each_output_unweighted(seed):
    y_pred, y_true = _two_outputs(seed)
    loss = CompileLoss(
        ["mse", "categorical_crossentropy"], loss_weights=[1.0, 0.5], output_names=["score", "cls"]
    )
    loss.build(y_true, y_pred, CPU)
    total = loss(y_true, y_pred)
    mse = ((y_true[0] - y_pred[0]) ** 2).mean()
    cce = -(y_true[1] * torch.log(y_pred[1])).sum(-1).mean()
    torch.testing.assert_close(total, mse + 0.5 * cce)
    assert [m.name for m in loss.metrics] == ["score_loss", "cls_loss"]
    # Per-output losses are logged before weighting, as in Keras 3.
    torch.testing.assert_close(loss.metrics[0].result(), mse)
    torch.testing.assert_close(loss.metrics[1].result(), cce)


def test_dict_losses_by_output_name_and_an_output_without_loss():
    y_pred, y_true = _two_outputs()
    loss = CompileLoss({"cls": "categorical_crossentropy"}, output_names=["score", "cls"])
    loss.build(y_true, y_pred, CPU)
    cce = -(y_true[1] * torch.log(y_pred[1])).sum(-1).mean()
    torch.testing.assert_close(loss(y_true, y_pred), cce)
    # The output with no loss needs no target.
    torch.testing.assert_close(loss([None, y_true[1]], y_pred), cce)
    assert loss.metrics == []


def test_one_loss_is_broadcast_to_every_output():
    y_pred = (torch.ones(2, 1), torch.zeros(2, 1))
    y_true = (torch.zeros(2, 1), torch.zeros(2, 1))
    loss = CompileLoss("mae")
    loss.build(y_true, y_pred, CPU)
    torch.testing.assert_close(loss(y_true, y_pred), torch.tensor(1.0))
    assert [m.name for m in loss.metrics] == ["output_1_loss", "output_2_loss"]


def test_loss_weights_as_a_dict():
    y_pred, y_true = _two_outputs()
    loss = CompileLoss(["mse", "mse"], loss_weights={"cls": 0.0}, output_names=["score", "cls"])
    loss.build(y_true, y_pred, CPU)
    torch.testing.assert_close(loss(y_true, y_pred), ((y_true[0] - y_pred[0]) ** 2).mean())


def test_loss_config_errors_name_the_argument():
    y_pred, y_true = _two_outputs()
    with pytest.raises(ValueError, match=r"`loss` has 3 entries but the model has 2 outputs"):
        CompileLoss(["mse"] * 3).build(y_true, y_pred, CPU)
    with pytest.raises(
        ValueError, match=r"`loss` has keys \['scor'\] that are no output of the model"
    ):
        CompileLoss({"scor": "mse"}, output_names=["score", "cls"]).build(y_true, y_pred, CPU)
    with pytest.raises(ValueError, match=r"`loss_weights` has 1 entries"):
        CompileLoss("mse", loss_weights=[1.0]).build(y_true, y_pred, CPU)


def test_loss_without_target_is_a_clear_error():
    loss = CompileLoss("mse")
    loss.build(None, torch.zeros(2, 1), CPU)
    with pytest.raises(ValueError, match=r"A loss was compiled but no target `y` was given"):
        loss(None, torch.zeros(2, 1))


@pytest.mark.parametrize(
    "y_true, y_pred, kind",
    [
        (torch.zeros(4), torch.full((4, 3), 1 / 3), losses.SparseCategoricalCrossentropy),
        (torch.zeros(4, 1), torch.full((4, 3), 1 / 3), losses.SparseCategoricalCrossentropy),
        (torch.eye(3)[[0, 1, 2, 0]], torch.full((4, 3), 1 / 3), losses.CategoricalCrossentropy),
        (torch.zeros(4, 1), torch.full((4, 1), 0.5), losses.BinaryCrossentropy),
    ],
)
def test_crossentropy_is_chosen_from_shapes(y_true, y_pred, kind):
    loss = CompileLoss("crossentropy")
    loss.build(y_true, y_pred, CPU)
    assert isinstance(loss._terms[0][1], kind)


def test_torch_loss_module_is_called_in_torch_order():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 1])
    loss = CompileLoss(nn.CrossEntropyLoss())
    loss.build(labels, logits, CPU)
    torch.testing.assert_close(loss(labels, logits), nn.functional.cross_entropy(logits, labels))


# ----------------------------------------------------------- CompileMetrics
def test_metric_string_ids_keep_the_users_spelling():
    y_true, y_pred = torch.rand(4, 1), torch.rand(4, 1)
    compiled = CompileMetrics(
        ["mse", "mean_absolute_error", metrics.RootMeanSquaredError(name="rmse")]
    )
    compiled.build(y_true, y_pred, CPU)
    assert [m.name for m in compiled.metrics] == ["mse", "mean_absolute_error", "rmse"]


def test_duplicate_metric_names_get_a_suffix_and_weighted_collisions_a_prefix():
    # Same names as Keras 3.15 logs for this compile call.
    y_true, y_pred = torch.rand(4, 1), torch.rand(4, 1)
    compiled = CompileMetrics(["mse", "mse", metrics.MeanSquaredError()], weighted_metrics=["mse"])
    compiled.build(y_true, y_pred, CPU)
    assert sorted(compiled.log_names) == [
        "mean_squared_error",
        "mse",
        "mse_1",
        "weighted_mse",
    ]


def test_metrics_per_output_as_list_of_lists_are_prefixed_by_output_name():
    y_pred, y_true = _two_outputs()
    compiled = CompileMetrics(
        [["mae", "mse"], ["accuracy"]],
        weighted_metrics=[["mae"], []],
        output_names=["score", "cls"],
    )
    compiled.build(y_true, y_pred, CPU)
    # The names Keras 3.15 logs for the same outputs and compile call; as in Keras,
    # the prefix is in the logs only, the metric objects keep their names.
    assert compiled.log_names == [
        "score_mae",
        "score_mse",
        "cls_accuracy",
        "score_weighted_mae",
    ]
    assert [m.name for m in compiled.metrics] == ["mae", "mse", "accuracy", "mae"]
    assert isinstance(compiled.metrics[2], metrics.CategoricalAccuracy)


def test_metrics_per_output_as_a_dict():
    y_pred, y_true = _two_outputs()
    compiled = CompileMetrics({"cls": ["categorical_accuracy"]}, output_names=["score", "cls"])
    compiled.build(y_true, y_pred, CPU)
    assert compiled.log_names == ["cls_categorical_accuracy"]
    compiled.update_state(y_true, y_pred)
    expected = (y_true[1].argmax(-1) == y_pred[1].argmax(-1)).float().mean()
    torch.testing.assert_close(compiled.metrics[0].result(), expected)


def test_metrics_config_errors():
    y_pred, y_true = _two_outputs()
    with pytest.raises(ValueError, match=r"`metrics` has 3 entries but the model has 2 outputs"):
        CompileMetrics([["mae"], ["mae"], ["mae"]]).build(y_true, y_pred, CPU)
    with pytest.raises(
        TypeError, match=r"`metrics` must be a list .* Received: metrics of type str"
    ):
        CompileMetrics("mae").build(torch.zeros(2, 1), torch.zeros(2, 1), CPU)


@pytest.mark.parametrize(
    "y_true, y_pred, kind",
    [
        (torch.zeros(4), torch.full((4, 3), 1 / 3), metrics.SparseCategoricalAccuracy),
        (torch.zeros(4, 1), torch.full((4, 3), 1 / 3), metrics.SparseCategoricalAccuracy),
        (torch.eye(3)[[0, 1, 2, 0]], torch.full((4, 3), 1 / 3), metrics.CategoricalAccuracy),
        (torch.zeros(4, 1), torch.full((4, 1), 0.5), metrics.BinaryAccuracy),
    ],
)
@pytest.mark.parametrize("identifier", ["accuracy", "acc"])
def test_accuracy_is_chosen_from_shapes_and_keeps_its_spelling(identifier, y_true, y_pred, kind):
    compiled = CompileMetrics([identifier])
    compiled.build(y_true, y_pred, CPU)
    assert isinstance(compiled.metrics[0], kind)
    assert compiled.metrics[0].name == identifier


def test_accuracy_without_targets_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"metrics='accuracy' is chosen from the shapes of the targets"
    ):
        CompileMetrics(["accuracy"]).build(None, torch.zeros(2, 3), CPU)


def test_weighted_metrics_use_sample_weight_and_metrics_do_not():
    y_true = torch.tensor([[0.0], [0.0]])
    y_pred = torch.tensor([[1.0], [3.0]])
    compiled = CompileMetrics(["mae"], weighted_metrics=["mae"])
    compiled.build(y_true, y_pred, CPU)
    compiled.update_state(y_true, y_pred, sample_weight=torch.tensor([1.0, 0.0]))
    plain, weighted = compiled.metrics
    torch.testing.assert_close(plain.result(), torch.tensor(2.0))
    torch.testing.assert_close(weighted.result(), torch.tensor(1.0))


def test_the_same_metric_object_on_two_outputs_is_copied():
    y_pred = (torch.ones(2, 1), torch.zeros(2, 1))
    y_true = (torch.zeros(2, 1), torch.zeros(2, 1))
    shared = metrics.MeanAbsoluteError()
    compiled = CompileMetrics([[shared], [shared]])
    compiled.build(y_true, y_pred, CPU)
    first, second = compiled.metrics
    assert first is not second
    compiled.update_state(y_true, y_pred)
    assert compiled.log_names == ["output_1_mean_absolute_error", "output_2_mean_absolute_error"]
    assert (first.result().item(), second.result().item()) == (1.0, 0.0)
    assert shared.name == "mean_absolute_error"  # the user's object is not renamed


def test_a_metric_of_an_output_without_target_is_skipped():
    y_pred, y_true = _two_outputs()
    compiled = CompileMetrics([["mae"], ["categorical_accuracy"]], output_names=["score", "cls"])
    compiled.build(y_true, y_pred, CPU)
    compiled.update_state([y_true[0], None], y_pred)
    assert compiled.metrics[1].result().item() == 0.0


# ------------------------------------------------------------- through fit
def test_fit_logs_per_output_names_like_keras():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.score = nn.Linear(3, 1)
            self.cls = nn.Linear(3, 2)

        def forward(self, x):
            return self.score(x), torch.softmax(self.cls(x), dim=-1)

    torch.manual_seed(0)
    model = torchfit.Model(TwoHeads(), output_names=["score", "cls"], device="cpu")
    model.compile(
        "sgd",
        loss=["mse", "categorical_crossentropy"],
        loss_weights=[1.0, 0.5],
        metrics=[["mae", "mse"], ["accuracy"]],
        weighted_metrics=[["mae"], []],
    )
    x = np.random.default_rng(0).random((8, 3), dtype=np.float32)
    y = [np.zeros((8, 1), "float32"), np.eye(2, dtype="float32")[[0, 1] * 4]]
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x, y))
    # The keys Keras 3.15 logs for the same model and compile call.
    keys = [
        "cls_accuracy",
        "cls_loss",
        "loss",
        "score_loss",
        "score_mae",
        "score_mse",
        "score_weighted_mae",
    ]
    assert list(history.history) == keys + [f"val_{key}" for key in keys]
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["score_loss"] + 0.5 * logs["cls_loss"], rel=1e-5)


# ------------------------------------------------- targets checked before the loss
_X = np.random.default_rng(0).random((16, 4), dtype=np.float32)


def _linear(units):
    return lambda: nn.Linear(4, units)


def _compiled(make_module, loss, **kwargs):
    torch.manual_seed(0)
    model = torchfit.Model(
        make_module(), output_names=kwargs.pop("output_names", None), device="cpu"
    )
    model.compile("sgd", loss=loss, **kwargs)
    return model


def _unchanged(model, before):
    return all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


class _TwoHeads(nn.Module):
    """A regression head (N, 1) and a 3-class head (N, 3), in that order."""

    def __init__(self):
        super().__init__()
        self.value = nn.Linear(4, 1)
        self.cls = nn.Linear(4, 3)

    def forward(self, x):
        return self.value(x), self.cls(x)


def test_fit_rejects_a_target_that_would_be_broadcast_against_the_output():
    model = _compiled(_linear(1), "mse")
    before = model.get_weights()
    with pytest.raises(
        ValueError,
        match=r"output 'output'.*`mse`.*target has shape \(8, 3\)"
        r" and the prediction \(8, 1\)",
    ):
        model.fit(_X, np.zeros((16, 3), "float32"), batch_size=8, verbose=0)
    assert _unchanged(model, before)


def test_fit_keeps_the_broadcast_keras_documents_a_rank_1_target_for_a_n_by_1_output():
    y = np.random.default_rng(1).random(16, dtype=np.float32)
    flat, column = _compiled(_linear(1), "mse"), _compiled(_linear(1), "mse")
    flat_history = flat.fit(_X, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    column_history = column.fit(_X, y[:, None], batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert flat_history.history["loss"] == column_history.history["loss"]


def test_sparse_targets_given_in_the_wrong_output_order_are_an_error_not_truncated():
    labels = np.arange(16) % 3
    values = np.random.default_rng(2).random((16, 1), dtype=np.float32)
    model = _compiled(_TwoHeads, ["mse", losses.SparseCategoricalCrossentropy(from_logits=True)])
    before = model.get_weights()
    with pytest.raises(
        ValueError,
        match=r"output 'output_2' in `y`.*sparse_categorical_"
        r".*3 classes.*are not integers.*order of the outputs",
    ):
        model.fit(_X, [labels[:, None].astype("float32"), values], verbose=0)
    assert _unchanged(model, before)
    model.fit(_X, [values, labels], verbose=0)  # the right order trains


@pytest.mark.parametrize(
    "labels, shown",
    [
        (np.arange(16) % 5, r"labels 3, 4 are outside the valid range \[0, 2\]"),
        (np.where(np.arange(16) == 3, -2, 1), r"labels -2 are outside the valid range \[0, 2\]"),
        (np.where(np.arange(16) == 3, np.nan, 1.0), r"labels include NaN"),
    ],
)
def test_sparse_labels_out_of_range_are_named_before_any_kernel_sees_them(labels, shown):
    model = _compiled(_linear(3), "sparse_categorical_crossentropy")
    before = model.get_weights()
    with pytest.raises(ValueError, match=rf"output 'output' in `y`.*{shown}"):
        model.fit(_X, labels, batch_size=8, verbose=0)
    assert _unchanged(model, before)
    with pytest.raises(ValueError, match=shown):
        model.evaluate(_X, labels, verbose=0)


def test_ignore_class_may_lie_outside_the_range_and_still_counts_for_nothing():
    labels = np.where(np.arange(16) % 4 == 0, -1, np.arange(16) % 3)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    model = _compiled(_linear(3), loss)
    result = model.evaluate(_X, labels, batch_size=16, verbose=0)
    keep = labels != -1
    logits = model.predict(_X, verbose=0)
    expected = nn.functional.cross_entropy(torch.tensor(logits[keep]), torch.tensor(labels[keep]))
    assert result == pytest.approx(expected.item(), rel=1e-5)


def test_array_targets_are_checked_once_not_per_step(monkeypatch):
    calls = []
    original = torchfit.losses.targets.class_index_problem

    def counting(values, num_classes, rule):
        calls.append(len(values))
        return original(values, num_classes, rule)

    monkeypatch.setattr(torchfit.losses.targets, "class_index_problem", counting)
    model = _compiled(_linear(3), "sparse_categorical_crossentropy")
    model.fit(_X, np.arange(16) % 3, batch_size=4, epochs=3, verbose=0)
    assert calls == [16]  # the whole array, once: 12 steps, no per-step check


def test_batches_of_a_generator_are_checked_on_the_host_before_they_train():
    def batches():
        for index in range(4):
            yield _X[index * 4 : (index + 1) * 4], np.full(4, 5 if index == 2 else 1)

    model = _compiled(_linear(3), "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"batch index 2 of the generator.*labels 5 are outside"):
        model.fit(batches(), shuffle=False, verbose=0)
    reference = _compiled(_linear(3), "sparse_categorical_crossentropy")
    reference.fit(_X[:8], np.ones(8, "int64"), batch_size=4, shuffle=False, verbose=0)
    assert _unchanged(model, reference.get_weights())  # batches 0 and 1 trained, 2 did not


def test_the_first_batch_of_a_data_loader_is_checked_before_it_trains():
    dataset = torch.utils.data.TensorDataset(torch.tensor(_X), torch.full((16,), 7))
    model = _compiled(_linear(3), nn.CrossEntropyLoss())
    before = model.get_weights()
    with pytest.raises(
        ValueError,
        match=r"batch index 0 of the DataLoader.*`cross_entropy_loss`"
        r".*labels 7 are outside the valid range \[0, 2\]",
    ):
        model.fit(torch.utils.data.DataLoader(dataset, batch_size=8), shuffle=False, verbose=0)
    assert _unchanged(model, before)


def test_torch_cross_entropy_keeps_its_ignore_index_and_probability_targets():
    model = _compiled(_linear(3), nn.CrossEntropyLoss())
    model.fit(_X, np.where(np.arange(16) % 4 == 0, -100, 1), verbose=0)
    model.fit(_X, np.full((16, 3), 1 / 3, "float32"), verbose=0)


def test_a_sparse_top_k_metric_checks_the_labels_when_the_loss_does_not():
    model = _compiled(
        _linear(3),
        lambda y_true, y_pred: (y_pred**2).mean(),
        metrics=[metrics.SparseTopKCategoricalAccuracy(k=2)],
    )
    with pytest.raises(ValueError, match=r"`sparse_top_k_categorical_accuracy`.*labels 3"):
        model.fit(_X, np.arange(16) % 4, verbose=0)


# ---------------------------------------------- dict keys of a single-output model
def test_a_one_key_loss_dict_naming_no_output_is_rejected():
    model = _compiled(_linear(1), {"predictions": "mse"})
    before = model.get_weights()
    with pytest.raises(
        ValueError,
        match=r"`loss` is a dict with keys \['predictions'\].*single"
        r" output, named 'output'.*output_names",
    ):
        model.fit(_X, np.zeros((16, 1), "float32"), verbose=0)
    assert _unchanged(model, before)
    named = _compiled(_linear(1), {"predictions": "mse"}, output_names=["predictions"])
    named.fit(_X, np.zeros((16, 1), "float32"), verbose=0)


def test_a_loss_weights_dict_naming_no_output_is_rejected_and_metrics_dicts_are_not():
    model = _compiled(_linear(1), {"output": "mse"}, loss_weights={"score": 2.0})
    with pytest.raises(ValueError, match=r"`loss_weights` is a dict with keys \['score'\]"):
        model.fit(_X, np.zeros((16, 1), "float32"), verbose=0)
    # Keras applies every metric of a single-output model, whatever the key.
    model = _compiled(_linear(1), "mse", metrics={"anything": ["mae"]})
    assert "mae" in model.fit(_X, np.zeros((16, 1), "float32"), verbose=0).history


def test_a_one_element_loss_list_is_the_single_outputs_loss_and_more_are_an_error():
    y = np.ones((16, 1), "float32")
    listed = _compiled(_linear(1), ["mae"]).evaluate(_X, y, verbose=0)
    assert listed == _compiled(_linear(1), "mae").evaluate(_X, y, verbose=0)
    assert listed != _compiled(_linear(1), "mse").evaluate(_X, y, verbose=0)
    # Neither a second loss nor a second key is dropped in silence.
    for loss in (["mae", "mse"], {"output": "mae", "extra": "mse"}):
        model = _compiled(_linear(1), loss)
        before = model.get_weights()
        with pytest.raises((TypeError, ValueError), match="`loss`"):
            model.fit(_X, y, verbose=0)
        assert _unchanged(model, before)


# ------------------------------------------------- compiled metrics through a model
def _predicts_two(cls=torchfit.Model, **compile_kwargs):
    """Predicts 2.0 for every sample, and never learns (learning rate 0)."""
    module = nn.Linear(1, 1)
    with torch.no_grad():
        module.weight.zero_()
        module.bias.fill_(2.0)
    model = cls(module, device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.0), **compile_kwargs)
    return model


# Targets 1 and 8 against a prediction of 2, with sample weights 1 and 3: absolute
# percentage errors 100 and 75 (50 and 300 with y_true and y_pred swapped).
_X1, _Y1 = np.zeros((2, 1), "float32"), np.array([[1.0], [8.0]], "float32")
_SW1 = np.array([1.0, 3.0])


def test_weighted_metrics_of_one_output_take_y_true_first_and_the_sample_weights():
    model = _predicts_two(loss="mse", metrics=["mape"], weighted_metrics=["mape"])
    logs = model.evaluate(_X1, _Y1, sample_weight=_SW1, verbose=0, return_dict=True)
    assert logs["mape"] == pytest.approx(87.5)  # (100 + 75) / 2
    assert logs["weighted_mape"] == pytest.approx(81.25)  # (100 * 1 + 75 * 3) / 4


def test_a_metric_object_with_an_earlier_state_starts_fresh_in_a_model():
    used = torchfit.metrics.MeanAbsoluteError(name="mae")
    used.update_state(np.array([[100.0]]), np.array([[0.0]]))
    model = _predicts_two(loss="mse", metrics=[used])
    assert model.evaluate(_X1, _Y1, verbose=0, return_dict=True)["mae"] == pytest.approx(3.5)


class _OwnLossStep(torchfit.Model):
    """A Keras 3 torch-style train_step with its own loss: the first step finds the
    compiled metrics unbuilt, and hands them the batch's sample weights."""

    def train_step(self, data):
        x, y, sample_weight = data
        y_pred = self(x, training=True)
        for metric in self.metrics:
            if metric.name != "loss":
                metric.update_state(y, y_pred, sample_weight=sample_weight)
        return {metric.name: metric.result() for metric in self.metrics if metric.name != "loss"}


def test_a_custom_step_updating_unbuilt_metrics_passes_the_sample_weights():
    model = _predicts_two(cls=_OwnLossStep, weighted_metrics=["mape"])
    history = model.fit(_X1, _Y1, sample_weight=_SW1, batch_size=2, verbose=0)
    assert history.history["mape"] == [pytest.approx(81.25)]
