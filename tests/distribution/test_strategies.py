"""The same torchfit script under `torchrun --nproc_per_node=2` (CPU, Gloo) against one process."""

import importlib.util
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "_train_script.py")

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with Gloo",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(mode, out, *extra, timeout=120):
    """Runs the script under torchrun with 2 CPU ranks; returns (returncode, output, seconds)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        *extra,
        SCRIPT,
        mode,
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    start = time.monotonic()
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def load_ranks(out):
    return [torch.load(os.path.join(out, f"rank{rank}.pt"), weights_only=False) for rank in (0, 1)]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("_torchfit_train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def train_runs(script, tmp_path_factory):
    """(single-process result, [rank 0 result, rank 1 result], output folder of the 2-rank run)."""
    single_dir = tmp_path_factory.mktemp("single")
    reference = script.train(str(single_dir))
    out = tmp_path_factory.mktemp("ranks")
    code, output, _ = launch("train", out)
    assert code == 0, output[-4000:]
    return reference, load_ranks(out), out


def assert_weights_close(actual, expected, rtol=1e-5, atol=1e-6):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def test_two_ranks_train_to_the_single_process_weights(train_runs):
    reference, ranks, _ = train_runs
    for result in ranks:
        assert_weights_close(result["weights"], reference["weights"])


def test_epoch_and_validation_logs_are_the_global_values(train_runs):
    reference, ranks, _ = train_runs
    for result in ranks:
        assert sorted(result["history"]) == ["loss", "mae", "val_loss", "val_mae"]
        for key, values in reference["history"].items():
            np.testing.assert_allclose(result["history"][key], values, rtol=1e-5)
        assert result["evaluate"] == pytest.approx(reference["evaluate"], rel=1e-5)
        assert result["dataset_eval"] == pytest.approx(reference["dataset_eval"], rel=1e-5)


def test_predict_returns_every_row_in_input_order_on_every_rank(train_runs):
    reference, ranks, _ = train_runs
    for result in ranks:
        assert result["predict"].shape == (150, 1)
        np.testing.assert_allclose(result["predict"], reference["predict"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            result["loader_predict"], reference["loader_predict"], rtol=1e-5, atol=1e-6
        )
        # A Sequence's batches are dealt out per rank and put back in order.
        np.testing.assert_allclose(
            result["sequence_predict"], result["sequence_predict_arrays"], rtol=1e-5
        )
        assert result["sequence_eval"] == pytest.approx(result["sequence_eval_arrays"], rel=1e-5)


def test_checkpoints_and_csv_are_written_by_rank_zero_only(train_runs):
    _, (rank0, rank1), out = train_runs
    assert rank0["writes"] == {"csv": 1, "weights": 4}  # 3 checkpoints + save_weights
    assert rank1["writes"] == {"csv": 0, "weights": 0}
    assert sorted(name for name in os.listdir(out) if name.startswith("ckpt")) == [
        "ckpt-1.weights.pt",
        "ckpt-2.weights.pt",
        "ckpt-3.weights.pt",
    ]
    with open(os.path.join(out, "log.csv")) as file:
        assert len(file.read().strip().splitlines()) == 4  # header + 3 epochs


def test_early_stopping_stops_every_rank_at_the_same_epoch(train_runs):
    reference, ranks, _ = train_runs
    assert reference["early_epochs"] == [0, 1]
    assert [result["early_epochs"] for result in ranks] == [[0, 1], [0, 1]]
    assert [result["epochs"] for result in ranks] == [[0, 1, 2], [0, 1, 2]]


def test_mixed_bfloat16_trains_under_ddp(train_runs):
    reference, ranks, _ = train_runs
    for result in ranks:
        # bfloat16 rounds differently on a half batch: close, not equal.
        assert_weights_close(result["bf16_weights"], reference["bf16_weights"], rtol=0, atol=1e-2)
        assert not np.allclose(result["bf16_weights"][0], reference["weights"][0])


def test_clear_errors_for_an_indivisible_batch_and_uneven_generators(train_runs):
    _, ranks, _ = train_runs
    for rank, result in enumerate(ranks):
        assert (
            "batch_size=33" in result["batch_size"]
            and "multiple of the world size" in result["batch_size"]
        )
        assert "at step 2, 1 of 2 ranks had a batch" in result["uneven"]
        assert f"rank {rank} had {'one' if rank == 0 else 'none'}" in result["uneven"]


def test_backup_and_restore_resumes_after_a_rank_is_killed(script, tmp_path):
    reference = script.elastic(str(tmp_path / "single"))
    out = tmp_path / "ranks"
    out.mkdir()
    # The c10d rendezvous gives each restart a fresh round (static reuses the old addresses).
    code, output, _ = launch(
        "elastic",
        out,
        "--max-restarts=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{_free_port()}",
    )
    assert code == 0, output[-4000:]
    assert "exitcode: -9" in output  # rank 1 really was killed
    for result in load_ranks(out):
        assert result["restarts"] == 1
        assert_weights_close(result["weights"], reference["weights"])


def test_fsdp2_trains_like_one_process_and_its_sharded_checkpoint_loads_into_one(script, tmp_path):
    from torchfit import distribution

    reference = script.fsdp(str(tmp_path))
    out = tmp_path / "ranks"
    out.mkdir()
    code, output, _ = launch("fsdp", out)
    assert code == 0, output[-4000:]
    rank0, rank1 = load_ranks(out)
    assert_weights_close(rank0["weights"], reference["weights"])
    assert rank1["weights"] == []  # the full state is gathered on rank 0 only
    for result in (rank0, rank1):
        assert result["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    model = script.make_model()
    distribution.load_sharded(model, out / "sharded")
    assert_weights_close(model.get_weights(), reference["weights"])


def test_fsdp2_save_weights_writes_the_full_weights_once_and_save_refuses(script, tmp_path):
    code, output, _ = launch("fsdp_files", tmp_path)
    assert code == 0, output[-4000:]
    rank0, rank1 = load_ranks(tmp_path)
    assert rank0["writes"]["weights"] == 1 and rank1["writes"]["weights"] == 0
    written = torch.load(tmp_path / "full.weights.pt", weights_only=True)
    assert_weights_close([v.numpy() for v in written.values()], rank0["full"])
    model = script.make_model()
    model.load_weights(tmp_path / "full.weights.pt")  # a plain state_dict of the whole module
    assert_weights_close(model.get_weights(), rank0["full"])
    for result in (rank0, rank1):
        assert "FSDP-sharded model is not supported" in result["save_error"]
    assert not (tmp_path / "whole.pt").exists()


def test_jit_compile_under_ddp_trains_like_one_eager_process(script, tmp_path):
    reference = script.jit(str(tmp_path), jit_compile=False)
    out = tmp_path / "ranks"
    out.mkdir()
    code, output, _ = launch("jit", out, timeout=240)
    assert code == 0, output[-4000:]
    for result in load_ranks(out):
        assert_weights_close(result["weights"], reference["weights"])


def test_a_failing_rank_ends_the_job_with_an_error_in_bounded_time(tmp_path):
    code, output, seconds = launch("fail", tmp_path, timeout=120)
    assert code != 0
    assert "callback failed on rank 1" in output
    assert seconds < 90


def test_a_rank_with_an_empty_last_batch_still_trains_like_one_process(script, tmp_path):
    reference = script.tiny_last_batch(str(tmp_path))
    out = tmp_path / "ranks"
    out.mkdir()
    code, output, _ = launch("tiny_last_batch", out)
    assert code == 0, output[-4000:]
    for result in load_ranks(out):
        assert_weights_close(result["weights"], reference["weights"])
        assert result["history"]["loss"] == pytest.approx(reference["history"]["loss"], rel=1e-5)


def test_a_stop_asked_on_one_rank_stops_every_rank_together(tmp_path):
    code, output, seconds = launch("stop_one_rank", tmp_path, timeout=120)
    assert code == 0, output[-4000:]
    ranks = load_ranks(tmp_path)
    for case in ("nan", "nan_raise", "one_rank", "every_rank"):
        assert ranks[0][case]["seen"] == ranks[1][case]["seen"], case  # the same steps, then stop
        asked = min(result[case]["asked"] for result in ranks if result[case]["asked"] is not None)
        assert max(result[case]["ended"] for result in ranks) - asked < 5.0, case  # not 30 s
    # A NaN in rank 1's half of batch 5: rank 1 asks there; every rank stops a step later.
    assert ranks[0]["nan"]["seen"][-1] == (0, 6)
    message = (
        "Batch 5 on rank 1 of 2: Invalid loss, terminating training. Every rank stops after"
        " batch 6 (rank 0 asked too)."
    )
    assert output.count(message) == 2  # the same words from every rank
    # raise_error=True: every rank raises the same RuntimeError.
    errors = [result["nan_raise"]["error"] for result in ranks]
    assert errors[0] == errors[1] and errors[0].startswith(
        "Batch 5 on rank 1 of 2: NaN or Inf loss encountered at batch 5. Loss value: nan."
    )
    # A callback stopping rank 1 alone at epoch 1, batch 2: both ranks stop after batch 3.
    assert ranks[0]["one_rank"]["seen"][-1] == (1, 3)
    assert (
        output.count(
            "Batch 2 on rank 1 of 2: model.stop_training was set. Every rank stops after batch 3."
        )
        == 2
    )
    # Asked on every rank at the same batch: they stop there, as one process does.
    assert ranks[0]["every_rank"]["seen"][-1] == (1, 2)
    assert seconds < 90
