"""Times torchfit's fit(), evaluate() and predict() against hand-written torch loops
and other libraries.

Usage: python bench/run.py [--device cpu|cuda] [--tasks fit,evaluate,predict]
       [--workloads mlp-b64,mlp-b16,...] [--runners "torch loop,torchfit v0,..."]
       [--epochs 4] [--rounds 3] [--threads 1]

Each (task, workload, runner) runs in fresh processes on the same data, in
`--rounds` rounds that take the runners in turn, so that a change in the
machine's load hits every runner alike. In each process the first epoch (for
evaluate and predict: the first call) is a warm-up; the table shows the median
time per step over the other epochs of every round, the ratio to the
hand-written loop measured in the same run, and the peak memory of the process
(RSS on CPU, allocated on CUDA). A fit epoch includes its validation run,
divided by the training steps; an evaluate or predict call is one pass over
the workload's training arrays. Contenders that are not installed are listed
as skipped.
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
TASKS = ("fit", "evaluate", "predict")
#: The workloads a task runs when `--workloads` is not given.
DEFAULT_WORKLOADS = {
    "fit": ["mlp-b64", "mlp-b16", "cnn-b64", "wide-mlp-b256"],
    "evaluate": ["mlp-b256", "cnn-b64"],
    "predict": ["mlp-b256", "cnn-b64"],
}


def _worker(args) -> None:
    """Runs one contender on one workload; prints a JSON line with the timings."""
    import resource

    import torch

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    workload = WORKLOADS[args.workload]
    function, options = RUNNERS[args.task][args.runner]
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


def _run_once(task: str, runner: str, workload: str, args) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--task",
        task,
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


def _measure(task: str, runners: list, workload: str, args) -> dict:
    """Runs every runner `args.rounds` times, in turn; returns each one's result."""
    results = {runner: {"per_step": [], "peak_mib": 0.0} for runner in runners}
    for _ in range(args.rounds):
        for runner in runners:
            if "error" in results[runner]:
                continue
            once = _run_once(task, runner, workload, args)
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


def _parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--tasks", default="fit", help=f"comma-separated, of {', '.join(TASKS)}; default: fit"
    )
    parser.add_argument(
        "--workloads", default=None, help="comma-separated; default depends on the task"
    )
    parser.add_argument(
        "--runners", default=None, help="comma-separated; default depends on device and task"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=4,
        help="epochs (evaluate/predict: calls) per process, including one warm-up",
    )
    parser.add_argument("--rounds", type=int, default=3, help="processes per runner, taken in turn")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", default="fit", help=argparse.SUPPRESS)
    parser.add_argument("--runner", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return args
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (one warm-up epoch, then the timed ones)")
    args.task_list = args.tasks.split(",")
    unknown = [task for task in args.task_list if task not in TASKS]
    if unknown:
        parser.error(f"--tasks: unknown {unknown}; choose among {', '.join(TASKS)}")
    return args


def _runners_of(task: str, args) -> list:
    if args.runners:
        return [runner for runner in args.runners.split(",") if runner in RUNNERS[task]]
    default = CUDA_DEFAULT if args.device.startswith("cuda") else CPU_DEFAULT
    return [runner for runner in default if runner in RUNNERS[task]]


def _print_task(task: str, args) -> None:
    workloads = args.workloads.split(",") if args.workloads else DEFAULT_WORKLOADS[task]
    available = []
    for runner in _runners_of(task, args):
        module = NEEDS.get(runner)
        if module and importlib.util.find_spec(module) is None:
            skipped = f"skipped ({module} not installed)"
            print(f"{task:<9} {'*':<14} {runner:<14} {skipped:>31}")
        else:
            available.append(runner)
    for workload in workloads:
        results = _measure(task, available, workload, args)
        floor = results.get("torch loop", {}).get("step_s")
        for runner in available:
            result = results[runner]
            if "error" in result:
                print(f"{task:<9} {workload:<14} {runner:<14} failed: {result['error']}")
                continue
            ratio = f"{result['step_s'] / floor:.3f}x" if floor else "-"
            print(
                f"{task:<9} {workload:<14} {runner:<14} {_format_time(result['step_s']):>11}"
                f" {ratio:>9} {result['peak_mib']:>9.0f}",
                flush=True,
            )


def main() -> None:
    args = _parse_args()
    if args.worker:
        _worker(args)
        return
    import torch

    start_load = os.getloadavg()[0]  # before our own processes add to it
    device_name = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.processor() or platform.machine()
    )
    print(
        f"device: {args.device} ({device_name}), {os.cpu_count()} cores,"
        f" torch {torch.__version__}, python {platform.python_version()},"
        f" threads {args.threads or torch.get_num_threads()},"
        f" {args.rounds} rounds x {args.epochs} epochs (1 warm-up),"
        f" load average {start_load:.2f}"
    )
    header = (
        f"{'task':<9} {'workload':<14} {'runner':<14} {'time/step':>11} {'vs torch':>9}"
        f" {'peak MiB':>9}"
    )
    print(header)
    print("-" * len(header))
    for task in args.task_list:
        _print_task(task, args)
    end_load = os.getloadavg()
    print(
        f"load average before the run {start_load:.2f}; at its end"
        f" {end_load[0]:.2f} (1 min), {end_load[1]:.2f} (5 min)"
    )
    if start_load > (os.cpu_count() or 1) / 2:
        print("the machine was busy before the run: ratios are less reliable")


if __name__ == "__main__":
    main()
