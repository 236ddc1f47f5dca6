"""Keras's `Model` surface on a torchfit model: weight lists, layers, configs, eager/jit.

The weight lists are the torch tensors themselves (in `get_weights()` order), the
configs rebuild the same architecture, and the names a subclass uses for its own
attributes (`self.layers = nn.ModuleList(...)`) still reach its own attributes.
"""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchfit


def _sequential():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 2, n)


class Classifier(torchfit.Model):
    """A Keras-style subclass: plain constructor arguments and a module argument."""

    def __init__(self, units=8, classes=2, stem=None, dropout=0.0):
        super().__init__(device="cpu")
        self.stem = stem if stem is not None else nn.Identity()
        self.hidden = nn.Linear(4, units)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(units, classes)

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.hidden(self.stem(x)))))


class WithOwnAttributes(torchfit.Model):
    """A torch-style subclass whose attributes are named like Keras's."""

    def __init__(self):
        super().__init__(device="cpu")
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 2)])
        self.weights = [0.25, 0.75]  # plain data, not parameters

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x * self.weights[1]


# ------------------------------------------------------------------ weights
def test_weight_lists_are_the_tensors_in_get_weights_order():
    model = torchfit.Model(_sequential(), device="cpu")
    net = model.module
    values = model.get_weights()
    assert len(model.weights) == len(values) == len(net.state_dict())
    for tensor, value in zip(model.weights, values):
        np.testing.assert_array_equal(tensor.detach().numpy(), value)
    assert model.weights[0] is net[0].weight  # the parameter itself, not a copy
    assert model.variables == model.weights
    trainable = ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    assert [_name(net, t) for t in model.trainable_weights] == trainable
    assert all(isinstance(t, nn.Parameter) for t in model.trainable_weights)
    assert [_name(net, t) for t in model.non_trainable_weights] == [
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]
    assert model.trainable_variables == model.trainable_weights
    assert model.non_trainable_variables == model.non_trainable_weights
    model.module[3].requires_grad_(False)
    assert [_name(net, t) for t in model.trainable_weights] == trainable[:4]
    assert _name(net, model.non_trainable_weights[-1]) == "3.bias"


def _name(module, tensor):
    return next(n for n, t in module.state_dict(keep_vars=True).items() if t is tensor)


def test_count_params_is_the_summary_total_and_keras_count():
    model = torchfit.Model(_sequential(), device="cpu")
    # Keras: Dense(4, 8) 40 + BatchNormalization(8) 32 + Dense(8, 2) 18.
    assert model.count_params() == 90
    model(torch.zeros(2, 4))
    lines = []
    model.summary(print_fn=lines.append)
    assert " Total params: 90 (360.00 B)" in "\n".join(lines).splitlines()
    lazy = torchfit.Model(nn.Sequential(nn.LazyLinear(3)), device="cpu")
    with pytest.raises(ValueError, match="count_params.*isn't built.*lazy"):
        lazy.count_params()


def test_metrics_variables_are_the_metric_states():
    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data()
    model.evaluate(x, y, verbose=0)
    assert len(model.metrics_variables) == sum(len(m.variables) for m in model.metrics) == 4


# ------------------------------------------------------------------- layers
def test_layers_are_the_direct_submodules_in_order():
    net = _sequential()
    assert torchfit.Model(net, device="cpu").layers == list(net)
    classifier = Classifier()
    assert classifier.layers == [
        classifier.stem,
        classifier.hidden,
        classifier.drop,
        classifier.out,
    ]
    leaf = nn.Linear(2, 2)
    assert torchfit.Model(leaf, device="cpu").layers == [leaf]


def test_get_layer_by_name_index_or_path_with_keras_errors():
    classifier = Classifier(stem=nn.Sequential(nn.Linear(4, 4)))
    assert classifier.get_layer("out") is classifier.out
    assert classifier.get_layer(index=1) is classifier.hidden
    assert classifier.get_layer("stem.0") is classifier.stem[0]
    with pytest.raises(ValueError, match="Provide only a layer name or a layer index"):
        classifier.get_layer("out", 1)
    with pytest.raises(ValueError, match="retrieve layer at index 4 but model only has 4 layers"):
        classifier.get_layer(index=4)
    with pytest.raises(
        ValueError, match=r"No such layer: head\. Existing layers are: \['stem', 'hidden'"
    ):
        classifier.get_layer("head")
    with pytest.raises(ValueError, match="Provide either a layer name or layer index"):
        classifier.get_layer()


def test_a_subclass_keeps_its_own_layers_and_weights_attributes():
    model = WithOwnAttributes()
    assert isinstance(model.layers, nn.ModuleList) and model.weights == [0.25, 0.75]
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 4), "float32")
    history = model.fit(x, np.zeros((8, 2), "float32"), verbose=0)
    assert len(history.history["loss"]) == 1
    assert len(model.trainable_weights) == 4


