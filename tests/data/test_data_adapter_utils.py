import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import torchfit
from torchfit.data import data_adapter_utils
from torchfit.data.data_adapter_utils import (
    class_weight_to_sample_weights,
    pack_x_y_sample_weight,
    standardize_batch,
    train_validation_split,
    unpack_x_y_sample_weight,
)


def test_unpack_forms():
    assert unpack_x_y_sample_weight("x") == ("x", None, None)
    assert unpack_x_y_sample_weight(("x",)) == ("x", None, None)
    assert unpack_x_y_sample_weight(("x", "y")) == ("x", "y", None)
    assert unpack_x_y_sample_weight(["x", "y", "w"]) == ("x", "y", "w")
    assert unpack_x_y_sample_weight({"a": 1}) == ({"a": 1}, None, None)


def test_unpack_too_long_raises():
    with pytest.raises(ValueError, match="Received a tuple of 4 elements"):
        unpack_x_y_sample_weight((1, 2, 3, 4))


def test_pack_forms():
    assert pack_x_y_sample_weight("x") == "x"
    assert pack_x_y_sample_weight(["a", "b"]) == (["a", "b"],)
    assert pack_x_y_sample_weight("x", "y") == ("x", "y")
    assert pack_x_y_sample_weight("x", "y", "w") == ("x", "y", "w")


def test_standardize_batch():
    t = torch.zeros(2)
    assert standardize_batch(t)[0] is t
    assert standardize_batch([t, t]) == (t, t)
    d = {"a": t}
    assert standardize_batch(d) == (d,)
    with pytest.raises(ValueError, match="tuple of 4"):
        standardize_batch((t, t, t, t))
    with pytest.raises(ValueError, match="tuple of 0"):
        standardize_batch(())


def test_map_structure_and_flatten_keep_structure():
    structure = {"a": [1, (2, None)], "b": 3}
    doubled = data_adapter_utils.map_structure(lambda v: v * 2, structure)
    assert doubled == {"a": [2, (4, None)], "b": 6}
    assert data_adapter_utils.flatten(structure) == [1, 2, 3]


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.float32])
def test_to_tensor_floats_become_float32(dtype):
    out = data_adapter_utils.to_tensor(np.ones((3, 2), dtype=dtype))
    assert out.dtype == torch.float32 and out.shape == (3, 2)


def test_to_tensor_keeps_ints_and_bools():
    assert data_adapter_utils.to_tensor(np.arange(3)).dtype == torch.int64
    assert data_adapter_utils.to_tensor(np.arange(3, dtype=np.int32)).dtype == torch.int32
    assert data_adapter_utils.to_tensor(np.array([True, False])).dtype == torch.bool
    assert (
        data_adapter_utils.to_tensor(torch.tensor([1.0], dtype=torch.float64)).dtype
        == torch.float32
    )


def test_to_tensor_shares_numpy_memory_for_float32():
    array = np.zeros(4, dtype=np.float32)
    tensor = data_adapter_utils.to_tensor(array)
    array[0] = 5
    assert tensor[0].item() == 5


def test_to_tensor_shares_a_writeable_view_with_a_zero_stride():
    # `labels[:, None]` is the everyday way to add a unit axis; its new axis has stride 0.
    labels = np.zeros(4, dtype=np.float32)
    view = labels[:, None]
    assert 0 in view.strides
    tensor = data_adapter_utils.to_tensor(view)
    labels[0] = 5
    assert tensor.shape == (4, 1) and tensor[0, 0].item() == 5


def test_to_tensor_read_only_and_reversed_arrays():
    array = np.arange(4.0)
    array.setflags(write=False)
    assert data_adapter_utils.to_tensor(array).tolist() == [0, 1, 2, 3]
    assert data_adapter_utils.to_tensor(np.arange(4)[::-1]).tolist() == [3, 2, 1, 0]


def test_to_tensor_pandas():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]})
    out = data_adapter_utils.to_tensor(frame)
    assert out.dtype == torch.float32 and out.tolist() == [[1, 3], [2, 4]]
    assert data_adapter_utils.to_tensor(pd.Series([1, 2])).dtype == torch.int64


def test_to_tensor_rejects_strings():
    with pytest.raises(TypeError, match="numeric"):
        data_adapter_utils.to_tensor(np.array(["a", "b"]))


def test_train_validation_split_last_fraction():
    x = np.arange(10).reshape(10, 1)
    y = torch.arange(10)
    (x_train, y_train, sw_train), (x_val, y_val, sw_val) = train_validation_split(
        (x, y, None), 0.25
    )
    assert x_train.shape[0] == 7 and y_train.tolist() == list(range(7))  # floor(10 * 0.75)
    assert x_val[:, 0].tolist() == [7, 8, 9] and y_val.tolist() == [7, 8, 9]
    assert sw_train is None and sw_val is None


