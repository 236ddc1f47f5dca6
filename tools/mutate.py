"""Mutation check: plants one hand-made bug at a time and asks whether the tests notice.

Owns choosing the tests that are relevant to each mutated module, running them against
a copy of the tree, and the report. The mutants (the kinds of bugs real code gets: a
comparison off its boundary, an off-by-one, a dropped `sample_weight`, a copy turned
into an alias, a missing reset, a wrong reduction, swapped arguments) belong to
tools/mutants.py. What the tests check belongs to tests/ and compat/; mutants known to be
equivalent (no test could tell them apart) are listed, with a reason, in
tools/equivalent_mutants.txt and left out of the score.

Not run in CI and not collected by pytest. Run it from the repository root, with the
Python that runs the suite:

    python tools/mutate.py --list                          # every mutant; nothing runs
    python tools/mutate.py --sample 80 --seed 0            # a random sample of 80
    python tools/mutate.py --files torchfit/metrics --jobs 2
    python tools/mutate.py --sample 80 --seed 0 --operators boundary,drop_reset
    python tools/mutate.py --rerun before.json --json after.json   # after adding tests

`--files` takes files or folders (default: torchfit/models, loops.py, compiled.py,
torchfit/callbacks, torchfit/data, torchfit/metrics). Each mutant runs in a fresh
`python -m pytest -x -q -p no:randomly` subprocess, in a per-worker copy of the tree
(the real files are never written), on the mutated module's doctests, its mirrored
tests/ module(s) and the compat/ tests that exercise it (`tests_for`). The tests are
first run once unmutated, which sets each mutant's timeout (`--timeout-factor` times
that run, plus 20 s). A mutant is killed when the tests fail, times out when they
hang, and survives when they pass. The score is killed (timeouts included) over the
non-equivalent mutants. `--json FILE` writes every result. Exit status: 0, or 1 when
a survivor is not marked equivalent.

A sample of 80 takes about 15-25 minutes with `--jobs 2` on a 2-core machine.
"""

import argparse
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from mutants import OPERATORS, ROOT, Mutant, apply, mutants_of, python_files

DEFAULT_TARGETS = (
    "torchfit/models",
    "torchfit/loops.py",
    "torchfit/compiled.py",
    "torchfit/callbacks",
    "torchfit/data",
    "torchfit/metrics",
)
EQUIVALENT_FILE = ROOT / "tools" / "equivalent_mutants.txt"
COPIED = ("torchfit", "tests", "compat", "conftest.py", "pyproject.toml")


