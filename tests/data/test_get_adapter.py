import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import torchfit
from torchfit.data import (
    ArrayDataAdapter,
    DataLoaderAdapter,
    DatasetAdapter,
    EpochIterator,
    GeneratorDataAdapter,
    SequenceAdapter,
    get_adapter,
)
from torchfit.utils.sequence import Sequence


class TinyDataset(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return torch.tensor([float(index)]), index


class TinySequence(Sequence):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return np.zeros((2, 1)), np.zeros(2)


def batches():
    yield np.zeros((2, 1)), np.zeros(2)


class Batches:
    def __iter__(self):
        return batches()


@pytest.mark.parametrize(
    "x, kind",
    [
        (np.zeros((4, 1)), ArrayDataAdapter),
        (torch.zeros(4, 1), ArrayDataAdapter),
        (pd.DataFrame({"a": [1.0, 2.0]}), ArrayDataAdapter),
        ([np.zeros(4), torch.zeros(4)], ArrayDataAdapter),
        ({"a": np.zeros(4)}, ArrayDataAdapter),
        (TensorDataset(torch.zeros(4, 1), torch.zeros(4)), ArrayDataAdapter),
        (TinyDataset(), DatasetAdapter),
        (DataLoader(TinyDataset(), batch_size=2), DataLoaderAdapter),
        (TinySequence(), SequenceAdapter),
        (batches(), GeneratorDataAdapter),
        (Batches(), GeneratorDataAdapter),
    ],
)
def test_dispatch(x, kind):
    assert type(get_adapter(x)) is kind


def test_adapter_passes_through():
    adapter = ArrayDataAdapter(np.zeros(3))
    assert get_adapter(adapter) is adapter


def test_tensor_dataset_uses_array_path_with_all_parts():
    data = TensorDataset(torch.zeros(5, 1), torch.arange(5), torch.ones(5))
    adapter = get_adapter(data, batch_size=2, shuffle=True)
    assert adapter.num_batches == 3
    assert all(len(batch) == 3 for batch in adapter.get_iterator())


def test_tensor_dataset_parts_keep_their_roles():
    data = TensorDataset(torch.zeros(4, 3), torch.ones(4, 1), torch.full((4,), 2.0))
    x, y, sample_weight = next(iter(get_adapter(data, batch_size=4, shuffle=False).get_iterator()))
    assert x.shape == (4, 3) and float(x.sum()) == 0.0
    assert y.shape == (4, 1) and float(y.sum()) == 4.0
    assert sample_weight.tolist() == [2.0] * 4


def test_device_places_batches():
    adapter = get_adapter(np.zeros((3, 1)), np.zeros(3), device="cpu")
    x, y = next(iter(adapter.get_iterator()))
    assert x.device == torch.device("cpu")


def test_epoch_iterator_end_to_end():
    iterator = EpochIterator(get_adapter(np.zeros((10, 2)), np.arange(10), batch_size=3))
    steps = [step for step, _ in iterator.enumerate_epoch()]
    assert steps == [0, 1, 2, 3] and iterator.num_batches == 4


@pytest.mark.parametrize(
    "x",
    [
        DataLoader(TinyDataset()),
        TinyDataset(),
        TinySequence(),
        batches(),
        Batches(),
    ],
)
@pytest.mark.parametrize("argument", ["y", "sample_weight"])
def test_y_and_sample_weight_rejected_for_datasets(x, argument):
    with pytest.raises(ValueError, match=f"`{argument}` should not be passed"):
        get_adapter(x, **{argument: np.zeros(4)})


def test_class_weight_rejected_for_dataloader():
    with pytest.raises(ValueError, match="class_weight` is not supported for a torch DataLoader"):
        get_adapter(DataLoader(TinyDataset()), class_weight={0: 1.0})


def test_class_weight_rejected_for_multi_output():
    with pytest.raises(ValueError, match="class_weight is only supported for single-output models"):
        get_adapter(np.zeros(4), {"a": np.zeros(4), "b": np.zeros(4)}, class_weight={0: 2.0})


def test_class_weight_only_for_fit():
    with pytest.raises(ValueError, match="only used by `fit"):
        get_adapter(np.zeros(4), np.zeros(4), class_weight={0: 2.0}, purpose="evaluate")


def test_class_weight_for_dataset():
    adapter = get_adapter(TinyDataset(), batch_size=4, class_weight={2: 3.0})
    ((_, _, weights),) = list(adapter.get_iterator())
    assert weights.tolist() == [1.0, 1.0, 3.0, 1.0]


@pytest.mark.parametrize(
    "x, what",
    [
        (DataLoader(TinyDataset()), "DataLoader"),
        (batches(), "generator"),
        (Batches(), "iterable"),
    ],
)
def test_shuffle_ignored_with_warning(x, what):
    with pytest.warns(UserWarning, match=f"shuffle=True.*{what}"):
        get_adapter(x, shuffle=True)


def test_unsupported_type_lists_accepted_kinds():
    with pytest.raises(ValueError, match="`x`: int. An int is not valid data.*NumPy arrays"):
        get_adapter(3)
    with pytest.raises(ValueError, match="type for `x`: str. A str is not valid data: `predict"):
        get_adapter("data.csv", purpose="predict")


def test_fit_with_an_int_x_says_an_int_is_no_data():
    model = torchfit.Model(nn.Linear(2, 1), device="cpu")
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"An int is not valid data: `fit\(\)` accepts") as info:
        model.fit(5, np.zeros((4, 1)), verbose=0)
    assert "iterable, `y`" not in str(info.value)


