"""The one script to run on a CUDA machine: the whole suite with CUDA, then fit timed.

Usage: PYTHONPATH=$PWD python bench/gpu_check.py [--out DIR] [--device cuda]
       [--budget-s 450] [--total-s 570] [--steps 300] [--epochs 3] [--workloads ...]
       [--configs ...] [--skip-tests] [--pytest-args ...]

About 9.5 minutes with the defaults (give it a 600 s limit): the suite, then the
sweep until 450 s from the start (each run at most 120 s), then `bench/run.py`
until 570 s.

1. Runs the whole test suite (`pytest -rs`, JUnit XML in `--out`) and fails
   when a test fails or when any test skips for want of CUDA or a GPU: on a
   CUDA machine the CUDA tests must run.
2. Times `fit` (with validation, as `bench/run.py` does, through the same
   runners and workloads) for every workload and every configuration:
   verbose 0 and 1, eager, `jit_compile=True` and `jit_compile="cuda_graph"`,
   float32 and `mixed_bfloat16`, beside the hand-written loop. Each run is a
   fresh process; every workload is cut to `--steps` training steps an epoch
   (`bench/run.py` has no flag for that), the first epoch is a warm-up. The
   issue's targets' configurations run first; the sweep launches no new run
   `--budget-s` seconds after the script started and lists what it left out.
3. If time is left before `--total-s`, `bench/run.py --device cuda` itself on
   `--run-py-workloads` (full size, one round, two epochs), for the other
   libraries' rows.

Writes to `--out` (default `$OUT`): pytest.log, pytest.xml, bench.jsonl (one
row a run: times, peak memory, warnings, graph replays), bench.md (the table,
ratios to the hand-written loop, the targets), run_py.log, problems.txt. Exits
non-zero when the suite failed or a CUDA test skipped, or a timed run failed.

A dry run on the CPU checks the plumbing (no tests, tiny steps):
    python bench/gpu_check.py --device cpu --skip-tests --steps 4 --epochs 2 \\
        --workloads mlp-b64 --configs "torch loop,v0 eager f32,v1 cuda_graph bf16"
"""

import argparse
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import xml.etree.ElementTree as ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from runners import hand_written, torchfit_fit  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

JIT = {"eager": "auto", "jit": True, "cuda_graph": "cuda_graph"}
POLICY = {"f32": None, "bf16": "mixed_bfloat16"}
# The targets first, so that a cut-short sweep still answers them.
FIRST = ["torch loop", "v1 eager f32", "v1 jit f32", "v1 cuda_graph f32", "v1 eager bf16"]
CONFIGS = FIRST + [
    f"v{verbose} {jit} {policy}"
    for policy in POLICY
    for jit in JIT
    for verbose in (0, 1)
    if f"v{verbose} {jit} {policy}" not in FIRST
]
_SKIP_FOR_DEVICE = re.compile(r"cuda|gpu", re.IGNORECASE)


# ------------------------------------------------------------------ worker
def _options(config: str) -> dict:
    verbose, jit, policy = config.split()
    return {"verbose": int(verbose[1:]), "jit_compile": JIT[jit], "dtype_policy": POLICY[policy]}


def _watch_captures() -> list:
    """Records every `CapturedSteps` made, to report how many steps replayed graphs."""
    from torchfit.models import capture

    made = []
    init = capture.CapturedSteps.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    capture.CapturedSteps.__init__ = recording_init
    return made


