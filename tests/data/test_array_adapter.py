import os

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import torchfit
from torchfit.data import array_adapter
from torchfit.data.array_adapter import ArrayDataAdapter, epoch_permutation


def _batches(adapter):
    return list(adapter.get_iterator())


def test_numpy_batches_dtypes_and_partial_batch():
    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    y = np.arange(10)
    adapter = ArrayDataAdapter(x, y, batch_size=4)
    assert (adapter.num_batches, adapter.batch_size) == (3, 4)
    assert adapter.has_partial_batch and adapter.partial_batch_size == 2
    batches = _batches(adapter)
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    assert all(len(b) == 2 for b in batches)
    assert batches[0][0].dtype == torch.float32 and batches[0][1].dtype == torch.int64
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.arange(10))


def test_no_partial_batch():
    adapter = ArrayDataAdapter(np.zeros((8, 1)), batch_size=4)
    assert not adapter.has_partial_batch and adapter.partial_batch_size is None


def test_x_only_gives_one_element_tuples():
    batches = _batches(ArrayDataAdapter(torch.zeros(5, 3), batch_size=2))
    assert all(isinstance(b, tuple) and len(b) == 1 for b in batches)


def test_float32_tensor_batches_are_views_without_copy():
    x = torch.randn(6, 3)
    first = _batches(ArrayDataAdapter(x, batch_size=3))[0][0]
    assert first.data_ptr() == x.data_ptr()


def test_default_batch_size_and_from_steps():
    assert ArrayDataAdapter(np.zeros((100, 1))).batch_size == 32
    adapter = ArrayDataAdapter(np.zeros((10, 1)), steps=3)
    assert adapter.batch_size == 4 and adapter.num_batches == 3


def test_bool_and_pandas_inputs():
    frame = pd.DataFrame({"a": np.arange(4.0), "b": np.arange(4)})
    series = pd.Series([True, False, True, True])
    ((x, y),) = _batches(ArrayDataAdapter(frame, series, batch_size=4))
    assert x.dtype == torch.float32 and x.shape == (4, 2)
    assert y.dtype == torch.bool and y.tolist() == [True, False, True, True]


