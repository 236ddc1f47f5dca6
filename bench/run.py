"""Times torchfit's fit() against a hand-written torch loop and other libraries.

Usage: python bench/run.py [--device cpu|cuda] [--workloads mlp-b64,mlp-b16,...]
       [--runners "torch loop,torchfit v0,..."] [--epochs 4]

Each (workload, runner) pair runs in fresh processes on the same data, in
`--rounds` rounds that take the runners in turn, so that a change in the
machine's load hits every runner alike. In each process the first epoch is
a warm-up; the table shows the median time per training step over the other
epochs of every round (validation included in the epoch, divided by the
training steps), the ratio to the hand-written loop measured in the same run,
and the peak memory of the process (RSS on CPU, allocated on CUDA).
Contenders that are not installed are listed as skipped.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from runners import RUNNERS  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

NEEDS = {"keras 3": "keras", "lightning": "lightning", "poutyne": "poutyne"}
CPU_DEFAULT = ["torch loop", "torchfit v0", "torchfit v1", "keras 3", "lightning", "poutyne"]
CUDA_DEFAULT = CPU_DEFAULT + ["torchfit jit", "torchfit bf16"]


def _worker(args) -> None:
    """Runs one contender on one workload; prints a JSON line with the timings."""
    import resource

    import torch

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    workload = WORKLOADS[args.workload]
    function, options = RUNNERS[args.runner]
    log_path = os.path.join(tempfile.gettempdir(), f"torchfit-bench-{os.getpid()}.log")
    # verbose=1 output goes to a file: the bar's cost is measured, not the terminal's.
    stdout, sys.stdout = sys.stdout, open(log_path, "w")
    try:
        times = function(workload, args.device, args.epochs, **options)
    finally:
        sys.stdout.close()
        sys.stdout = stdout
        os.unlink(log_path)
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "steps": workload.steps_per_epoch, "peak_mib": peak}))


def _run_once(runner: str, workload: str, args) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--runner",
        runner,
        "--workload",
        workload,
        "--device",
        args.device,
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return {
            "error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
        }
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "per_step": [t / payload["steps"] for t in payload["times"][1:]],
        "peak_mib": payload["peak_mib"],
    }


def _measure(runners: list, workload: str, args) -> dict:
    """Runs every runner `args.rounds` times, in turn; returns each one's result."""
    results = {runner: {"per_step": [], "peak_mib": 0.0} for runner in runners}
    for _ in range(args.rounds):
        for runner in runners:
            if "error" in results[runner]:
                continue
            once = _run_once(runner, workload, args)
            if "error" in once:
                results[runner] = once
                continue
            results[runner]["per_step"] += once["per_step"]
            results[runner]["peak_mib"] = max(results[runner]["peak_mib"], once["peak_mib"])
    for result in results.values():
        if "error" not in result:
            result["step_s"] = statistics.median(result["per_step"])
    return results


def _format_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workloads", default=None, help="comma-separated; default: all")
    parser.add_argument(
        "--runners", default=None, help="comma-separated; default depends on device"
    )
    parser.add_argument(
        "--epochs", type=int, default=4, help="per process, including one warm-up epoch"
    )
    parser.add_argument("--rounds", type=int, default=3, help="processes per runner, taken in turn")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runner", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (one warm-up epoch, then the timed ones)")
    import torch

    workloads = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    default = CUDA_DEFAULT if args.device.startswith("cuda") else CPU_DEFAULT
    runners = args.runners.split(",") if args.runners else default
    start_load = os.getloadavg()[0]  # before our own processes add to it
    device_name = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.processor() or platform.machine()
    )
    print(
        f"device: {args.device} ({device_name}), {os.cpu_count()} cores,"
        f" torch {torch.__version__}, python {platform.python_version()},"
        f" {args.rounds} rounds x {args.epochs} epochs (1 warm-up),"
        f" load average {start_load:.2f}"
    )
    header = f"{'workload':<14} {'runner':<14} {'time/step':>11} {'vs torch':>9} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    for workload in workloads:
        available = []
        for runner in runners:
            module = NEEDS.get(runner)
            if module and importlib.util.find_spec(module) is None:
                print(f"{workload:<14} {runner:<14} {'skipped (' + module + ' not installed)':>31}")
            else:
                available.append(runner)
        results = _measure(available, workload, args)
        floor = results.get("torch loop", {}).get("step_s")
        for runner in available:
            result = results[runner]
            if "error" in result:
                print(f"{workload:<14} {runner:<14} failed: {result['error']}")
                continue
            ratio = f"{result['step_s'] / floor:.3f}x" if floor else "-"
            print(
                f"{workload:<14} {runner:<14} {_format_time(result['step_s']):>11} {ratio:>9}"
                f" {result['peak_mib']:>9.0f}",
                flush=True,
            )
    if start_load > (os.cpu_count() or 1) / 2:
        print(
            f"the machine was busy before the run (load average {start_load:.2f}):"
            " ratios are less reliable"
        )


if __name__ == "__main__":
    main()