def _worker(args) -> None:
    import resource

    import torch

    torch.manual_seed(0)
    base = WORKLOADS[args.workload]
    train = min(base.train_samples, args.steps * base.batch_size)
    workload = dataclasses.replace(
        base, train_samples=train, val_samples=min(base.val_samples, train // 5)
    )
    made = _watch_captures()
    log_path = os.path.join(tempfile.gettempdir(), f"torchfit-gpu-check-{os.getpid()}.log")
    # verbose=1 output goes to a file: the bar's cost is measured, not the terminal's.
    stdout, sys.stdout = sys.stdout, open(log_path, "w")
    try:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            if args.config == "torch loop":
                times = hand_written(workload, args.device, args.epochs)
            else:
                times = torchfit_fit(workload, args.device, args.epochs, **_options(args.config))
    finally:
        sys.stdout.close()
        sys.stdout = stdout
        os.unlink(log_path)
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    said = sorted({str(r.message) for r in records if "jit_compile" in str(r.message)})
    graphs = [
        {"stats": c.stats, "fallbacks": {k: list(v) for k, v in c.fallbacks.items()}} for c in made
    ]
    print(
        json.dumps(
            {
                "times": times,
                "steps": workload.steps_per_epoch,
                "peak_mib": peak,
                "warnings": said,
                "graphs": graphs,
            }
        )
    )


# ------------------------------------------------------------------- tests
def _run_tests(out: str, timeout: int, extra: list) -> list:
    """Runs the suite; returns the problems (empty when it passed with no CUDA skip)."""
    xml_path = os.path.join(out, "pytest.xml")
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    command += [f"--junitxml={xml_path}"] + extra
    started = time.perf_counter()
    with open(os.path.join(out, "pytest.log"), "w") as log:
        try:
            code = subprocess.run(
                command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            return [f"the suite ran past {timeout} s"]
    print(
        f"tests: exit code {code} in {time.perf_counter() - started:.0f} s (pytest.log)", flush=True
    )
    problems = [] if code == 0 else [f"pytest exited with {code}"]
    if not os.path.exists(xml_path):
        return problems + ["pytest wrote no JUnit XML"]
    ran = 0
    for case in ElementTree.parse(xml_path).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        skipped = case.find("skipped")
        if skipped is not None:
            why = f"{skipped.get('message', '')} {skipped.text or ''}"
            if _SKIP_FOR_DEVICE.search(why):
                problems.append(f"skipped for want of a device: {name} ({why.strip()})")
        elif "cuda" in name.lower():
            ran += 1
    print(f"tests: {ran} tests with 'cuda' in their name ran", flush=True)
    if ran == 0:
        problems.append("no test with 'cuda' in its name ran")
    return problems


# ------------------------------------------------------------------- bench
def _run_one(config: str, workload: str, args) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--config", config]
    command += ["--workload", workload, "--device", args.device]
    command += ["--steps", str(args.steps), "--epochs", str(args.epochs)]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=args.run_timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"ran past {args.run_timeout_s} s"}
    wall = time.perf_counter() - started
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {result.returncode}", "wall_s": wall}
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    per_step = [t / payload["steps"] for t in payload["times"][1:]]
    payload.update(step_s=statistics.median(per_step), wall_s=wall)
    return payload


def _bench(args, started: float) -> dict:
    """Runs the sweep, writing each row as it comes; returns {(workload, config): row}."""
    rows = {}
    left_out = []
    with open(os.path.join(args.out, "bench.jsonl"), "w") as jsonl:
        for config in args.configs:
            for workload in args.workloads:
                if time.perf_counter() - started > args.budget_s:
                    left_out.append(f"{workload} {config}")
                    continue
                row = _run_one(config, workload, args)
                rows[workload, config] = row
                jsonl.write(json.dumps({"workload": workload, "config": config, **row}) + "\n")
                jsonl.flush()
                shown = f"{row['step_s'] * 1e3:.3f} ms/step" if "step_s" in row else row["error"]
                print(
                    f"{workload:<14} {config:<20} {shown} ({row.get('wall_s', 0):.0f} s)",
                    flush=True,
                )
    if left_out:
        print(f"left out past the budget ({args.budget_s} s): {', '.join(left_out)}")
    return {"rows": rows, "left_out": left_out}


def _ratio(rows: dict, workload: str, config: str):
    floor = rows.get((workload, "torch loop"), {}).get("step_s")
    value = rows.get((workload, config), {}).get("step_s")
    return value / floor if floor and value else None


def _targets(rows: dict) -> list:
    lines = []
    for workload in WORKLOADS:
        ratio = _ratio(rows, workload, "v1 eager f32")
        if ratio is not None:
            lines.append(f"eager fit(verbose=1) <= 1.05x on {workload}: {ratio:.3f}x")
    for workload in ("mlp-b16", "mlp-b64"):
        for config in ("v1 jit f32", "v1 cuda_graph f32"):
            ratio = _ratio(rows, workload, config)
            if ratio is not None:
                lines.append(f"{config} >= 3x faster on {workload}: {1 / ratio:.2f}x faster")
    f32, bf16 = (
        rows.get(("cnn-b64", c), {}).get("step_s") for c in ("v1 eager f32", "v1 eager bf16")
    )
    if f32 and bf16:
        lines.append(f"mixed_bfloat16 faster than float32 on cnn-b64: {f32 / bf16:.2f}x")
    return lines


def _write_table(args, result: dict) -> None:
    rows = result["rows"]
    lines = ["| workload | config | time/step | vs torch loop | peak MiB | graphs replayed |"]
    lines.append("|---|---|---|---|---|---|")
    for workload in args.workloads:
        for config in args.configs:
            row = rows.get((workload, config))
            if row is None:
                continue
            if "error" in row:
                lines.append(f"| {workload} | {config} | failed: {row['error']} | | | |")
                continue
            ratio = _ratio(rows, workload, config)
            replays = sum(s["replays"] for g in row["graphs"] for s in g["stats"].values())
            lines.append(
                f"| {workload} | {config} | {row['step_s'] * 1e3:.3f} ms"
                f" | {f'{ratio:.3f}x' if ratio else '-'} | {row['peak_mib']:.0f} | {replays} |"
            )
    lines += ["", "Targets (issue 15):"] + [f"- {line}" for line in _targets(rows)]
    if result["left_out"]:
        lines += ["", "Left out past the budget: " + ", ".join(result["left_out"])]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "bench.md"), "w") as file:
        file.write(text)
    print(text)


