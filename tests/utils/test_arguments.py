import sys
import types

import numpy as np
import pytest

from torchfit.utils.arguments import check_count, is_count, resolve_verbose


def test_check_count():
    assert check_count("batch_size", None) is None
    assert check_count("batch_size", 4) == 4
    assert check_count("batch_size", np.int64(8)) == 8
    assert check_count("batch_size", np.int64(1)) == 1  # the smallest one
    for bad in (0, -3, 2.0, True, "4"):
        with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
            check_count("batch_size", bad)
    with pytest.raises(ValueError, match="steps"):
        check_count("steps", None, allow_none=False)


def test_check_count_returns_a_python_int_at_its_minimum_and_names_it_below():
    value = check_count("epochs", np.int64(0), minimum=0)
    assert value == 0 and type(value) is int
    with pytest.raises(ValueError, match=r"`epochs` must be an integer >= 0. Received: epochs=-1"):
        check_count("epochs", -1, minimum=0)
    with pytest.raises(ValueError, match=r"`workers` must be a non-negative integer"):
        check_count("workers", -1, minimum=0, expected="a non-negative integer")


def test_is_count_refuses_bools_floats_and_float_arrays():
    assert is_count(1) and is_count(np.int32(2)) and is_count(0, minimum=0)
    assert not any(is_count(v) for v in (True, 1.0, np.array(1.0), np.float64(3), "1", None))


def test_resolve_verbose(monkeypatch):
    assert [resolve_verbose(v) for v in (0, 1, 2, True)] == [0, 1, 2, 1]

    class Terminal:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    monkeypatch.setattr(sys, "stdout", Terminal(True))
    assert resolve_verbose("auto") == 1
    monkeypatch.setattr(sys, "stdout", Terminal(False))
    assert resolve_verbose("auto") == 2
    monkeypatch.setattr(sys, "stdout", object())  # a stream without isatty: not a terminal
    assert resolve_verbose("auto") == 2
    for bad in (3, -1, "1", None):
        with pytest.raises(ValueError, match='`verbose` must be 0, 1, 2 or "auto"'):
            resolve_verbose(bad)


def test_resolve_verbose_auto_is_1_in_jupyter_and_pycharm(monkeypatch):
    class NotATerminal:  # ipykernel's OutStream and PyCharm's console say isatty() False
        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stdout", NotATerminal())
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    assert resolve_verbose("auto") == 2
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert resolve_verbose("auto") == 1
    monkeypatch.delitem(sys.modules, "ipykernel")
    monkeypatch.setenv("PYCHARM_HOSTED", "1")
    assert resolve_verbose("auto") == 1
