"""The scripts in examples/ run end to end and learn what they say they learn.

Each runs in its own process, as a user runs it, on the data that ships in the package
(the Hugging Face one builds a tiny model from a config: nothing is downloaded).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stderr[-3000:]}"
    return result.stdout


def _accuracy(output: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s*([0-9.]+)", output)
    assert match, f"no line {label!r} in the output:\n{output[-2000:]}"
    return float(match.group(1))


def test_quickstart_learns_the_digits():
    output = _run("quickstart.py")
    assert _accuracy(output, "test accuracy:") > 0.9


def test_transfer_learning_trains_a_new_head_then_fine_tunes():
    output = _run("transfer_learning.py")
    assert _accuracy(output, "test accuracy on 5-9, new head only:") > 0.85
    assert _accuracy(output, "test accuracy on 5-9, fine-tuned:") > 0.85


def test_hugging_face_example_learns_its_rule():
    pytest.importorskip("transformers")
    pytest.importorskip("datasets")
    output = _run("hf_text_classification.py")
    assert _accuracy(output, "test: {'accuracy':") > 0.9