# Compat tests per module prefix: the parity and guide ports that drive that code.
_GUIDE = "compat/guide/test_guide_"
_CONFUSION_PARITY = "compat/keras_parity/test_confusion_metrics_parity.py"
_COMPAT = {
    "torchfit/metrics/confusion_metrics.py": [_CONFUSION_PARITY],
    "torchfit/metrics/_confusion_utils.py": [_CONFUSION_PARITY],
    "torchfit/metrics/f_score_metrics.py": [_CONFUSION_PARITY],
    "torchfit/metrics/iou_metrics.py": [_CONFUSION_PARITY],
    "torchfit/metrics/": ["compat/keras_parity/test_metrics_parity.py"],
    "torchfit/data/": [
        f"{_GUIDE}other_inputs.py",
        f"{_GUIDE}datasets.py",
        f"{_GUIDE}validation_split.py",
        f"{_GUIDE}sequence.py",
    ],
    "torchfit/callbacks/tensorboard.py": [f"{_GUIDE}tensorboard.py"],
    "torchfit/callbacks/learning_rate_scheduler.py": [f"{_GUIDE}lr_schedules.py"],
    "torchfit/callbacks/": [f"{_GUIDE}callbacks.py", f"{_GUIDE}checkpointing.py"],
    "torchfit/models/saving.py": [f"{_GUIDE}checkpointing.py"],
    "torchfit/models/serialization.py": [f"{_GUIDE}checkpointing.py"],
    "torchfit/models/": [
        f"{_GUIDE}overview.py",
        f"{_GUIDE}compile.py",
        f"{_GUIDE}weighting.py",
        "compat/keras_parity/test_end_to_end_parity.py",
    ],
    "torchfit/loops.py": [
        "tests/models/test_trainer.py",
        "tests/test_steps_per_execution.py",
        f"{_GUIDE}overview.py",
        f"{_GUIDE}callbacks.py",
        f"{_GUIDE}validation_split.py",
    ],
    "torchfit/compiled.py": [
        f"{_GUIDE}compile.py",
        f"{_GUIDE}weighting.py",
        f"{_GUIDE}multi_io.py",
        f"{_GUIDE}custom_losses_metrics.py",
        "tests/test_multi_io.py",
    ],
}
# Mirrored tests where the file name alone does not say it.
_MIRRORED = {
    "torchfit/metrics/__init__.py": ["tests/metrics/test_metrics_get.py"],
    "torchfit/metrics/_confusion_utils.py": ["tests/metrics/test_confusion_metrics.py"],
    "torchfit/data/__init__.py": ["tests/data/test_get_adapter.py"],
    "torchfit/callbacks/__init__.py": ["tests/callbacks/test_callback_list.py"],
    "torchfit/models/__init__.py": ["tests/models/test_model.py"],
    "torchfit/models/model.py": ["tests/models/test_model.py", "tests/models/test_trainer.py"],
}


def tests_for(path: str) -> list[list[str]]:
    """Two stages: the module's doctests and mirrored tests, then the compat tests using it.

    The second stage runs only when the first passes: pytest collects every file before
    running one, and the compat files import Keras.
    """
    relative = Path(path).relative_to("torchfit")
    mirrored = _MIRRORED.get(path) or [str(Path("tests", relative.parent, f"test_{relative.name}"))]
    compat = next((paths for prefix, paths in _COMPAT.items() if path.startswith(prefix)), [])
    stages = [[path, *mirrored], compat]
    return [[p for p in stage if (ROOT / p).exists()] for stage in stages if stage]


@dataclasses.dataclass
class Outcome:
    status: str  # killed, survived, timeout, no_tests, baseline_failed
    seconds: float
    detail: str = ""
    stage_seconds: list = dataclasses.field(default_factory=list)


def _pytest_command(test_paths: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:randomly",
        "--no-header",
        "-o",
        "console_output_style=classic",
        *test_paths,
    ]


def _environment(workdir: Path) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(workdir), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    return env


def run_stages(workdir: Path, stages: list[list[str]], timeouts: list[float]) -> Outcome:
    """Runs the stages in order and stops at the first that does not pass."""
    seconds, status, detail = [], "no_tests", ""
    for stage, timeout in zip(stages, timeouts):
        outcome = run_tests(workdir, stage, timeout)
        seconds.append(outcome.seconds)
        if outcome.status == "no_tests":
            continue
        status, detail = outcome.status, outcome.detail
        if status != "survived":
            break
    return Outcome(status, sum(seconds), detail, seconds)


