import numpy as np
import pytest

from torchfit.utils.sequence import PyDataset, Sequence


class Squares(Sequence):
    def __init__(self, n, batch_size=2, **kwargs):
        super().__init__(**kwargs)
        self.values = np.arange(n, dtype=np.float32)
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.values) // self.batch_size)

    def __getitem__(self, index):
        chunk = self.values[index * self.batch_size : (index + 1) * self.batch_size]
        return chunk, chunk**2


class NoSuper(Sequence):
    def __init__(self):
        pass

    def __len__(self):
        return 1


class Endless(Sequence):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return np.array([index])


def test_alias():
    assert PyDataset is Sequence


def test_defaults_and_arguments():
    data = Squares(5)
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (1, False, 10)
    data = Squares(5, workers=3, use_multiprocessing=True, max_queue_size=4)
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (3, True, 4)


def test_num_batches_from_len_and_iteration():
    data = Squares(5)
    assert data.num_batches == 3
    assert [x.tolist() for x, _ in data] == [[0, 1], [2, 3], [4]]


def test_endless_iteration():
    iterator = iter(Endless())
    assert [next(iterator).item() for _ in range(4)] == [0, 1, 2, 3]


def test_missing_super_init_warns_and_uses_defaults():
    data = NoSuper()
    with pytest.warns(UserWarning, match="super"):
        assert data.workers == 1
    assert data.max_queue_size == 10


def test_missing_methods_raise():
    class Empty(Sequence):
        pass

    with pytest.raises(NotImplementedError, match="__getitem__"):
        Empty()[0]
    with pytest.raises(NotImplementedError, match="num_batches"):
        Empty().num_batches  # noqa: B018 - reading the property must raise


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"workers": -1}, "workers"),
        ({"workers": 1.5}, "workers"),
        ({"max_queue_size": 0}, "max_queue_size"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Squares(4, **kwargs)


def test_epoch_hooks_exist():
    data = Squares(2)
    assert data.on_epoch_begin() is None and data.on_epoch_end() is None
