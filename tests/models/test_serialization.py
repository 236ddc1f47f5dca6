"""Tests for model.save / torchfit.models.load_model: rebuilding without pickled code."""

import math
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import torchfit
from torchfit.models import serialization


class Regressor(torchfit.Model):
    """A subclass whose constructor arguments are plain data."""

    def __init__(self, units, activation="relu", *, scale=1.0):
        super().__init__(device="cpu")
        self.hidden = nn.Linear(4, units)
        self.out = nn.Linear(units, 1)
        self.activation = activation
        self.scale = scale

    def forward(self, x):
        hidden = (
            torch.relu(self.hidden(x)) if self.activation == "relu" else torch.tanh(self.hidden(x))
        )
        return self.out(hidden) * self.scale


class WideRegressor(Regressor):
    def __init__(self, units):
        super().__init__(units * 2, "tanh", scale=0.5)


class Wrapper(torchfit.Model):
    """A subclass that takes a module argument."""

    def __init__(self, body, name="wrapper"):
        super().__init__(device="cpu")
        self.body = body
        self.label = name

    def forward(self, x):
        return self.body(x)


def _data(seed=0, n=32):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4), dtype=np.float32), rng.random((n, 1), dtype=np.float32)


def _sequential():
    return nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 1)
    )


def _fit(model, epochs=2, seed=0):
    torch.manual_seed(seed)  # the same dropout masks for a model and its reloaded copy
    x, y = _data(seed)
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0)
    return model


def _assert_same_weights(a, b):
    for (name, x), y in zip(
        a.weights_module.state_dict().items(), b.weights_module.state_dict().values()
    ):
        assert torch.equal(x, y), name


def test_payload_is_plain_and_weights_only_loadable(tmp_path):
    torch.manual_seed(0)
    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    _fit(model)
    model.save(tmp_path / "m.keras")
    payload = torch.load(tmp_path / "m.keras", weights_only=True)
    assert payload["format"] == "torchfit.model" and payload["version"] == 1
    assert payload["counters"] == {"optimizer_iterations": 8, "epoch": 2}
    assert payload["module"]["kind"] == "torchfit.Model"
    assert payload["module"]["module"]["class"] == "Sequential"
    assert payload["compile_config"]["loss"] == "mse"
    assert payload["optimizer"]["torchfit"]["iterations"] == 8
    assert payload["compile_missing"] == []


def test_sequential_round_trip_resumes_training_identically(tmp_path):
    torch.manual_seed(0)
    model = torchfit.Model(_sequential(), device="cpu")
    schedule = torchfit.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)
    model.compile(
        optimizer=torchfit.optimizers.Adam(learning_rate=schedule),
        loss="mse",
        metrics=["mae", torchfit.metrics.RootMeanSquaredError()],
    )
    _fit(model)
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert type(loaded) is torchfit.Model
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate
    _assert_same_weights(model, loaded)
    _fit(model, epochs=1, seed=1)
    _fit(loaded, epochs=1, seed=1)
    _assert_same_weights(model, loaded)
    assert loaded.metrics_names == model.metrics_names == ["loss", "mae", "root_mean_squared_error"]


@pytest.mark.parametrize(
    "layers",
    [
        lambda: nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1),
            nn.BatchNorm2d(3),
            nn.LeakyReLU(0.2),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(12, 2),
            nn.Softmax(dim=-1),
        ),
        lambda: nn.Sequential(nn.Embedding(10, 4, padding_idx=0), nn.LSTM(4, 5, batch_first=True)),
        lambda: nn.ModuleList(
            [
                nn.Linear(2, 2, bias=False),
                nn.ModuleDict({"a": nn.GELU("tanh"), "b": nn.LayerNorm(2)}),
            ]
        ),
        lambda: nn.Sequential(
            nn.ConvTranspose1d(2, 3, 3, stride=2, output_padding=1),
            nn.GroupNorm(1, 3),
            nn.Upsample(scale_factor=2),
            nn.AdaptiveAvgPool1d(4),
            nn.Unflatten(2, (2, 2)),
        ),
    ],
)
def test_torch_nn_structures_are_rebuilt(layers):
    module = layers()
    spec = serialization.describe_module(module)
    rebuilt = serialization.build_module(spec)
    assert repr(rebuilt) == repr(module)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in module.state_dict().items()
    }


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x):
        return self.linear(x)