def run_tests(workdir: Path, test_paths: list[str], timeout: float) -> Outcome:
    """Runs pytest in its own process group, so a hang is killed with all its children."""
    started = time.monotonic()
    process = subprocess.Popen(
        _pytest_command(test_paths),
        cwd=workdir,
        env=_environment(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return Outcome("timeout", time.monotonic() - started)
    seconds = time.monotonic() - started
    status = {0: "survived", 5: "no_tests"}.get(process.returncode, "killed")
    return Outcome(status, seconds, _first_failure(output))


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED", "ERROR")):
            return line[:200]
    return ""


def make_workdir() -> Path:
    """A private copy of the tree: mutants are written there, never into the real files."""
    workdir = Path(tempfile.mkdtemp(prefix="torchfit-mutate-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, workdir / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, workdir / name)
    return workdir


def check_imports_from(workdir: Path) -> None:
    command = [sys.executable, "-c", "import torchfit; print(torchfit.__file__)"]
    found = subprocess.run(
        command, cwd=workdir, env=_environment(workdir), capture_output=True, text=True, check=True
    ).stdout.strip()
    if not found.startswith(str(workdir)):
        raise SystemExit(f"The copy's torchfit is not the one imported: {found} ({workdir}).")


class Workers:
    """A pool of tree copies; each mutant borrows one, writes its file, runs, restores it."""

    def __init__(self, count: int):
        self._free = [make_workdir() for _ in range(count)]
        self._lock = threading.Lock()
        check_imports_from(self._free[0])

    def _take(self) -> Path:
        with self._lock:
            return self._free.pop()

    def _give(self, workdir: Path) -> None:
        with self._lock:
            self._free.append(workdir)

    def run(self, mutant: Optional[Mutant], stages: list, timeouts: list[float]) -> Outcome:
        workdir = self._take()
        target = workdir / mutant.path if mutant else None
        original = target.read_bytes() if target else None
        try:
            if target:
                target.write_bytes(apply(original, mutant))
            return run_stages(workdir, stages, timeouts)
        finally:
            if target:
                target.write_bytes(original)
            self._give(workdir)

    def close(self) -> None:
        for workdir in self._free:
            shutil.rmtree(workdir, ignore_errors=True)


def load_equivalent() -> dict[str, str]:
    """`key | reason` lines of tools/equivalent_mutants.txt (`#` starts a comment)."""
    if not EQUIVALENT_FILE.exists():
        return {}
    marked = {}
    for line in EQUIVALENT_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, reason = line.rpartition(" | ")
            marked[key.strip()] = reason.strip()
    return marked


def summarize(results: list[tuple[Mutant, Outcome]], equivalent: dict[str, str]) -> int:
    counts: dict[str, int] = {}
    for _, outcome in results:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    survivors = [(m, o) for m, o in results if o.status == "survived"]
    marked = [m for m, _ in survivors if m.key in equivalent]
    detected = counts.get("killed", 0) + counts.get("timeout", 0)
    scored = detected + len(survivors) - len(marked)
    print("\n== mutation check")
    print("   " + ", ".join(f"{status}: {n}" for status, n in sorted(counts.items())))
    print(f"   equivalent (marked): {len(marked)}")
    if scored:
        score = f"{detected}/{scored} = {100.0 * detected / scored:.1f} %"
        print(f"   score: {score} of non-equivalent mutants killed")
    for mutant, _ in survivors:
        tag = f"EQUIVALENT ({equivalent[mutant.key]})" if mutant.key in equivalent else "SURVIVED"
        print(f"{tag}: {mutant.describe()}")
    return 1 if len(survivors) > len(marked) else 0


def write_json(path: str, results: list, equivalent: dict[str, str]) -> None:
    rows = [
        {
            **dataclasses.asdict(m),
            "key": m.key,
            **dataclasses.asdict(o),
            "equivalent": equivalent.get(m.key),
        }
        for m, o in results
    ]
    Path(path).write_text(json.dumps(rows, indent=1))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files",
        nargs="+",
        default=list(DEFAULT_TARGETS),
        help="files or folders to mutate, relative to the repository root",
    )
    parser.add_argument(
        "--operators",
        default=",".join(OPERATORS),
        help=f"comma-separated subset of: {', '.join(OPERATORS)}",
    )
    parser.add_argument("--sample", type=int, default=None, help="run a random sample of N mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample; defaults to 0")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once; defaults to 1")
    parser.add_argument(
        "--timeout-factor",
        type=float,
        default=3.0,
        help="timeout = factor x the unmutated run + 20 s; defaults to 3",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--json", default=None, help="write every result to this file")
    parser.add_argument(
        "--rerun",
        default=None,
        metavar="JSON",
        help="re-run only the mutants an earlier --json run did not kill; its"
        " kills are carried over (adding tests cannot revive a mutant)",
    )
    return parser.parse_args(argv)


def choose_mutants(args: argparse.Namespace) -> list[Mutant]:
    unknown = set(args.operators.split(",")) - set(OPERATORS)
    if unknown:
        raise SystemExit(f"Unknown --operators {sorted(unknown)}; choose from {list(OPERATORS)}.")
    operators = {name: OPERATORS[name] for name in args.operators.split(",")}
    mutants = [m for path in python_files(args.files) for m in mutants_of(path, operators)]
    if args.sample is not None and args.sample < len(mutants):
        mutants = random.Random(args.seed).sample(mutants, args.sample)
        mutants.sort(key=lambda m: (m.path, m.start))
    return mutants


def baselines(workers: Workers, mutants: list[Mutant], jobs: int) -> dict[str, Outcome]:
    """Each mutated file's tests, run once unmutated: they must pass, and they set the timeout."""

    def one(path: str) -> tuple[str, Outcome]:
        stages = tests_for(path)
        outcome = workers.run(None, stages, [1800.0] * len(stages))
        status = "passed" if outcome.status == "survived" else f"FAILED {outcome.detail}"
        print(f"baseline {outcome.seconds:5.0f} s  {path}: {status}", flush=True)
        return path, outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(pool.map(one, sorted({m.path for m in mutants})))


def run_all(workers: Workers, mutants: list[Mutant], jobs: int, factor: float) -> list:
    base = baselines(workers, mutants, jobs)
    done = []

    def one(mutant: Mutant) -> tuple[Mutant, Outcome]:
        baseline = base[mutant.path]
        if baseline.status != "survived":
            outcome = Outcome("baseline_failed", 0.0, baseline.detail)
        else:
            timeouts = [factor * seconds + 20 for seconds in baseline.stage_seconds]
            outcome = workers.run(mutant, tests_for(mutant.path), timeouts)
        done.append(mutant)
        print(
            f"[{len(done)}/{len(mutants)}] {outcome.status:8} {outcome.seconds:5.0f} s  "
            f"{mutant.describe()}",
            flush=True,
        )
        return mutant, outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, mutants))


def rerun_set(path: str, operators: dict) -> tuple[list[Mutant], list[tuple[Mutant, Outcome]]]:
    """The earlier run's mutants: those it did not kill (rebuilt from today's source, by
    key), and its kills as they were."""
    rows = json.loads(Path(path).read_text())
    fields = {f.name for f in dataclasses.fields(Mutant)}
    carried, again = [], []
    for row in rows:
        if row["status"] in ("killed", "timeout"):
            outcome = Outcome(row["status"], row["seconds"], row["detail"], row["stage_seconds"])
            carried.append((Mutant(**{k: row[k] for k in fields}), outcome))
        else:
            again.append(row)
    # The same change can occur twice in one function: the line tells them apart.
    current = {}
    for file in sorted({row["path"] for row in again}):
        for mutant in mutants_of(ROOT / file, operators):
            current[mutant.key, mutant.line] = mutant
    missing = [row["key"] for row in again if (row["key"], row["line"]) not in current]
    if missing:
        raise SystemExit(f"The source changed under these mutants; run afresh: {missing}")
    return [current[row["key"], row["line"]] for row in again], carried


def main(argv=None) -> int:
    args = parse_args(argv)
    carried = []
    if args.rerun:
        mutants, carried = rerun_set(args.rerun, OPERATORS)
    else:
        mutants = choose_mutants(args)
    if args.list:
        for mutant in mutants:
            print(mutant.describe())
        print(f"{len(mutants)} mutants")
        return 0
    workers = Workers(max(1, args.jobs))
    try:
        results = carried + run_all(workers, mutants, max(1, args.jobs), args.timeout_factor)
    finally:
        workers.close()
    equivalent = load_equivalent()
    if args.json:
        write_json(args.json, results, equivalent)
    return summarize(results, equivalent)


if __name__ == "__main__":
    sys.exit(main())