def test_arguments_rejected_for_an_iterable_use_an():
    with pytest.raises(ValueError, match="When `x` is an iterable, `y` should not be passed"):
        get_adapter(Batches(), y=np.zeros(2))
    with pytest.warns(UserWarning, match="provided as an iterable"):
        get_adapter(Batches(), shuffle=True)


def test_list_of_numbers_rejected_with_hint():
    with pytest.raises(ValueError, match="not all arrays.*int.*np.asarray"):
        get_adapter([1, 2, 3])


def test_x_none_rejected():
    with pytest.raises(ValueError, match="`evaluate\\(\\)` needs data"):
        get_adapter(None, purpose="evaluate")


def test_y_of_wrong_type_rejected():
    with pytest.raises(ValueError, match="`y` must be an array.*list"):
        get_adapter(np.zeros(3), [0, 1, 2])


def test_length_mismatch():
    with pytest.raises(ValueError, match="x has 100 samples, y has 90"):
        get_adapter(np.zeros((100, 2)), np.zeros(90))


@pytest.mark.parametrize("one", [1, np.int64(1)])
def test_batch_size_and_steps_of_one_are_valid(one):
    # 1 is the smallest positive integer, also as a NumPy integer (e.g. from arithmetic).
    adapter = get_adapter(np.arange(3.0), np.arange(3.0), batch_size=one, steps=one)
    assert adapter.num_batches == 3
    assert EpochIterator(adapter, steps_per_epoch=one).num_batches == 1


@pytest.mark.parametrize("batch_size", [0, -1, 1.5])
def test_invalid_batch_size(batch_size):
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        get_adapter(np.zeros(3), batch_size=batch_size)


def test_invalid_steps_named_by_purpose():
    with pytest.raises(ValueError, match="`steps_per_epoch`"):
        get_adapter(np.zeros(3), steps=0)
    with pytest.raises(ValueError, match="`steps`"):
        get_adapter(np.zeros(3), steps=0, purpose="predict")


def test_invalid_purpose():
    with pytest.raises(ValueError, match="purpose"):
        get_adapter(np.zeros(3), purpose="train")


def test_a_list_of_batch_tuples_is_an_iterable_of_batches():
    batches = [(np.ones((4, 2), "float32"), np.zeros((4, 1), "float32"))] * 3
    adapter = get_adapter(batches, purpose="fit")
    seen = list(adapter.get_iterator())
    assert len(seen) == 3
    assert tuple(seen[0][0].shape) == (4, 2) and tuple(seen[0][1].shape) == (4, 1)


def _linear_model(net=None):
    model = torchfit.Model(net if net is not None else nn.Linear(2, 1))
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.mark.parametrize("x", [[], {}])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_empty_list_or_dict_is_rejected_not_run_as_no_data(x, method):
    # An empty list is neither a list of batches (fit would "train" with loss 0) nor a
    # structure of arrays (the adapter would fail deep inside).
    with pytest.raises(ValueError, match="`x` is a (list|dict).*it is empty"):
        getattr(_linear_model(), method)(x, verbose=0)


def test_a_list_of_one_batch_trains_like_the_arrays_it_holds():
    torch.manual_seed(0)
    net = nn.Linear(2, 1)
    twin = copy.deepcopy(net)
    x, y = np.ones((4, 2), "float32"), np.full((4, 1), 3.0, "float32")
    from_list = _linear_model(net).fit([(x, y)], epochs=2, shuffle=False, verbose=0)
    from_arrays = _linear_model(twin).fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert from_list.history["loss"] == pytest.approx(from_arrays.history["loss"])
    assert from_list.history["loss"][1] < from_list.history["loss"][0]
    assert torch.equal(net.weight, twin.weight)