# ------------------------------------------------------------------ configs
def test_get_config_and_from_config_rebuild_the_architecture():
    model = Classifier(units=16, stem=nn.Sequential(nn.Linear(4, 4), nn.Tanh()), dropout=0.1)
    config = model.get_config()
    assert config["units"] == 16 and config["dropout"] == 0.1
    clone = Classifier.from_config(config)
    assert type(clone) is Classifier and repr(clone) == repr(model)
    shapes = {k: v.shape for k, v in clone.state_dict().items()}
    assert shapes == {k: v.shape for k, v in model.state_dict().items()}
    assert not torch.equal(clone.hidden.weight, model.hidden.weight)  # new, untrained

    wrapped = torchfit.Model(_sequential(), output_names=None, device="cpu")
    rebuilt = torchfit.Model.from_config(wrapped.get_config())
    assert repr(rebuilt.module) == repr(wrapped.module)


def test_get_config_of_an_argument_that_is_not_data_asks_for_an_override():
    model = Classifier(stem=_Custom())
    with pytest.raises(NotImplementedError, match="Override `get_config\\(\\)`.*from_config"):
        model.get_config()


class _Custom(nn.Module):
    def forward(self, x):
        return x


def test_compile_config_round_trip_gives_the_same_numbers():
    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.Adam(learning_rate=0.01),
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy", torchfit.metrics.SparseTopKCategoricalAccuracy(k=1, name="top")],
    )
    assert torchfit.Model(_sequential(), device="cpu").get_compile_config() == {}
    config = model.get_compile_config()
    clone = torchfit.Model(_sequential(), device="cpu")
    clone.compile_from_config(config)
    assert clone.optimizer.learning_rate == pytest.approx(0.01)
    x, y = _data()
    assert clone.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True)
    )


def test_compile_config_errors():
    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(optimizer="sgd", loss=lambda y_true, y_pred: (y_pred - y_true).mean())
    with pytest.raises(ValueError, match="cannot be described as data: loss: the loss <lambda>"):
        model.get_compile_config()

    class OwnCompile(Classifier):
        def compile(self, *args, **kwargs):
            super().compile(*args, **kwargs)

    own = OwnCompile()
    with pytest.warns(UserWarning, match="`compile\\(\\)` method is custom"):
        own.compile_from_config({"loss": "mse"})
    assert not own.compiled


class DoubledMSE(torchfit.losses.Loss):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, y_true, y_pred):
        return self.factor * ((y_true - y_pred) ** 2).mean(-1)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class MaxError(torchfit.metrics.MeanMetricWrapper):
    def __init__(self, name="max_error", dtype=None):
        super().__init__(lambda t, p: (t - p).abs().amax(-1), name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name}


class NesterovSGD(torchfit.optimizers.SGD):
    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=True, **kwargs):
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)


def test_load_model_resolves_custom_objects_by_name(tmp_path):
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(4, 2), device="cpu")
    model.compile(optimizer=NesterovSGD(0.2), loss=DoubledMSE(factor=3.0), metrics=[MaxError()])
    x = _data()[0]
    y = np.ones((len(x), 2), "float32")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.pt")
    with pytest.warns(UserWarning, match="not compiled.*custom_objects="):
        assert not torchfit.models.load_model(tmp_path / "m.pt").compiled
    custom = {"NesterovSGD": NesterovSGD, "DoubledMSE": DoubledMSE, "MaxError": MaxError}
    loaded = torchfit.models.load_model(tmp_path / "m.pt", custom_objects=custom)
    assert isinstance(loaded.optimizer, NesterovSGD) and loaded.optimizer.iterations == 2
    assert loaded.optimizer.learning_rate == pytest.approx(0.2)
    assert loaded.metrics_names == ["loss", "max_error"]
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True)
    )
    # Keras's positional form: load_model(path, custom_objects).
    assert torchfit.models.load_model(tmp_path / "m.pt", custom).compiled


def test_load_model_finds_a_model_class_in_custom_objects_in_safe_mode(tmp_path, monkeypatch):
    model = Classifier(units=4)
    monkeypatch.setattr(Classifier, "__module__", "a_module_never_imported")
    model.save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="is not imported.*custom_objects=\\{'Classifier'"):
        torchfit.models.load_model(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(
        tmp_path / "m.pt", custom_objects={"Classifier": Classifier}
    )
    assert type(loaded) is Classifier and loaded.hidden.out_features == 4
    torch.testing.assert_close(loaded.hidden.weight, model.hidden.weight)


# ----------------------------------------------------------- eager and jit
def test_run_eagerly_wins_over_jit_compile_as_in_keras():
    model = torchfit.Model(_sequential(), device="cpu")
    with pytest.warns(UserWarning, match="`run_eagerly` is True.*Disabling `jit_compile`"):
        model.compile(loss="mse", run_eagerly=True, jit_compile=True)
    assert (model.run_eagerly, model.jit_compile, model._jit_forward) == (True, False, None)
    model.run_eagerly = False
    model.jit_compile = True  # settable, as in Keras: the forward is compiled from now on
    assert model._jit_forward is not None
    model.run_eagerly = True
    assert model._jit_forward is None and model.jit_compile is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile(loss="mse")  # "auto": off on torch, as Keras resolves it
    assert (model.run_eagerly, model.jit_compile, model._jit_forward) == (False, False, None)
