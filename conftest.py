"""Test-session settings shared by tests/ and compat/.

The suite's models are tiny: on a 2-core CI machine, torch's intra-op thread
pool only adds contention, so every test runs single-threaded.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
