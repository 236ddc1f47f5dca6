"""Test-session settings shared by tests/, compat/ and torchfit/'s doctests.

The suite's models are tiny: on a 2-core CI machine, torch's intra-op thread
pool only adds contention, so every test runs single-threaded.
"""

import importlib.util
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# Import the package before pytest collects a module of it for its doctests: with
# --import-mode=importlib, a module file collected first (`pytest
# torchfit/models/model.py tests/...`, as tools/mutate.py runs) would be executed a
# second time, and its classes would not be torchfit's (isinstance fails).
import torchfit  # noqa: E402, F401

# Docstring examples that need an optional package (a test extra) skip without it,
# as the unit tests of the same module do with pytest.importorskip.
_DOCTEST_NEEDS = {"torchmetrics_adapter.py": "torchmetrics"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        needed = _DOCTEST_NEEDS.get(item.path.name)
        if needed and isinstance(item, pytest.DoctestItem) and not importlib.util.find_spec(needed):
            item.add_marker(pytest.mark.skip(reason=f"the example needs {needed}"))