def _run_py(args, seconds_left: float) -> None:
    if not args.run_py_workloads or seconds_left < 60:
        print("bench/run.py: not run (no workloads or no time left)")
        return
    command = [sys.executable, os.path.join(HERE, "run.py"), "--device", args.device]
    command += ["--workloads", args.run_py_workloads, "--epochs", "2", "--rounds", "1"]
    with open(os.path.join(args.out, "run_py.log"), "w") as log:
        try:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=seconds_left)
        except subprocess.TimeoutExpired:
            log.write(f"\nstopped after {seconds_left:.0f} s\n")
    with open(os.path.join(args.out, "run_py.log")) as log:
        print(log.read())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated")
    parser.add_argument("--steps", type=int, default=300, help="training steps an epoch, at most")
    parser.add_argument("--epochs", type=int, default=3, help="per process, one of them a warm-up")
    parser.add_argument(
        "--budget-s", type=float, default=450, help="no new timed run after this, from the start"
    )
    parser.add_argument("--run-timeout-s", type=int, default=120, help="per timed run")
    parser.add_argument("--tests-timeout-s", type=int, default=300)
    parser.add_argument("--total-s", type=float, default=570, help="bench/run.py runs within this")
    parser.add_argument("--run-py-workloads", default="mlp-b64")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument(
        "--pytest-args", default="", help="e.g. a test file; default: the whole suite"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    started = time.perf_counter()
    args.workloads = args.workloads.split(",")
    args.configs = args.configs.split(",")
    unknown = [c for c in args.configs if c not in CONFIGS] + [
        w for w in args.workloads if w not in WORKLOADS
    ]
    if unknown or args.epochs < 2:
        parser.error(
            f"unknown workloads or configs {unknown} (configs: {CONFIGS}), or --epochs < 2"
        )
    os.makedirs(args.out, exist_ok=True)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}, but torch {torch.__version__} sees no CUDA device")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"device: {args.device} ({name}), torch {torch.__version__}, {os.cpu_count()} cores",
        flush=True,
    )
    problems = (
        []
        if args.skip_tests
        else _run_tests(args.out, args.tests_timeout_s, args.pytest_args.split())
    )
    result = _bench(args, started)
    _write_table(args, result)
    _run_py(args, args.total_s - (time.perf_counter() - started))
    problems += [
        f"{w} {c}: {row['error']}" for (w, c), row in result["rows"].items() if "error" in row
    ]
    with open(os.path.join(args.out, "problems.txt"), "w") as file:
        file.write("".join(f"{p}\n" for p in problems))
    print("\n".join(["PROBLEMS:"] + problems) if problems else "OK: no problem found")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
