"""torchfit.outputs: which parts of a model's return value are outputs, the model's own
loss, and the container predict returns."""

import dataclasses
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.outputs import Outputs, own_loss, predictions

Heads = namedtuple("Heads", "score probs")


class Cache:
    """Stands for a Hugging Face `DynamicCache`: an object that is no tensor."""


@dataclasses.dataclass
class HeadsDC:
    score: torch.Tensor
    probs: torch.Tensor
    note: object = None


@dataclasses.dataclass
class LMOutput(OrderedDict):
    """Like a Hugging Face `ModelOutput`: a dataclass and a dict of its non-None entries."""

    loss: torch.Tensor = None
    logits: torch.Tensor = None
    cache: object = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                self[field.name] = value


# ------------------------------------------------------------------ Outputs
def test_only_tensor_entries_are_outputs_and_loss_is_the_models_own():
    outputs = Outputs(LMOutput(loss=torch.tensor(1.0), logits=torch.zeros(2, 3), cache=Cache()))
    assert outputs.names == ["logits"] and outputs.count == 1
    assert outputs.has_own_loss and outputs.others == ["loss", "cache"]
    # A tuple of tensors (hidden states) is no output either; None neither.
    outputs = Outputs({"logits": torch.zeros(2), "hidden": (torch.zeros(2),), "att": None})
    assert outputs.names == ["logits"]


def test_dataclasses_and_namedtuples_are_named_by_their_fields():
    assert Outputs(HeadsDC(torch.zeros(2), torch.zeros(2))).names == ["score", "probs"]
    outputs = Outputs(Heads(torch.zeros(2), torch.ones(2)))
    assert outputs.kind == "dict" and outputs.names == ["score", "probs"]
    flat = outputs.flatten(Heads(torch.zeros(2), torch.ones(2)))
    assert [t.sum().item() for t in flat] == [0.0, 2.0]


def test_one_tensor_left_is_a_single_output_that_takes_a_bare_y():
    outputs = Outputs({"logits": torch.zeros(2, 3), "cache": Cache()})
    y = np.zeros(2)
    # Was: "The model has 1 outputs (['logits']) but `y` is a single ndarray".
    assert outputs.match(y, "y") == [y]
    assert outputs.match({"logits": y}, "y") == [y]
    assert outputs.match([y], "y") == [y]


def test_a_tuple_with_a_cache_keeps_positional_names_and_lists_by_every_position():
    outputs = Outputs((torch.zeros(2), Cache()), ["pred", "cache"])
    assert outputs.kind == "list" and outputs.names == ["pred"] and outputs.count == 1
    assert outputs.match(["w", None], "loss") == ["w"]
    with pytest.raises(ValueError, match=r"`loss` has entries .* positions \[2\]"):
        outputs.match(["mse", "mse"], "loss")


def test_an_entry_for_what_is_no_output_is_an_error_unless_none():
    outputs = Outputs({"logits": torch.zeros(2), "a": torch.zeros(2), "cache": Cache()})
    assert outputs.match({"logits": 1, "cache": None}, "loss") == [1, None]
    with pytest.raises(ValueError, match=r"`loss` has an entry for \['cache'\].*no output"):
        outputs.match({"logits": 1, "cache": "mse"}, "loss")


# ----------------------------------------------------------------- own_loss
def test_own_loss_reads_the_loss_entry_of_any_named_output():
    loss = torch.tensor(0.25)
    assert own_loss({"loss": loss, "logits": torch.zeros(2)}) is loss
    assert own_loss(LMOutput(loss=loss, logits=torch.zeros(2))) is loss
    assert own_loss(namedtuple("Out", "loss logits")(loss, torch.zeros(2))) is loss
    assert own_loss(torch.zeros(2)) is None and own_loss((loss, loss)) is None
    assert own_loss({"loss": None}) is None
    # A loss per sample is averaged over the batch.
    assert own_loss({"loss": torch.tensor([1.0, 3.0])}).item() == 2.0


