"""Running a block in train or eval mode, and putting every submodule's mode back."""

import pytest
from torch import nn

from torchfit.utils.modes import mode_differs, run_in_mode


def test_run_in_mode_switches_only_when_needed_and_restores_each_submodule():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2))
    net[2].eval()
    assert mode_differs(net, False) and not mode_differs(net, True)
    with run_in_mode(net, False):
        assert not any(module.training for module in net.modules())
    assert [module.training for module in net.modules()] == [True, True, True, False]
    with pytest.raises(ValueError), run_in_mode(net, False):
        raise ValueError("a failing call")
    assert [module.training for module in net.modules()] == [True, True, True, False]
    with run_in_mode(net, True):  # already in train mode: the frozen part is left alone
        assert not net[2].training


def test_mode_differs_looks_at_the_wrapped_module_too():
    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.module = nn.Linear(2, 2)

    wrapper = Wrapper().eval()
    wrapper.module.train()
    assert mode_differs(wrapper, False)