def test_nested_inputs_keep_structure():
    x = {"image": np.zeros((5, 2, 2)), "meta": [np.ones((5, 1)), np.arange(5)]}
    y = [np.zeros(5), np.ones((5, 3))]
    batch = _batches(ArrayDataAdapter(x, y, batch_size=2))[-1]
    bx, by = batch
    assert set(bx) == {"image", "meta"} and isinstance(bx["meta"], list)
    assert bx["image"].shape == (1, 2, 2) and bx["meta"][1].tolist() == [4]
    assert isinstance(by, list) and by[1].shape == (1, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffle_matches_hand_written_randperm_loop(seed):
    x = torch.arange(11.0).unsqueeze(1)
    y = torch.arange(11)
    adapter = ArrayDataAdapter(x, y, batch_size=4, shuffle=True)
    torch.manual_seed(seed)
    got = [_batches(adapter) for _ in range(2)]
    torch.manual_seed(seed)
    for epoch in range(2):
        permutation = torch.randperm(11)
        xs, ys = x[permutation], y[permutation]
        for i, (bx, by) in enumerate(got[epoch]):
            assert torch.equal(bx, xs[4 * i : 4 * i + 4])
            assert torch.equal(by, ys[4 * i : 4 * i + 4])
    orders = [torch.cat([by for _, by in epoch]).tolist() for epoch in got]
    assert orders[0] != orders[1]  # a new permutation each epoch


def test_shuffle_keeps_pairs_together_and_covers_all():
    x = np.arange(50)
    adapter = ArrayDataAdapter(x.astype(np.float32), x, batch_size=8, shuffle=True)
    batches = _batches(adapter)
    assert all(torch.equal(bx.long(), by) for bx, by in batches)
    assert sorted(torch.cat([by for _, by in batches]).tolist()) == list(range(50))


@pytest.mark.parametrize("seed", [0, 3])
def test_shuffle_batch_only_shuffles_within_chunks(seed):
    torch.manual_seed(seed)
    adapter = ArrayDataAdapter(np.arange(10), batch_size=4, shuffle="batch")
    batches = [b[0].tolist() for b in _batches(adapter)]
    assert [sorted(b) for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_shuffle_batch_permutation_differs_from_identity():
    torch.manual_seed(0)
    order = epoch_permutation(40, 8, "batch")
    assert sorted(order.tolist()) == list(range(40))
    assert order.tolist() != list(range(40))
    assert epoch_permutation(5, 2, False) is None


def test_invalid_shuffle_raises():
    with pytest.raises(ValueError, match="shuffle"):
        ArrayDataAdapter(np.zeros(4), shuffle="yes")


def test_cardinality_mismatch_message():
    with pytest.raises(ValueError, match="x has 100 samples, y has 90"):
        ArrayDataAdapter(np.zeros((100, 2)), np.zeros(90))
    with pytest.raises(ValueError, match="sample_weight has 3 samples"):
        ArrayDataAdapter(np.zeros(4), np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="x has 5/4 samples"):
        ArrayDataAdapter([np.zeros(4), np.zeros(5)])


def test_empty_and_scalar_data_raise():
    with pytest.raises(ValueError, match="0 samples"):
        ArrayDataAdapter(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="batch"):
        ArrayDataAdapter(np.float32(1.0))


def test_sample_weight_batches():
    adapter = ArrayDataAdapter(np.zeros((5, 1)), np.zeros(5), np.arange(5.0), batch_size=2)
    weights = [b[2].tolist() for b in _batches(adapter)]
    assert weights == [[0.0, 1.0], [2.0, 3.0], [4.0]]


def test_single_sample_weight_replicated_to_each_output():
    y = {"a": np.zeros(4), "b": np.zeros(4)}
    ((_, _, weights),) = _batches(ArrayDataAdapter(np.zeros(4), y, np.arange(4.0), batch_size=4))
    assert set(weights) == {"a", "b"} and weights["b"].tolist() == [0, 1, 2, 3]
    ((_, _, weights),) = _batches(
        ArrayDataAdapter(np.zeros(4), [np.zeros(4)] * 2, np.ones(4), batch_size=4)
    )
    assert isinstance(weights, list) and len(weights) == 2


def test_sample_weight_structure_must_match_outputs():
    with pytest.raises(ValueError, match="one array per output"):
        ArrayDataAdapter(np.zeros(4), [np.zeros(4)] * 2, [np.ones(4)] * 3)
    with pytest.raises(ValueError, match="one weight per sample"):
        ArrayDataAdapter(np.zeros(4), [np.zeros(4)] * 2, np.ones((4, 3)))


def test_class_weight_sparse_targets():
    y = np.array([0, 1, 2, 1, 0])
    adapter = ArrayDataAdapter(np.zeros((5, 1)), y, batch_size=5, class_weight={0: 0.5, 1: 2.0})
    ((_, by, weights),) = _batches(adapter)
    assert by.tolist() == y.tolist()
    assert weights.tolist() == [0.5, 2.0, 1.0, 2.0, 0.5]


@pytest.mark.parametrize("seed", [0, 1])
def test_class_weight_follows_shuffle(seed):
    torch.manual_seed(seed)
    y = np.eye(3)[[0, 1, 2, 2, 1, 0]]
    adapter = ArrayDataAdapter(
        np.zeros((6, 1)), y, batch_size=4, shuffle=True, class_weight={0: 1.0, 1: 2.0, 2: 3.0}
    )
    for _, by, weights in _batches(adapter):
        assert torch.equal(weights, by.argmax(1).float() + 1)


def test_class_weight_single_entry_dict_target():
    ((_, _, weights),) = _batches(
        ArrayDataAdapter(
            np.zeros(2), {"out": np.array([1, 0])}, batch_size=2, class_weight={1: 3.0}
        )
    )
    assert weights["out"].tolist() == [3.0, 1.0]


def test_class_weight_rejects_multi_output_and_sample_weight():
    with pytest.raises(ValueError, match="class_weight is only supported for single-output models"):
        ArrayDataAdapter(np.zeros(2), [np.zeros(2), np.zeros(2)], class_weight={0: 1.0})
    with pytest.raises(ValueError, match="class_weight.*sample_weight"):
        ArrayDataAdapter(np.zeros(2), np.zeros(2), np.ones(2), class_weight={0: 1.0})
    with pytest.raises(ValueError, match="needs targets"):
        ArrayDataAdapter(np.zeros(2), class_weight={0: 1.0})


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
def test_cuda_data_moved_once_and_batches_on_device():
    device = torch.device("cuda")
    adapter = ArrayDataAdapter(
        np.arange(10.0), np.arange(10), batch_size=4, device=device, class_weight={1: 2.0}
    )
    batches = _batches(adapter)
    assert all(t.device.type == "cuda" for batch in batches for t in batch)
    assert batches[0][2].tolist() == [1.0, 2.0, 1.0, 1.0]


@needs_cuda
@pytest.mark.parametrize("shuffle", [False, True])
def test_cuda_staged_pinned_path_matches_cpu(monkeypatch, shuffle):
    import torchfit.data.array_adapter as array_adapter

    monkeypatch.setattr(array_adapter, "DEVICE_MEMORY_FRACTION", 0.0)
    x = torch.arange(30.0).reshape(15, 2)
    staged = ArrayDataAdapter(
        x, torch.arange(15), batch_size=4, shuffle=shuffle, device=torch.device("cuda")
    )
    reference = ArrayDataAdapter(x, torch.arange(15), batch_size=4, shuffle=shuffle)
    assert staged.gathers_in_place and not staged._on_device
    for seed in (0, 1):  # two epochs, two orders
        torch.manual_seed(seed)
        got = [[t.cpu() for t in batch] for batch in _batches(staged)]
        torch.manual_seed(seed)
        expected = _batches(reference)
        assert len(got) == len(expected) == 4
        for (gx, gy), (ex, ey) in zip(got, expected):
            assert torch.equal(gx, ex) and torch.equal(gy, ey)


# ------------------------------------------- memory bounded by the data, not its copies
def _memmap(tmp_path, rows, features=4, dtype=np.float32):
    path = tmp_path / "x.npy"
    x = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(rows, features))
    x[:] = np.random.default_rng(0).random((rows, features))
    x.flush()
    del x
    return np.load(path, mmap_mode="r")


def _trained_weights(x, y, **fit_kwargs):
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(x.shape[1], 1), device="cpu")
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0, **fit_kwargs)
    return model.get_weights()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_memmap_is_gathered_in_place_and_trains_like_the_array_in_memory(tmp_path, dtype):
    x = _memmap(tmp_path, 50, dtype=dtype)
    y = np.random.default_rng(1).random((50, 1), dtype=np.float32)
    adapter = ArrayDataAdapter(x, y, batch_size=8, shuffle=True)
    assert adapter.gathers_in_place
    assert not ArrayDataAdapter(np.array(x), y, batch_size=8, shuffle=True).gathers_in_place
    in_place, in_memory = _trained_weights(x, y), _trained_weights(np.array(x), y)
    assert all(np.array_equal(a, b) for a, b in zip(in_place, in_memory))
    start, stop = x.ctypes.data, x.ctypes.data + x.nbytes
    for shuffle in (True, False):
        batch = next(iter(ArrayDataAdapter(x, y, batch_size=8, shuffle=shuffle).get_iterator()))[0]
        assert batch.dtype == torch.float32
        assert not start <= batch.data_ptr() < stop  # a copy: the mapping is read-only


