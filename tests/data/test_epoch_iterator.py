import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

import torchfit
from torchfit.data.array_adapter import ArrayDataAdapter
from torchfit.data.epoch_iterator import EpochIterator
from torchfit.data.generator_adapter import GeneratorDataAdapter
from torchfit.data.torch_adapter import DataLoaderAdapter


def _array_iterator(num_samples, steps_per_epoch=None):
    adapter = ArrayDataAdapter(np.arange(num_samples), batch_size=1)
    return EpochIterator(adapter, steps_per_epoch)


def _epoch(iterator):
    return [(step, batch[0].item()) for step, batch in iterator.enumerate_epoch()]


def _counting(n):
    for i in range(n):
        yield (torch.tensor([i]),)


class ReIterable:
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return _counting(self.n)


def test_full_passes_without_steps_per_epoch():
    iterator = _array_iterator(3)
    assert iterator.num_batches == 3
    assert _epoch(iterator) == [(0, 0), (1, 1), (2, 2)]
    assert _epoch(iterator) == [(0, 0), (1, 1), (2, 2)]
    assert not iterator.exhausted


def test_steps_per_epoch_carries_over_and_warns_when_pass_ends():
    iterator = _array_iterator(10, steps_per_epoch=4)
    assert iterator.num_batches == 4
    assert [v for _, v in _epoch(iterator)] == [0, 1, 2, 3]
    assert [v for _, v in _epoch(iterator)] == [4, 5, 6, 7]
    with pytest.warns(UserWarning, match="Your input ran out of data after 2 of 4 steps"):
        assert [v for _, v in _epoch(iterator)] == [8, 9]
    assert [v for _, v in _epoch(iterator)] == [0, 1, 2, 3]
    assert not iterator.exhausted