def test_a_frame_with_a_non_numeric_column_names_the_column_through_fit():
    frame = pd.DataFrame(
        {"age": [30.0, 40.0, 50.0, 60.0], "city": ["a", "b", "a", "c"], "visits": [1, 2, 3, 4]}
    )
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile("sgd", "mse")
    with pytest.raises(
        TypeError,
        match=r"`x`: .*pandas column\(s\) 'city' \(.*\) hold values"
        r" that are no numbers",
    ):
        model.fit(frame, np.zeros(4), verbose=0)
    with pytest.raises(TypeError, match=r"`y`: .*pandas Series 'label'"):
        model.fit(
            frame.drop(columns="city").assign(x=1.0),
            pd.Series(["yes", "no", "yes", "no"], name="label"),
            verbose=0,
        )
    mixed = pd.DataFrame({"a": [1.0, 2.0], "b": pd.Series([3, 4], dtype=object)})
    assert data_adapter_utils.to_tensor(mixed).tolist() == [
        [1.0, 3.0],
        [2.0, 4.0],
    ]  # numbers in objects


def test_shared_host_tensor_shares_read_only_memory_and_host_tensor_copies_it():
    array = np.arange(6.0).reshape(3, 2)
    array.flags.writeable = False
    assert data_adapter_utils.shared_host_tensor(array).data_ptr() == array.ctypes.data
    assert data_adapter_utils.host_tensor(array).data_ptr() != array.ctypes.data


def test_shared_host_tensor_shares_a_broadcast_array_without_materializing_it():
    # Zero strides (np.broadcast_to, read-only) are shared as they are: 10**6 rows of
    # one row stay one row. Only negative strides, which torch cannot take, are copied.
    row = np.arange(4.0)
    array = np.broadcast_to(row, (10**6, 4))
    tensor = data_adapter_utils.shared_host_tensor(array)
    assert tensor.data_ptr() == row.ctypes.data and tensor.stride() == (0, 1)
    assert tensor.shape == (10**6, 4) and tensor[-1].tolist() == [0.0, 1.0, 2.0, 3.0]
    flipped = data_adapter_utils.shared_host_tensor(row[::-1])
    assert flipped.tolist() == [3.0, 2.0, 1.0, 0.0] and flipped.stride() == (1,)


def test_train_validation_split_nested_and_pandas():
    x = {"a": pd.DataFrame({"c": range(5)}), "b": [np.arange(5), np.arange(5)]}
    train, val = train_validation_split((x, pd.Series(range(5))), 0.2)
    assert len(train[0]["a"]) == 4 and val[0]["a"]["c"].tolist() == [4]
    assert val[0]["b"][1].tolist() == [4] and val[1].tolist() == [4]


def test_train_validation_split_rejects_non_arrays():
    loader = torch.utils.data.DataLoader(list(range(4)))
    with pytest.raises(ValueError, match="validation_split.*DataLoader.*validation_data"):
        train_validation_split((loader, None, None), 0.2)


@pytest.mark.parametrize("split", [1e-17, 0.99])
def test_train_validation_split_empty_part_raises(split):
    with pytest.raises(ValueError, match="validation_split"):
        train_validation_split((np.zeros(5),), split)


@pytest.mark.parametrize("split", [0.0, 1.0, -0.1, True])
def test_train_validation_split_out_of_range(split):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        train_validation_split((np.zeros(5),), split)


def test_class_weight_sparse_labels_missing_classes_weigh_one():
    weights = class_weight_to_sample_weights(np.array([0, 1, 2, 1]), {1: 3.0, 2: 0.5})
    assert weights.dtype == torch.float32
    assert weights.tolist() == [1.0, 3.0, 0.5, 3.0]


def test_class_weight_one_hot_and_column_targets():
    one_hot = np.eye(3)[[2, 0, 1]]
    assert class_weight_to_sample_weights(one_hot, {0: 2.0, 2: 4.0}).tolist() == [4.0, 2.0, 1.0]
    column = np.array([[1.0], [0.0], [1.0]])
    assert class_weight_to_sample_weights(column, {1: 5.0}).tolist() == [5.0, 1.0, 5.0]


def test_class_weight_rounds_float_labels_and_casts_keys():
    labels = torch.tensor([0.9, 0.2, 1.6])
    assert class_weight_to_sample_weights(labels, {"1": 2.0, 2.0: 7.0}).tolist() == [2.0, 1.0, 7.0]


def test_class_weight_labels_above_and_below_keys():
    weights = class_weight_to_sample_weights(np.array([5, 3, 4, -1]), {3: 2.0, 4: 9.0})
    assert weights.tolist() == [1.0, 2.0, 9.0, 1.0]


def test_class_weight_invalid_keys_and_values():
    with pytest.raises(ValueError, match="keys must be integer"):
        class_weight_to_sample_weights(np.array([0]), {"cat": 1.0})
    with pytest.raises(ValueError, match="values must be numbers"):
        class_weight_to_sample_weights(np.array([0]), {0: "heavy"})
    with pytest.raises(TypeError, match="must be a dict"):
        class_weight_to_sample_weights(np.array([0]), [1.0, 2.0])
    with pytest.raises(ValueError, match="empty dict"):
        class_weight_to_sample_weights(np.array([0]), {})


@pytest.mark.parametrize(
    "structure, expected",
    [
        (np.zeros(2), True),
        ([np.zeros(2), torch.zeros(2)], True),
        ({"a": np.zeros(2), "b": None}, True),
        ([], False),
        ({}, False),
        ([np.zeros(2), []], False),
        ([1.0, 2.0], False),
    ],
)
def test_is_array_structure_needs_arrays_and_at_least_one(structure, expected):
    # An empty list or dict holds no inputs: calling it a structure of arrays lets
    # `fit([])` through to fail deep in the adapter.
    assert data_adapter_utils.is_array_structure(structure) is expected
