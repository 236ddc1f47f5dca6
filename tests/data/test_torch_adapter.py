import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from torchfit.data.array_adapter import ArrayDataAdapter
from torchfit.data.torch_adapter import DataLoaderAdapter, DatasetAdapter


class PairDataset(Dataset):
    """Items `(x, y)` as float64 NumPy and int, like many hand-written datasets."""

    def __init__(self, n, extra=None):
        self.n = n
        self.extra = extra

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        x = np.full(2, float(index))
        if self.extra == "x_only":
            return x
        if self.extra == "dict":
            return {"a": x, "b": index}
        if self.extra == "weights":
            return x, index, 0.5
        return x, index


class CountingIterable(IterableDataset):
    def __iter__(self):
        for i in range(5):
            yield torch.tensor([float(i)]), i


def test_dataloader_batches_used_as_is():
    data = TensorDataset(torch.arange(10.0, dtype=torch.float64).unsqueeze(1), torch.arange(10))
    adapter = DataLoaderAdapter(DataLoader(data, batch_size=4))
    assert adapter.num_batches == 3 and adapter.batch_size == 4
    assert adapter.has_partial_batch and adapter.partial_batch_size == 2
    batches = list(adapter.get_iterator())
    assert all(isinstance(b, tuple) and len(b) == 2 for b in batches)
    assert batches[0][0].dtype == torch.float64  # a user's loader keeps its dtypes
    assert batches[-1][1].tolist() == [8, 9]


def test_dataloader_over_plain_tensors_gives_x_only():
    adapter = DataLoaderAdapter(DataLoader(torch.zeros(6, 2), batch_size=4))
    assert [len(b) for b in adapter.get_iterator()] == [1, 1]
    assert adapter.partial_batch_size == 2


def test_dataloader_unknown_length():
    adapter = DataLoaderAdapter(DataLoader(CountingIterable(), batch_size=2))
    assert adapter.num_batches is None and adapter.has_partial_batch is None
    assert [b[1].tolist() for b in adapter.get_iterator()] == [[0, 1], [2, 3], [4]]


def test_dataset_is_batched_and_cast():
    adapter = DatasetAdapter(PairDataset(70))
    assert adapter.batch_size == 32 and adapter.num_batches == 3
    assert adapter.partial_batch_size == 6
    batches = list(adapter.get_iterator())
    x, y = batches[0]
    assert x.shape == (32, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert batches[-1][1].tolist() == list(range(64, 70))


@pytest.mark.parametrize("extra, length", [("x_only", 1), ("weights", 3)])
def test_dataset_item_forms(extra, length):
    batch = next(iter(DatasetAdapter(PairDataset(4, extra), batch_size=2).get_iterator()))
    assert len(batch) == length
    if extra == "weights":
        assert batch[2].dtype == torch.float32 and batch[2].tolist() == [0.5, 0.5]


def test_dataset_dict_items_are_x():
    (x,) = next(iter(DatasetAdapter(PairDataset(4, "dict"), batch_size=4).get_iterator()))
    assert set(x) == {"a", "b"} and x["b"].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("seed", [0, 5])
def test_dataset_shuffle_matches_array_path(seed):
    values = np.arange(9, dtype=np.float64)
    dataset_adapter = DatasetAdapter(PairDataset(9), batch_size=4, shuffle=True)
    array_adapter = ArrayDataAdapter(
        np.stack([values, values], 1), np.arange(9), batch_size=4, shuffle=True
    )
    torch.manual_seed(seed)
    from_dataset = [b[1].tolist() for b in dataset_adapter.get_iterator()]
    torch.manual_seed(seed)
    from_arrays = [b[1].tolist() for b in array_adapter.get_iterator()]
    assert from_dataset == from_arrays
    assert sorted(sum(from_dataset, [])) == list(range(9))


def test_dataset_shuffle_batch_within_chunks():
    torch.manual_seed(1)
    adapter = DatasetAdapter(PairDataset(7), batch_size=3, shuffle="batch")
    assert [sorted(b[1].tolist()) for b in adapter.get_iterator()] == [[0, 1, 2], [3, 4, 5], [6]]


def test_dataset_class_weight():
    adapter = DatasetAdapter(PairDataset(4), batch_size=4, class_weight={1: 2.0, 3: 4.0})
    ((_, y, weights),) = list(adapter.get_iterator())
    assert weights.tolist() == [1.0, 2.0, 1.0, 4.0]


def test_iterable_dataset_is_batched_and_shuffle_warns():
    with pytest.warns(UserWarning, match="shuffle"):
        adapter = DatasetAdapter(CountingIterable(), batch_size=2, shuffle=True)
    assert adapter.num_batches is None
    assert [b[1].tolist() for b in adapter.get_iterator()] == [[0, 1], [2, 3], [4]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dataset_on_cuda_is_pinned_and_moved():
    adapter = DatasetAdapter(PairDataset(5), batch_size=2, device=torch.device("cuda"))
    assert adapter._loader.pin_memory
    batches = list(adapter.get_iterator())
    assert all(t.device.type == "cuda" for batch in batches for t in batch)
    assert batches[0][0].dtype == torch.float32


def test_a_dataset_gives_chosen_rows_and_says_how_it_splits():
    adapter = DatasetAdapter(PairDataset(10), batch_size=4, shuffle=True)
    assert (adapter.split_by, adapter.num_samples, adapter.batch_size) == ("rows", 10, 4)
    assert adapter.shuffle is True
    batches = list(
        adapter.row_batches(torch.tensor([3, 1, 4, 0, 2, 9, 8, 7, 6, 5]), [(1, 3), (6, 9)])
    )
    assert [b[1].tolist() for b in batches] == [[1, 4], [8, 7, 6]]
    assert batches[0][0].dtype == torch.float32 and batches[0][0][:, 0].tolist() == [1.0, 4.0]
    iterable = DatasetAdapter(CountingIterable(), batch_size=2)
    assert iterable.split_by is None and iterable.shuffle is False


def test_a_dataloader_is_split_by_its_loader_and_converts_its_batches():
    loader = DataLoader(PairDataset(6), batch_size=3)
    adapter = DataLoaderAdapter(loader)
    assert adapter.split_by == "loader" and adapter.loader is loader
    x, y = adapter.convert_batch(next(iter(loader)))
    assert x.dtype == torch.float64 and y.tolist() == [0, 1, 2]  # a user's loader keeps dtypes
    assert DataLoaderAdapter(DataLoader(CountingIterable(), batch_size=2)).split_by is None