def test_custom_module_needs_module_argument(tmp_path):
    model = torchfit.Model(nn.Sequential(_Custom()), device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    _fit(model)
    model.save(tmp_path / "m.pt")
    with pytest.raises(
        ValueError, match=r"cannot be rebuilt.*_Custom, not a torch.nn layer.*module="
    ):
        torchfit.models.load_model(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt", module=nn.Sequential(_Custom()))
    _assert_same_weights(model, loaded)
    assert loaded.optimizer.iterations == 8


def test_modified_layer_is_not_described_wrongly():
    layer = nn.Linear(3, 2)
    layer.extra = nn.ReLU()  # not something the constructor makes
    with pytest.raises(serialization.NotRebuildable, match="differs from the original"):
        serialization.describe_module(nn.Sequential(layer))


def test_subclass_records_arguments_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = Regressor(6, "tanh", scale=2.0)
    assert model._init_args == ([6, "tanh"], {"scale": 2.0})
    model.compile(optimizer=torchfit.optimizers.RMSprop(0.01), loss="mse")
    _fit(model)
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert type(loaded) is Regressor
    assert (loaded.activation, loaded.scale) == ("tanh", 2.0)
    _assert_same_weights(model, loaded)
    x, _ = _data()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_nested_subclass_records_outermost_arguments():
    model = WideRegressor(3)
    assert model._init_args == ([3], {})
    spec = serialization.describe_module(model)
    assert spec["path"].endswith(":WideRegressor")
    rebuilt = serialization.build_module(spec)
    assert rebuilt.hidden.out_features == 6 and rebuilt.scale == 0.5


def test_subclass_with_module_argument(tmp_path):
    model = Wrapper(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)), name="w")
    model.compile(optimizer="adam", loss="mae")
    _fit(model)
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert type(loaded) is Wrapper and loaded.label == "w"
    _assert_same_weights(model, loaded)


def test_subclass_with_unrecordable_argument(tmp_path):
    model = Wrapper(lambda x: x)  # a plain function is not data
    with pytest.raises(serialization.NotRebuildable, match="constructor argument is a function"):
        serialization.describe_module(model)


def test_class_defined_in_a_function_needs_module_argument(tmp_path):
    class Local(torchfit.Model):
        def __init__(self):
            super().__init__(device="cpu")
            self.linear = nn.Linear(4, 1)

        def forward(self, x):
            return self.linear(x)

    model = Local()
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="defined inside a function.*module="):
        torchfit.models.load_model(tmp_path / "m.pt")
    assert type(torchfit.models.load_model(tmp_path / "m.pt", module=Local())) is Local


def test_safe_mode_imports_no_module(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    source = textwrap.dedent(f"""
        import torch, torchfit
        open({str(marker)!r}, "w").close()

        class Net(torchfit.Model):
            def __init__(self, units):
                super().__init__(device="cpu")
                self.linear = torch.nn.Linear(4, units)

            def forward(self, x):
                return self.linear(x)
    """)
    (tmp_path / "user_models_for_safe_mode.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_models_for_safe_mode

    model = user_models_for_safe_mode.Net(2)
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "m.pt")
    monkeypatch.delitem(sys.modules, "user_models_for_safe_mode")
    marker.unlink()
    with pytest.raises(ValueError, match="not imported.*safe_mode=False"):
        torchfit.models.load_model(tmp_path / "m.pt")
    assert not marker.exists()
    loaded = torchfit.models.load_model(tmp_path / "m.pt", safe_mode=False)
    assert marker.exists() and type(loaded).__name__ == "Net"
    _assert_same_weights(model, loaded)


def test_torch_loss_and_torch_optimizer_round_trip(tmp_path):
    torch.manual_seed(0)
    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        loss=nn.HuberLoss(delta=0.5),
    )
    _fit(model)
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert isinstance(loaded.optimizer, torch.optim.SGD)
    assert loaded.optimizer.param_groups[0]["momentum"] == 0.9
    _fit(model, epochs=1, seed=3)
    _fit(loaded, epochs=1, seed=3)
    _assert_same_weights(model, loaded)


