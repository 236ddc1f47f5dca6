"""torchfit.data.dict_rows: a sized, indexable dataset of dict rows (a `datasets.Dataset`,
or a torch Dataset of dicts) batched as arrays are, with its columns chosen by forward."""

import logging
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.data import get_adapter
from torchfit.data.dict_rows import DictRowsAdapter, choose_columns
from torchfit.models.forward import ForwardSignature


class Rows(torch.utils.data.Dataset):
    """Dict rows read one by one, as a torch Dataset of dicts is."""

    def __init__(self, columns):
        self.columns = columns

    def __len__(self):
        return len(next(iter(self.columns.values())))

    def __getitem__(self, index):
        return {name: values[index] for name, values in self.columns.items()}


def forward_x(x):
    return x


def forward_ids(input_ids, attention_mask=None, labels=None):
    return input_ids


def _data(n=20):
    x = np.random.default_rng(0).normal(size=(n, 3)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5], "float32"))[:, None]


# ------------------------------------------------------------------ the column rule
def test_columns_named_after_forward_are_x_and_label_reaches_it_as_labels():
    signature = ForwardSignature(forward_ids)
    columns = choose_columns(
        ["text", "input_ids", "attention_mask", "label"], signature, text=("text",)
    )
    assert columns.x == [("input_ids", "input_ids"), ("attention_mask", "attention_mask")] + [
        ("labels", "label")
    ]
    assert columns.y == "label" and columns.unused == ["text"] and columns.bare_x is None
    # `labels` wins over `label`; predict has no target.
    assert choose_columns(["input_ids", "label", "labels"], signature).y == "labels"
    assert choose_columns(["input_ids", "label"], signature, "predict").y is None


def test_one_column_besides_the_labels_is_x_whatever_its_name():
    columns = choose_columns(["features", "label"], ForwardSignature(forward_x))
    assert columns.bare_x == "features" and columns.y == "label" and columns.x == []
    # A forward that takes labels gets the one column as its first input.
    columns = choose_columns(["tokens", "label"], ForwardSignature(forward_ids))
    assert columns.x == [("input_ids", "tokens"), ("labels", "label")]


def test_no_column_that_can_be_an_input_is_an_error_naming_the_columns():
    with pytest.raises(ValueError, match=r"\['a', 'b', 'label'\] is an input of forward\(x\)"):
        choose_columns(["a", "b", "label"], ForwardSignature(forward_x))


# ------------------------------------------------------------- through a real Model
def test_fit_on_dict_rows_draws_the_same_batches_as_arrays():
    x, y = _data(20)
    weights = []
    for data in ((x, y), (Rows({"x": list(x), "label": list(y)}),)):
        torch.manual_seed(0)
        model = torchfit.Model(nn.Linear(3, 1), device="cpu")
        model.compile("sgd", "mse")
        history = model.fit(*data, batch_size=6, epochs=2, shuffle=True, verbose=0)
        weights.append((model.get_weights(), history.history["loss"]))
    (arrays, arrays_loss), (rows, rows_loss) = weights
    for a, b in zip(arrays, rows):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(arrays_loss, rows_loss, rtol=1e-6)


def test_validation_split_holds_out_the_last_rows():
    x, y = _data(20)
    logs = []
    for data in ((x, y), (Rows({"x": list(x), "label": list(y)}),)):
        torch.manual_seed(0)
        model = torchfit.Model(nn.Linear(3, 1), device="cpu")
        model.compile("sgd", "mse")
        history = model.fit(*data, batch_size=4, validation_split=0.3, verbose=0)
        logs.append(history.history)
    assert logs[0]["val_loss"] == pytest.approx(logs[1]["val_loss"], rel=1e-6)
    assert logs[0]["loss"] == pytest.approx(logs[1]["loss"], rel=1e-6)


def test_the_adapter_batches_rows_with_batch_size_and_a_partial_last_batch():
    x, y = _data(10)
    adapter = DictRowsAdapter(Rows({"x": list(x), "label": list(y)}), batch_size=4)
    assert (adapter.num_batches, adapter.partial_batch_size) == (3, 2)
    batches = list(adapter.get_iterator())
    # With no signature, every column but the labels is an input, by name.
    assert [tuple(b[0]["x"].shape) for b in batches] == [(4, 3), (4, 3), (2, 3)]
    np.testing.assert_array_equal(torch.cat([b[1] for b in batches]).numpy(), y)


# ----------------------------------------------------------------------- errors
def test_y_beside_a_dataset_of_rows_is_an_error_saying_where_targets_come_from():
    x, y = _data(4)
    with pytest.raises(ValueError, match=r"`y` should not be passed.*`labels` \(or `label`\)"):
        get_adapter(Rows({"x": list(x)}), y=y)


def test_rows_of_different_lengths_ask_for_padding():
    rows = Rows({"input_ids": [[1, 2], [1, 2, 3]], "label": [0, 1]})
    adapter = DictRowsAdapter(rows, forward_signature=ForwardSignature(forward_ids))
    with pytest.raises(ValueError, match=r"column 'input_ids' holds rows of different lengths"):
        next(iter(adapter.get_iterator()))


def test_a_dict_of_splits_asks_for_one_split():
    x, _ = _data(4)
    splits = {"train": Rows({"x": list(x)}), "test": Rows({"x": list(x)})}
    with pytest.raises(ValueError, match=r"not one dataset. Pass one split, e.g. x=ds\['test'\]"):
        get_adapter(splits)


def test_a_column_close_to_a_parameter_is_warned_about_and_the_choice_logged(caplog):
    rows = Rows({"input_ids": [[1, 2]], "attention_masks": [[1, 1]], "label": [0]})
    with caplog.at_level(logging.INFO, logger="torchfit"):
        with pytest.warns(UserWarning, match=r"'attention_masks' is not used.*'attention_mask'"):
            DictRowsAdapter(rows, forward_signature=ForwardSignature(forward_ids), purpose="fit")
    assert "not used: ['attention_masks']" in caplog.text
    with warnings.catch_warnings():  # said once per process
        warnings.simplefilter("error")
        DictRowsAdapter(rows, forward_signature=ForwardSignature(forward_ids), purpose="fit")


# ------------------------------------------------------------ a datasets.Dataset
def test_a_datasets_dataset_is_read_a_batch_of_rows_at_a_time():
    datasets = pytest.importorskip("datasets")
    x, y = _data(10)
    ds = datasets.Dataset.from_dict({"note": ["a"] * 10, "x": x.tolist(), "label": y.tolist()})
    adapter = get_adapter(ds, batch_size=4, forward_signature=ForwardSignature(forward_x))
    assert isinstance(adapter, DictRowsAdapter) and adapter.columns.unused == ["note"]
    batches = list(adapter.get_iterator())
    assert [tuple(b[0]["x"].shape) for b in batches] == [(4, 3), (4, 3), (2, 3)]
    np.testing.assert_allclose(torch.cat([b[0]["x"] for b in batches]).numpy(), x, rtol=1e-6)
    np.testing.assert_allclose(torch.cat([b[1] for b in batches]).numpy(), y, rtol=1e-6)