def test_data_large_next_to_free_host_memory_is_gathered_by_index(monkeypatch):
    x = np.random.default_rng(0).random((50, 4))
    y = np.arange(50) % 2
    expected = _trained_weights(x, y, class_weight={0: 1.0, 1: 3.0})
    monkeypatch.setattr(array_adapter, "_available_host_memory", lambda: x.nbytes)
    assert ArrayDataAdapter(x, y, shuffle=True).gathers_in_place
    assert not ArrayDataAdapter(x.astype(np.float32), y, shuffle=False).gathers_in_place
    got = _trained_weights(x, y, class_weight={0: 1.0, 1: 3.0})
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def _rss_anon_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon line")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RssAnon (Linux)")
def test_fit_on_a_memmap_with_shuffle_holds_no_copy_of_the_data(tmp_path):
    x = _memmap(tmp_path, 32768, features=1024)  # 128 MiB on disk
    y = np.zeros((len(x), 1), np.float32)
    data_mib = x.nbytes / 2**20
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(1024, 1), device="cpu")
    model.compile("sgd", "mse")
    samples = []
    sample = torchfit.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: samples.append(_rss_anon_mib())
    )
    start = _rss_anon_mib()
    model.fit(x, y, batch_size=1024, epochs=2, shuffle=True, verbose=0, callbacks=[sample])
    # The mapped pages count as file memory; a copy of the data (the float32
    # conversion, a shuffled copy per epoch) would add `data_mib` of anonymous memory.
    assert max(samples) - start < 0.5 * data_mib


def test_row_batches_give_the_chosen_rows_in_place_or_converted(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(20.0).reshape(10, 2))
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    y = np.arange(10)
    order = torch.tensor([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    bounds = [(0, 3), (5, 5), (8, 10)]  # an empty share too: a rank's part of a tiny batch
    in_place = ArrayDataAdapter(x, y, batch_size=4, shuffle=True)
    converted = ArrayDataAdapter(np.array(x), y, batch_size=4, shuffle="batch")
    assert in_place.gathers_in_place and not converted.gathers_in_place
    assert (in_place.split_by, in_place.shuffle, converted.shuffle) == ("rows", True, "batch")
    for adapter in (in_place, converted):
        batches = list(adapter.row_batches(order, bounds))
        assert [b[1].tolist() for b in batches] == [[9, 8, 7], [], [1, 0]]
        assert batches[2][0].tolist() == [[2.0, 3.0], [0.0, 1.0]]
        assert all(b[0].dtype == torch.float32 for b in batches)  # converted as get_iterator's
        assert [b[1].tolist() for b in adapter.row_batches(None, [(1, 3)])] == [[1, 2]]