def test_unsaved_compile_arguments_warn_and_leave_model_uncompiled(tmp_path):
    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(optimizer="adam", loss=lambda y_true, y_pred: ((y_true - y_pred) ** 2).mean())
    _fit(model)
    model.save(tmp_path / "m.pt")
    assert torch.load(tmp_path / "m.pt", weights_only=True)["compile_missing"] == [
        "loss: the loss <lambda> (no name to save it under: use a `def` function)"
    ]
    with pytest.warns(UserWarning, match="not compiled.*<lambda>.*compile"):
        loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert not loaded.compiled
    _assert_same_weights(model, loaded)


def test_a_loss_function_of_ones_own_is_saved_by_name_and_needs_custom_objects(tmp_path):
    def my_loss(y_true, y_pred):
        return ((y_true - y_pred) ** 2).mean()

    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(optimizer="adam", loss=my_loss)
    _fit(model)
    model.save(tmp_path / "m.pt")
    assert torch.load(tmp_path / "m.pt", weights_only=True)["compile_missing"] == []
    with pytest.warns(UserWarning, match="not compiled.*my_loss.*custom_objects"):
        loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert not loaded.compiled
    loaded = torchfit.models.load_model(tmp_path / "m.pt", custom_objects={"my_loss": my_loss})
    assert loaded.compiled and loaded.optimizer.iterations == model.optimizer.iterations
    x, y = _data()
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))


def test_compile_false(tmp_path):
    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt", compile=False)
    assert not loaded.compiled and loaded.optimizer is None


def test_uncompiled_model_round_trip(tmp_path):
    model = torchfit.Model(_sequential(), device="cpu")
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert not loaded.compiled
    _assert_same_weights(model, loaded)