def test_steps_per_epoch_dividing_the_data_restarts_silently():
    iterator = _array_iterator(4, steps_per_epoch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        epochs = [[v for _, v in _epoch(iterator)] for _ in range(3)]
    assert epochs == [[0, 1], [2, 3], [0, 1]]


def test_generator_with_steps_per_epoch_runs_out():
    iterator = EpochIterator(GeneratorDataAdapter(_counting(5)), steps_per_epoch=2)
    assert [v for _, v in _epoch(iterator)] == [0, 1]
    assert [v for _, v in _epoch(iterator)] == [2, 3]
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        assert [v for _, v in _epoch(iterator)] == [4]
    assert iterator.exhausted


def test_generator_ending_at_epoch_boundary_is_flagged_without_warning():
    iterator = EpochIterator(GeneratorDataAdapter(_counting(4)), steps_per_epoch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _epoch(iterator)
        assert not iterator.exhausted
        assert [v for _, v in _epoch(iterator)] == [2, 3]
    assert iterator.exhausted  # learned by looking one batch ahead
    with pytest.warns(UserWarning, match="ran out of data"):
        assert _epoch(iterator) == []


def test_endless_generator_with_steps_per_epoch():
    def endless():
        i = 0
        while True:
            yield (torch.tensor([i]),)
            i += 1

    iterator = EpochIterator(GeneratorDataAdapter(endless()), steps_per_epoch=3)
    assert [v for _, v in _epoch(iterator)] == [0, 1, 2]
    assert [v for _, v in _epoch(iterator)] == [3, 4, 5]
    assert not iterator.exhausted


def test_generator_without_steps_learns_its_size():
    iterator = EpochIterator(GeneratorDataAdapter(_counting(3)))
    assert iterator.num_batches is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(_epoch(iterator)) == 3
    assert iterator.num_batches == 3 and iterator.exhausted
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        assert _epoch(iterator) == []


def test_reiterable_without_steps_reruns_each_epoch():
    iterator = EpochIterator(GeneratorDataAdapter(ReIterable(3)))
    assert len(_epoch(iterator)) == 3
    assert len(_epoch(iterator)) == 3
    assert iterator.num_batches == 3 and not iterator.exhausted


def test_reiterable_with_steps_carries_over_and_restarts_at_boundary():
    iterator = EpochIterator(GeneratorDataAdapter(ReIterable(4)), steps_per_epoch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        epochs = [[v for _, v in _epoch(iterator)] for _ in range(3)]
    assert epochs == [[0, 1], [2, 3], [0, 1]]


def test_reiterable_running_short_warns():
    iterator = EpochIterator(GeneratorDataAdapter(ReIterable(3)), steps_per_epoch=2)
    _epoch(iterator)
    with pytest.warns(UserWarning, match="ran out of data after 1 of 2 steps"):
        assert [v for _, v in _epoch(iterator)] == [2]
    assert [v for _, v in _epoch(iterator)] == [0, 1]


class RecordingAdapter(ArrayDataAdapter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events = []

    def on_epoch_begin(self):
        self.events.append("begin")

    def on_epoch_end(self):
        self.events.append("end")


def test_epoch_hooks_called_even_when_caller_stops_early():
    adapter = RecordingAdapter(np.arange(6), batch_size=2)
    iterator = EpochIterator(adapter)
    for step, _ in iterator.enumerate_epoch():
        if step == 0:
            break
    assert adapter.events == ["begin", "end"]
    firsts = [batch[0][0].item() for _, batch in iterator.enumerate_epoch()]
    assert firsts == [0, 2, 4]  # a stopped epoch does not shift the next one
    assert adapter.events == ["begin", "end", "begin", "end"]


def test_invalid_steps_per_epoch():
    adapter = ArrayDataAdapter(np.arange(4))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="steps_per_epoch"):
            EpochIterator(adapter, bad)


def test_check_targets_hands_every_compiled_check_to_the_adapter_which_reads_arrays_once():
    class Recording:
        def __init__(self):
            self.seen = []

        def check_targets(self, y, where):
            self.seen.append((y.tolist(), where))

    loss, metrics = Recording(), Recording()
    iterator = EpochIterator(ArrayDataAdapter(np.zeros((3, 1)), np.array([0, 1, 2]), batch_size=2))
    iterator.check_targets(loss, None, metrics)
    iterator.check_targets(loss, None, metrics)  # the loops call it every epoch
    assert loss.seen == metrics.seen == [([0, 1, 2], "in `y`")]


class EmptyPasses(IterableDataset):
    """Yields nothing; counts its passes and refuses a 6th, so a restart loop fails, not hangs."""

    def __init__(self):
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        if self.passes > 5:
            raise RuntimeError("restarted an empty pass over and over")
        return iter([])


def test_reiterable_of_one_batch_restarts_every_epoch():
    # A pass of exactly one batch ended: the next epoch restarts it. (The rule is "the
    # pass that just ended was not empty", so a one-batch pass must count.)
    iterator = EpochIterator(GeneratorDataAdapter(ReIterable(1)), steps_per_epoch=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        epochs = [[v for _, v in _epoch(iterator)] for _ in range(3)]
    assert epochs == [[0], [0], [0]]


def test_empty_restartable_source_with_steps_warns_instead_of_restarting_forever():
    # A DataLoader over an empty IterableDataset: size unknown, restartable, no batch.
    source = EmptyPasses()
    adapter = DataLoaderAdapter(DataLoader(source, batch_size=2))
    iterator = EpochIterator(adapter, steps_per_epoch=2)
    with pytest.warns(UserWarning, match="ran out of data after 0 of 2 steps"):
        assert _epoch(iterator) == []
    assert source.passes == 1


def test_fit_trains_every_epoch_on_a_one_batch_reiterable():
    class OneBatch:
        def __iter__(self):
            yield torch.ones(4, 2), torch.zeros(4, 1)

    model = torchfit.Model(nn.Linear(2, 1))
    model.compile(optimizer="sgd", loss="mse")
    trained = []
    record = torchfit.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: trained.append(batch)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(
            OneBatch(), steps_per_epoch=1, epochs=3, shuffle=False, verbose=0, callbacks=[record]
        )
    assert trained == [0, 0, 0]
    losses = history.history["loss"]
    assert losses[0] > losses[1] > losses[2]
