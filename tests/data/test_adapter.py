import pytest
import torch

from torchfit.data.adapter import DataAdapter, resolve_device


def test_base_defaults():
    adapter = DataAdapter()
    assert adapter.restartable
    assert adapter.batch_size is None and adapter.has_partial_batch is None
    assert adapter.partial_batch_size is None
    assert adapter.on_epoch_begin() is None and adapter.on_epoch_end() is None
    with pytest.raises(NotImplementedError):
        adapter.get_iterator()
    with pytest.raises(NotImplementedError):
        adapter.num_batches  # noqa: B018 - reading the property must raise


def test_resolve_device():
    assert resolve_device(None) is None
    assert resolve_device("cpu") == torch.device("cpu")
    device = torch.device("cpu")
    assert resolve_device(device) is device
    with pytest.raises(ValueError, match="device"):
        resolve_device("toaster")
