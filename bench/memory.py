"""Peak memory of `fit(shuffle=True)` on a memory-mapped array, against a hand-written loop.

Usage: python bench/memory.py [--gib 1.0] [--epochs 2] [--batch-size 256] [--dir DIR]
       [--runners "torch loop,torchfit"]

Writes a float32 array of `--gib` GiB (1024 features a sample) and its int64
labels to `.npy` files once, then runs each contender in a fresh process that
opens them with `np.load(mmap_mode="r")`, trains a `Linear(1024, 10)` with a new
shuffle every epoch on the CPU, and reports the process's peak resident set
(`ru_maxrss`). The mapped file's pages count once they are read, so a contender
that reads every sample each epoch peaks at about its start plus the data
("growth" is the peak minus the start, after imports); every whole copy of
the data adds the data's size again.

- "torch loop": the hand-written loop, gathering each batch by index from the
  memmap (`torch.from_numpy(x[index])`), which holds no copy of the data.
- "torchfit": `model.fit(x, y, batch_size=..., epochs=..., shuffle=True)`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

FEATURES = 1024
CLASSES = 10


def _paths(directory: str, gib: float) -> tuple:
    num_samples = int(gib * 2**30) // (FEATURES * 4)
    return (
        num_samples,
        os.path.join(directory, f"x-{num_samples}.npy"),
        os.path.join(directory, f"y-{num_samples}.npy"),
    )


def _write_data(directory: str, gib: float) -> None:
    """Writes the files (run in its own process: see `_ensure_data`)."""
    import numpy as np

    num_samples, x_path, y_path = _paths(directory, gib)
    if not (os.path.exists(x_path) and os.path.exists(y_path)):
        x = np.lib.format.open_memmap(
            x_path + ".tmp", mode="w+", dtype=np.float32, shape=(num_samples, FEATURES)
        )
        rng = np.random.default_rng(0)
        for start in range(0, num_samples, 8192):  # in chunks: the writer stays small too
            stop = min(start + 8192, num_samples)
            x[start:stop] = rng.random((stop - start, FEATURES), dtype=np.float32)
        x.flush()
        del x
        os.replace(x_path + ".tmp", x_path)
        np.save(y_path, rng.integers(0, CLASSES, num_samples).astype(np.int64))


def _ensure_data(args) -> tuple:
    """Writes the data in a child process and returns the paths.

    Linux carries a process's peak RSS over `fork` and `exec` into the
    children's `ru_maxrss`: a parent that had touched the mapped file would
    raise every contender's reported peak to its own.
    """
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--write",
        "--gib",
        str(args.gib),
        "--dir",
        args.dir,
    ]
    subprocess.run(command, check=True)
    return _paths(args.dir, args.gib)[1:]


def _current_rss_mib() -> float:
    """The resident set now (not the peak), from /proc; the peak where /proc is missing."""
    import resource

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _loop(x, y, args) -> None:
    import torch
    from torch import nn

    model = nn.Linear(FEATURES, CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(args.epochs):
        order = torch.randperm(len(x)).numpy()
        for start in range(0, len(x), args.batch_size):
            index = order[start : start + args.batch_size]
            xb, yb = torch.from_numpy(x[index]), torch.from_numpy(y[index])
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()


def _torchfit(x, y, args) -> None:
    import torch
    from torch import nn

    import torchfit

    model = torchfit.Model(nn.Linear(FEATURES, CLASSES), device="cpu")
    model.compile(
        torch.optim.SGD(model.parameters(), lr=0.01),
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0)


RUNNERS = {"torch loop": _loop, "torchfit": _torchfit}


def _worker(args) -> None:
    import resource

    import numpy as np
    import torch

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.runner == "torchfit":
        import torchfit  # noqa: F401  (imported before the baseline is read, as torch is)
    baseline = _current_rss_mib()
    x = np.load(args.x, mmap_mode="r")
    y = np.load(args.y, mmap_mode="r")
    start = time.perf_counter()
    RUNNERS[args.runner](x, y, args)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "baseline_mib": baseline,
                "peak_mib": peak,
                "seconds": seconds,
                "data_mib": (x.nbytes + y.nbytes) / 2**20,
            }
        )
    )


def _run(runner: str, args, x_path: str, y_path: str) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--runner",
        runner,
        "--x",
        x_path,
        "--y",
        y_path,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=1.0, help="size of x in GiB")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the .npy files go")
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runner", help=argparse.SUPPRESS)
    parser.add_argument("--x", help=argparse.SUPPRESS)
    parser.add_argument("--y", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    if args.write:
        _write_data(args.dir, args.gib)
        return
    x_path, y_path = _ensure_data(args)
    results = {runner: _run(runner, args, x_path, y_path) for runner in args.runners.split(",")}
    floor = results.get("torch loop", {}).get("peak_mib")
    header = (
        f"{'runner':<12} {'data MiB':>9} {'start MiB':>10} {'peak MiB':>9} {'growth MiB':>11}"
        f" {'vs loop':>8} {'seconds':>8}"
    )
    print(f"{args.epochs} epochs, batch {args.batch_size}, shuffle=True, CPU")
    print(header)
    print("-" * len(header))
    for runner, result in results.items():
        if "error" in result:
            print(f"{runner:<12} failed: {result['error']}")
            continue
        ratio = f"{result['peak_mib'] / floor:.2f}x" if floor else "-"
        growth = result["peak_mib"] - result["baseline_mib"]
        print(
            f"{runner:<12} {result['data_mib']:>9.0f} {result['baseline_mib']:>10.0f}"
            f" {result['peak_mib']:>9.0f} {growth:>11.0f} {ratio:>8} {result['seconds']:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
