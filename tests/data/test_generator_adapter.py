import numpy as np
import pytest
import torch

from torchfit.data.generator_adapter import GeneratorDataAdapter


def make_batches(n=3, size=2):
    for i in range(n):
        yield np.full((size, 2), float(i)), np.full(size, i)


class ReIterable:
    """An iterable (not an iterator): each `iter()` starts over."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return make_batches(self.n)


def test_generator_is_one_pass():
    adapter = GeneratorDataAdapter(make_batches())
    assert not adapter.restartable and adapter.num_batches is None
    assert len(list(adapter.get_iterator())) == 3
    assert list(adapter.get_iterator()) == []


def test_batches_converted_to_float32_tensors():
    x, y = next(iter(GeneratorDataAdapter(make_batches()).get_iterator()))
    assert x.dtype == torch.float32 and x.shape == (2, 2)
    assert y.dtype == torch.int64


def test_reiterable_restarts_each_epoch():
    adapter = GeneratorDataAdapter(ReIterable(2))
    assert adapter.restartable
    assert len(list(adapter.get_iterator())) == 2
    assert len(list(adapter.get_iterator())) == 2


def test_sized_iterable_reports_num_batches():
    batches = [(torch.zeros(2), torch.zeros(2))] * 3
    adapter = GeneratorDataAdapter(tuple(batches))
    assert adapter.num_batches == 3


def test_batch_forms_follow_keras_rules():
    x = np.zeros((2, 1))
    items = [[x, x], {"a": x}, x, (x,), (x, x, np.ones(2))]
    batches = list(GeneratorDataAdapter(iter(items)).get_iterator())
    assert [len(b) for b in batches] == [2, 1, 1, 1, 3]
    assert isinstance(batches[1][0], dict)


def test_python_numbers_become_tensors():
    ((x, y),) = list(GeneratorDataAdapter(iter([([1.5, 2.5], 1)])).get_iterator())
    assert isinstance(x, list) and x[0].dtype == torch.float32 and y.dtype == torch.int64


def test_empty_generator_raises():
    with pytest.raises(ValueError, match="yielded no batches"):
        list(GeneratorDataAdapter(iter([])).get_iterator())


def test_too_long_tuple_raises():
    x = np.zeros(2)
    with pytest.raises(ValueError, match="tuple of 4"):
        list(GeneratorDataAdapter(iter([(x, x, x, x)])).get_iterator())


def test_class_weight_per_batch():
    adapter = GeneratorDataAdapter(make_batches(2), class_weight={1: 3.0})
    weights = [b[2].tolist() for b in adapter.get_iterator()]
    assert weights == [[1.0, 1.0], [3.0, 3.0]]


def test_class_weight_with_yielded_weights_raises():
    x = np.zeros(2)
    adapter = GeneratorDataAdapter(iter([(x, x, x)]), class_weight={0: 1.0})
    with pytest.raises(ValueError, match="class_weight"):
        list(adapter.get_iterator())