def test_truncated_file(tmp_path):
    model = torchfit.Model(_sequential(), device="cpu")
    model.save(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        torchfit.models.load_model(tmp_path / "m.pt")


def test_weights_file_is_not_a_model_file(tmp_path):
    torchfit.Model(_sequential(), device="cpu").save_weights(tmp_path / "w.pt")
    with pytest.raises(ValueError, match="weights only.*load_weights"):
        torchfit.models.load_model(tmp_path / "w.pt")


def test_foreign_file(tmp_path):
    torch.save({"epoch": 3, "model_state": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a torchfit model file"):
        torchfit.models.load_model(tmp_path / "other.pt")


def test_file_of_another_model(tmp_path):
    torchfit.Model(_sequential(), device="cpu").save(tmp_path / "m.pt")
    other = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1))
    with pytest.raises(
        ValueError,
        match=r"do not fit this model: unexpected \[.*shape mismatch for 0.weight:"
        r" file \(8, 4\) vs model \(3, 4\)",
    ):
        torchfit.models.load_model(tmp_path / "m.pt", module=other)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickle_that_would_run_code_is_refused(code_running_file, writer):
    path, marker = code_running_file(
        lambda evil: {"format": "torchfit.model", "version": 1, "weights": {}, "module": evil},
        writer,
        name="evil.keras",
    )
    for safe_mode in (True, False):
        with pytest.raises(ValueError, match="nothing in it was run"):
            torchfit.models.load_model(path, safe_mode=safe_mode)
    assert not marker.exists()


def test_newer_version_is_refused(tmp_path):
    torch.save({"format": "torchfit.model", "version": 99}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="newer torchfit"):
        torchfit.models.load_model(tmp_path / "m.pt")


def test_bad_module_argument(tmp_path):
    torchfit.Model(_sequential(), device="cpu").save(tmp_path / "m.pt")
    with pytest.raises(TypeError, match="`module` must be an nn.Module"):
        torchfit.models.load_model(tmp_path / "m.pt", module="Sequential")


def test_save_overwrite_false(tmp_path):
    model = torchfit.Model(_sequential(), device="cpu")
    model.save(tmp_path / "m.pt")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.pt", overwrite=False)


class Classifier(torchfit.Model):
    """A subclass that keeps Model's constructor and only adds a forward."""

    def forward(self, x):
        return torch.softmax(self.module(x), dim=-1)


def test_subclass_keeping_model_constructor(tmp_path):
    model = Classifier(nn.Sequential(nn.Linear(4, 3)), device="cpu", output_names=["probs"])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert type(loaded) is Classifier and loaded.output_names == ["probs"]
    _assert_same_weights(model, loaded)


# ------------------------------------------------------- edited or forged files


class _RefuseBigAllocations(TorchFunctionMode):
    """Records, and refuses, every tensor over `limit` bytes asked for off the meta device."""

    FACTORIES = (torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn)

    def __init__(self, limit=64 << 20):
        super().__init__()
        self.limit = limit
        self.refused = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        device = kwargs.get("device")
        if func in self.FACTORIES and (device is None or torch.device(device).type != "meta"):
            shape = tuple(args[0]) if args and isinstance(args[0], (tuple, list)) else args
            dtype = kwargs.get("dtype") or torch.get_default_dtype()
            if math.prod(shape) * dtype.itemsize > self.limit:
                self.refused.append(shape)
                raise MemoryError(f"refused to allocate a tensor of shape {shape}")
        return func(*args, **kwargs)


def _forge(path, edit):
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


def _linear_args(spec):
    """The `args` of the first nn.Linear in a torch.nn description."""
    if spec.get("class") == "Linear":
        return spec["args"]
    return next(_linear_args(child) for _, child in spec.get("children", []) if "class" in child)


def _huge_first_layer(payload):
    module = payload["module"]
    if module["kind"] == "torchfit.Model":
        _linear_args(module["module"]).update(in_features=10**6, out_features=10**6)
    elif module["path"].endswith((":Regressor", ":OnTheCPU")):
        module["args"][0] = 10**8  # units: a (10**8, 4) hidden layer
    else:  # Classifier: its module argument
        described = module["args"][0][serialization._MODULE_MARKER]
        _linear_args(described).update(in_features=10**6, out_features=10**6)


class OnTheCPU(torchfit.Model):
    """Names the device of its layer itself."""

    def __init__(self, units):
        super().__init__(device="cpu")
        self.hidden = nn.Linear(4, units, device="cpu")

    def forward(self, x):
        return self.hidden(x)


@pytest.mark.parametrize(
    "make, entry, shape",
    [
        (
            lambda: torchfit.Model(_sequential(), device="cpu"),
            "module.module.children[0]",
            (10**6, 10**6),
        ),
        (lambda: Regressor(6), "module", (10**8, 4)),
        (lambda: OnTheCPU(6), "module", (10**8, 4)),
        (
            lambda: Classifier(nn.Sequential(nn.Linear(4, 3)), device="cpu"),
            "module.args[0].children[0]",
            (10**6, 10**6),
        ),
    ],
)
def test_forged_layer_size_is_refused_before_anything_is_allocated(tmp_path, make, entry, shape):
    make().save(tmp_path / "m.pt")
    path = _forge(tmp_path / "m.pt", _huge_first_layer)
    watch = _RefuseBigAllocations()
    start = time.perf_counter()
    with watch, pytest.raises(ValueError) as raised:
        torchfit.models.load_model(path)
    assert watch.refused == []  # the forged layer (4 TB, 1.6 GB) was never asked for
    assert time.perf_counter() - start < 2  # about 0.03 s
    message = str(raised.value)
    assert f"{str(path)!r} is malformed at entry `{entry}`" in message
    assert f"has shape {shape}" in message and "stored `weights[" in message


def _first_child(payload):
    return payload["module"]["module"]["children"][0][1]


@pytest.mark.parametrize(
    "edit, entry",
    [
        (lambda p: p.pop("weights"), "weights"),
        (lambda p: p.update(weights=[1, 2]), "weights"),
        (lambda p: p["weights"].update({"0.bias": [0.0] * 8}), "weights['0.bias']"),
        (lambda p: p["weights"].pop("0.bias"), "weights"),
        (
            lambda p: p["weights"].update({"1.num_batches_tracked": torch.tensor(2.5)}),
            "module.module.children[1]",
        ),
        (
            lambda p: p["weights"].update({"0.weight": torch.zeros(1).expand(8, 4)}),
            "weights['0.weight']",
        ),
        (
            lambda p: p["weights"].update({"0.weight": torch.zeros(8, 4).to_sparse()}),
            "weights['0.weight']",
        ),
        (lambda p: p.update(module="Sequential"), "module"),
        (lambda p: p["module"].update(kind="pickle"), "module.kind"),
        (lambda p: p["module"].update(output_names="out"), "module.output_names"),
        (
            lambda p: _first_child(p).update({"class": "functional"}),
            "module.module.children[0].class",
        ),
        (lambda p: _first_child(p).update(args=[4, 8]), "module.module.children[0].args"),
        (
            lambda p: _first_child(p)["args"].update(out_features=-8),
            "module.module.children[0].args",
        ),
        (lambda p: _first_child(p)["args"].update(units=8), "module.module.children[0].args"),
        (lambda p: p["module"]["module"].update(children={"0": 1}), "module.module.children"),
        (
            lambda p: p.update(
                module={"kind": "class", "path": "os:system", "args": ["ls"], "kwargs": {}}
            ),
            "module.path",
        ),
        (lambda p: p.update(compiled="yes"), "compiled"),
        (lambda p: p.update(compile_missing="loss"), "compile_missing"),
        (
            lambda p: p["compile_config"].update(
                optimizer={"torch": "lr_scheduler", "defaults": {}}
            ),
            "compile_config.optimizer",
        ),
        (
            lambda p: p["compile_config"].update(
                loss={"__torchfit_object__": "torch_loss", "value": {}}
            ),
            "compile_config.loss",
        ),
        (lambda p: p["compile_config"].update(shuffle=True), "compile_config"),
        (lambda p: p["optimizer"].update(param_groups=[]), "optimizer"),
    ],
)
def test_every_malformed_entry_is_a_value_error_naming_file_and_entry(tmp_path, edit, entry):
    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(optimizer="adam", loss="mse")
    _fit(model, epochs=1)
    model.save(tmp_path / "m.pt")
    path = _forge(tmp_path / "m.pt", edit)
    with pytest.raises(ValueError, match="edited or damaged") as raised:
        torchfit.models.load_model(path)
    assert f"{str(path)!r} is malformed at entry `{entry}`:" in str(raised.value)


class CountsOnTheHost(torchfit.Model):
    """A constructor that reads a tensor's value, which the meta device cannot give."""

    def __init__(self, units):
        super().__init__(device="cpu")
        self.linear = nn.Linear(4, int(torch.tensor(units).item()))

    def forward(self, x):
        return self.linear(x)


def test_a_constructor_that_cannot_run_on_meta_is_still_loaded(tmp_path):
    model = CountsOnTheHost(3)
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert type(loaded) is CountsOnTheHost
    _assert_same_weights(model, loaded)


def test_a_model_saved_in_float64_still_loads(tmp_path):
    model = torchfit.Model(_sequential().double(), device="cpu")
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    for (name, a), b in zip(model.module.state_dict().items(), loaded.module.state_dict().values()):
        assert torch.equal(a.to(b.dtype), b), name


class _Activations(torchfit.Model):
    """A subclass whose constructor takes a list of functions (no plain data)."""

    def __init__(self, activations):
        super().__init__(device="cpu")
        self.dense = nn.Linear(4, 1)
        self.activations = activations

    def forward(self, x):
        out = self.dense(x)
        activations = self.activations
        for activation in activations.values() if isinstance(activations, dict) else activations:
            out = activation(out)
        return out


@pytest.mark.parametrize("activations", [[torch.tanh], {"first": torch.tanh}], ids=["list", "dict"])
def test_a_container_argument_holding_a_function_needs_the_module_argument(tmp_path, activations):
    model = _Activations(activations)
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "m.pt")
    kind = type(activations).__name__
    with pytest.raises(
        ValueError, match=rf"cannot be rebuilt.*constructor argument is a {kind}.*module="
    ):
        torchfit.models.load_model(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt", module=_Activations(activations))
    _assert_same_weights(model, loaded)


def test_compiled_metric_lists_round_trip(tmp_path):
    torch.manual_seed(0)
    model = torchfit.Model(_sequential(), device="cpu")
    model.compile(
        optimizer="sgd",
        loss="mse",
        metrics=["mae", torchfit.metrics.RootMeanSquaredError(name="rmse")],
        weighted_metrics=[torchfit.metrics.MeanSquaredError(name="mse")],
    )
    x, y = _data()
    weights = np.linspace(0.5, 2.0, len(x))
    expected = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert loaded.metrics_names == model.metrics_names == ["loss", "mae", "rmse", "mse"]
    logs = loaded.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    assert logs == pytest.approx(expected, rel=1e-6)


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.score = nn.Linear(4, 1)
        self.cls = nn.Linear(4, 3)

    def forward(self, x):
        return self.score(x), self.cls(x)


def _two_heads_round_trip(tmp_path, metrics):
    torch.manual_seed(0)
    model = torchfit.Model(_TwoHeads(), output_names=["score", "cls"], device="cpu")
    model.compile(
        optimizer="sgd",
        loss={
            "score": "mae",
            "cls": torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        },
        loss_weights={"score": 2.0, "cls": 0.5},
        metrics=metrics,
    )
    x = _data()[0]
    y = {"score": x[:, :1], "cls": np.arange(len(x)) % 3}
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    model.save(tmp_path / "m.pt")
    # A custom module is not described in the file: it comes back through `module=`,
    # and the output names the compile dicts use come back from the file.
    loaded = torchfit.models.load_model(tmp_path / "m.pt", module=_TwoHeads())
    assert loaded.output_names == ["score", "cls"]
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(expected, rel=1e-6)
    assert loaded.metrics_names == model.metrics_names


def test_compile_dicts_by_output_name_round_trip_with_a_custom_module(tmp_path):
    _two_heads_round_trip(tmp_path, {"score": ["mse"], "cls": ["sparse_categorical_accuracy"]})


def test_a_metric_object_of_one_output_keeps_its_log_name_through_a_round_trip(tmp_path):
    _two_heads_round_trip(
        tmp_path, {"score": ["mse"], "cls": [torchfit.metrics.SparseCategoricalAccuracy()]}
    )


def test_one_compile_config_compiles_several_models_alike():
    # compile_from_config reads the config, as Keras's (which deserializes it into a
    # new dict): the same config compiles a second model with the same optimizer.
    def fresh():
        torch.manual_seed(0)
        return torchfit.Model(_sequential(), device="cpu")

    reference = fresh()
    reference.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.05), loss="mse")
    config = reference.get_compile_config()
    snapshot = repr(config)
    copies = [fresh(), fresh()]
    for model in copies:
        model.compile_from_config(config)
    assert repr(config) == snapshot
    for model in (reference, *copies):
        _fit(model, epochs=1)
    for model in copies:
        assert type(model.optimizer) is torchfit.optimizers.SGD
        _assert_same_weights(model, reference)