# -------------------------------------------------------------- predictions
def test_predictions_drop_the_own_loss_and_what_holds_no_tensor():
    logits = torch.zeros(2, 3)
    hidden = (torch.zeros(2, 4), torch.ones(2, 4))
    out = LMOutput(loss=torch.tensor(1.0), logits=logits, cache=Cache())
    assert predictions(out) == {"logits": logits}
    assert type(predictions(out)) is dict
    kept = predictions({"logits": logits, "hidden": hidden, "none": None})
    assert list(kept) == ["logits", "hidden"] and kept["hidden"] == hidden
    # Positions stay: what holds no tensor becomes None.
    assert predictions((logits, Cache())) == (logits, None)
    named = predictions(Heads(logits, Cache()))
    assert type(named) is Heads and named.score is logits and named.probs is None


# ------------------------------------------------ through a real Model's fit
class LogitsAndCache(nn.Module):
    """A classifier that returns its logits beside a cache object, as GPT-2 does."""

    def __init__(self, own_loss=False):
        super().__init__()
        self.dense = nn.Linear(4, 3)
        self.own_loss = own_loss

    def forward(self, x, labels=None):
        logits = self.dense(x)
        out = {"logits": logits, "cache": Cache()}
        if labels is not None and self.own_loss:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def _data(n=32):
    generator = np.random.default_rng(0)
    x = generator.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")


def test_one_tensor_output_fits_a_bare_y_one_loss_and_flat_metric_names():
    torch.manual_seed(0)
    x, y = _data()
    model = torchfit.Model(LogitsAndCache(), device="cpu")
    model.compile(
        "adam",
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    before = model.get_weights()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss"]  # not logits_accuracy
    assert model.metrics_names == ["loss", "accuracy"]
    assert not np.allclose(before[0], model.get_weights()[0])
    assert sorted(model.evaluate(x, y, verbose=0, return_dict=True)) == ["accuracy", "loss"]
    assert list(model.predict(x, verbose=0)) == ["logits"]  # no cache


def test_compiled_without_a_loss_the_model_trains_on_its_own_loss():
    torch.manual_seed(0)
    x, y = _data(64)
    model = torchfit.Model(LogitsAndCache(own_loss=True), device="cpu")
    model.compile(torchfit.optimizers.Adam(0.05), metrics=["accuracy"])
    inputs = {"x": x, "labels": y}
    first = model.evaluate(inputs, y, verbose=0, return_dict=True)
    history = model.fit(inputs, y, batch_size=16, epochs=5, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss"]  # `loss` is no output
    expected = nn.functional.cross_entropy(
        model.module.dense(torch.from_numpy(x)), torch.from_numpy(y)
    ).item()
    last = model.evaluate(inputs, y, batch_size=64, verbose=0, return_dict=True)
    assert last["loss"] == pytest.approx(expected, rel=1e-5)
    assert last["loss"] < first["loss"] - 0.1
    # Without labels the model returns no loss: the error says where one comes from.
    with pytest.raises(ValueError, match=r"No loss to compute.*`loss` entry of its output"):
        model.fit(x, y, verbose=0)


def test_a_compiled_loss_applies_to_the_predictions_and_the_own_loss_is_left_aside():
    torch.manual_seed(0)
    x, y = _data()
    model = torchfit.Model(LogitsAndCache(own_loss=True), device="cpu")
    model.compile("sgd", loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs = {"x": x, "labels": np.zeros_like(y)}  # the own loss would see other labels
    logs = model.evaluate(inputs, y, batch_size=32, verbose=0, return_dict=True)
    expected = nn.functional.cross_entropy(
        model.module.dense(torch.from_numpy(x)), torch.from_numpy(y)
    ).item()
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


class DataclassHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.score = nn.Linear(4, 1)
        self.probs = nn.Linear(4, 3)

    def forward(self, x):
        return HeadsDC(self.score(x), self.probs(x).softmax(-1), note="not a tensor")


def test_dataclass_outputs_take_per_field_losses():
    torch.manual_seed(0)
    x, y = _data()
    model = torchfit.Model(DataclassHeads(), device="cpu")
    model.compile("sgd", loss={"score": "mse", "probs": "sparse_categorical_crossentropy"})
    history = model.fit(x, {"score": x[:, :1], "probs": y}, batch_size=8, verbose=0)
    assert sorted(history.history) == ["loss", "probs_loss", "score_loss"]
