import os
import threading
import time

import numpy as np
import pytest
import torch

from torchfit.data.epoch_iterator import EpochIterator
from torchfit.data.sequence_adapter import SequenceAdapter
from torchfit.utils.sequence import Sequence


class IndexSequence(Sequence):
    """Batch `i` is `([i, i], [i])` (float64 NumPy); records who fetched it."""

    def __init__(self, n=6, delay=0.0, **kwargs):
        super().__init__(**kwargs)
        self.n = n
        self.delay = delay
        self.epochs_ended = 0
        self.fetchers = set()

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        # Later indices finish first, so only an ordered queue keeps order.
        time.sleep(self.delay * (self.n - index))
        self.fetchers.add(threading.get_ident())
        return np.full((1, 2), float(index)), np.array([index]), np.array([float(os.getpid())])

    def on_epoch_end(self):
        self.epochs_ended += 1


class LabelSequence(Sequence):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return np.zeros((2, 1)), np.array([index, 1 - index])


class EndlessSequence(Sequence):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return (np.array([index]),)


def _indices(adapter):
    return [int(batch[1].item()) for batch in adapter.get_iterator()]


def test_serial_fetch_in_order_and_converted():
    adapter = SequenceAdapter(IndexSequence(3))
    assert adapter.num_batches == 3
    batches = list(adapter.get_iterator())
    assert [int(b[1].item()) for b in batches] == [0, 1, 2]
    assert batches[0][0].dtype == torch.float32 and batches[0][1].dtype == torch.int64


def test_threads_keep_order():
    sequence = IndexSequence(6, delay=0.005, workers=3, max_queue_size=4)
    adapter = SequenceAdapter(sequence)
    assert _indices(adapter) == list(range(6))
    assert len(sequence.fetchers) > 1
    assert threading.get_ident() not in sequence.fetchers


@pytest.mark.parametrize("use_multiprocessing", [False, True])
def test_zero_workers_fetch_in_this_thread(use_multiprocessing):
    # workers=0 means no pool at all, even with use_multiprocessing=True.
    sequence = IndexSequence(3, workers=0, use_multiprocessing=use_multiprocessing)
    batches = list(SequenceAdapter(sequence).get_iterator())
    assert [int(b[1].item()) for b in batches] == [0, 1, 2]
    assert sequence.fetchers == {threading.get_ident()}
    assert all(int(b[2].item()) == os.getpid() for b in batches)


def test_processes_keep_order_and_run_elsewhere():
    sequence = IndexSequence(5, workers=2, use_multiprocessing=True, max_queue_size=3)
    batches = list(SequenceAdapter(sequence).get_iterator())
    assert [int(b[1].item()) for b in batches] == list(range(5))
    assert all(int(b[2].item()) != os.getpid() for b in batches)


@pytest.mark.parametrize("seed", [0, 1])
def test_shuffle_reproducible_with_manual_seed(seed):
    adapter = SequenceAdapter(IndexSequence(8, workers=2), shuffle=True)
    torch.manual_seed(seed)
    first = _indices(adapter)
    second = _indices(adapter)
    torch.manual_seed(seed)
    assert _indices(adapter) == first
    assert sorted(first) == list(range(8)) and first != second


def test_shuffle_uses_randperm():
    adapter = SequenceAdapter(IndexSequence(8), shuffle=True)
    torch.manual_seed(3)
    got = _indices(adapter)
    torch.manual_seed(3)
    assert got == torch.randperm(8).tolist()


def test_epoch_iterator_calls_on_epoch_end():
    sequence = IndexSequence(2)
    iterator = EpochIterator(SequenceAdapter(sequence))
    for _ in range(3):
        list(iterator.enumerate_epoch())
    assert sequence.epochs_ended == 3


def test_class_weight():
    adapter = SequenceAdapter(LabelSequence(), class_weight={1: 5.0})
    assert [b[2].tolist() for b in adapter.get_iterator()] == [[1.0, 5.0], [5.0, 1.0]]


def test_endless_sequence_with_steps_and_shuffle_warning():
    with pytest.warns(UserWarning, match="shuffle"):
        adapter = SequenceAdapter(EndlessSequence(workers=2), shuffle=True)
    assert adapter.num_batches is None
    iterator = EpochIterator(adapter, steps_per_epoch=3)
    assert [b[0].item() for _, b in iterator.enumerate_epoch()] == [0, 1, 2]
    assert [b[0].item() for _, b in iterator.enumerate_epoch()] == [3, 4, 5]
    iterator.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_at_fetches_the_given_indices_in_order(workers):
    adapter = SequenceAdapter(IndexSequence(6, delay=0.002, workers=workers), shuffle=True)
    assert adapter.split_by == "batches" and adapter.shuffle is True
    batches = list(adapter.batches_at([5, 0, 3, 3]))
    assert [int(b[1].item()) for b in batches] == [5, 0, 3, 3]
    assert batches[0][0].dtype == torch.float32
