"""A torchfit training script run unchanged by one process or by torchrun (tests/distribution).

Usage: python _train_script.py MODE OUT_DIR. Each rank writes OUT_DIR/rank{R}.pt
with what the tests compare (weights, history, evaluate, predict). The tests
also import it and call the mode functions in-process for the single-process
reference.
"""

import os
import signal
import sys
import time

import numpy as np
import torch
from torch import nn

import torchfit
from torchfit import callbacks as cbs


def _rank():
    return int(os.environ.get("RANK", "0"))


def data(n=150, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1)) + 0.1 * rng.normal(size=(n, 1))).astype("float32")
    w = rng.uniform(0.5, 1.5, size=(n,)).astype("float32")
    return x, y, w


def make_model(policy=None):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    model = torchfit.Model(net, device="cpu", dtype_policy=policy)
    model.compile(
        optimizer=torchfit.optimizers.SGD(learning_rate=0.05, momentum=0.5),
        loss="mse",
        metrics=["mae"],
    )
    return model


class Epochs(cbs.Callback):
    """Records the epochs this rank ran."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(epoch)


WRITES = {"csv": 0, "weights": 0}


class CountingCSVLogger(cbs.CSVLogger):
    def on_train_begin(self, logs=None):
        WRITES["csv"] += 1
        super().on_train_begin(logs)


def _count_weight_writes():
    """Counts the weight files this process writes (main only: it patches torchfit)."""
    save_weights = torchfit.models.saving.save_weights

    def counting(model, *args, **kwargs):
        WRITES["weights"] += 1
        save_weights(model, *args, **kwargs)

    torchfit.models.saving.save_weights = counting


def weights(model):
    return [w.copy() for w in model.get_weights()]


def train(out):
    x, y, w = data()
    model = make_model()
    epochs = Epochs()
    history = model.fit(
        x,
        y,
        sample_weight=w,
        batch_size=64,
        epochs=3,
        validation_split=0.2,
        shuffle=True,
        verbose=2,
        callbacks=[
            cbs.ModelCheckpoint(
                os.path.join(out, "ckpt-{epoch}.weights.pt"), save_weights_only=True
            ),
            CountingCSVLogger(os.path.join(out, "log.csv")),
            epochs,
        ],
    )
    result = {
        "weights": weights(model),
        "history": history.history,
        "evaluate": model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True),
        "predict": model.predict(x, batch_size=40, verbose=0),
        "epochs": epochs.seen,
    }
    # EarlyStopping: a huge min_delta stops after epoch 2, on every rank.
    model = make_model()
    epochs = Epochs()
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=6,
        verbose=0,
        validation_data=(x[:40], y[:40]),
        callbacks=[cbs.EarlyStopping(monitor="val_loss", patience=1, min_delta=100.0), epochs],
    )
    result["early_epochs"] = epochs.seen
    # Mixed precision under DDP.
    model = make_model("mixed_bfloat16")
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    result["bf16_weights"] = weights(model)
    # A Dataset and a user's DataLoader are split per rank too.
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    model = make_model()
    result["dataset_eval"] = model.evaluate(
        _MapDataset(dataset), batch_size=30, verbose=0, return_dict=True
    )
    loader = torch.utils.data.DataLoader(_MapDataset(dataset), batch_size=30)
    result["loader_predict"] = model.predict(loader, verbose=0)
    model.save_weights(os.path.join(out, "final.weights.pt"))
    model.load_weights(os.path.join(out, "final.weights.pt"))
    result["writes"] = dict(WRITES)
    result.update(errors())
    return result


class _MapDataset(torch.utils.data.Dataset):
    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        return self.inner[index]


class KillOnce(cbs.Callback):
    """SIGKILLs rank 1 at one batch of the first attempt (torchrun then restarts the group)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if first_attempt and _rank() == 1 and (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def elastic(out):
    x, y, _ = data(200)
    model = make_model()
    callbacks = [cbs.BackupAndRestore(os.path.join(out, "backup"), save_freq=2)]
    if os.environ.get("WORLD_SIZE"):
        callbacks.append(KillOnce(epoch=1, batch=2))
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=callbacks)
    return {
        "weights": weights(model),
        "restarts": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
    }


def fsdp(out):
    from torchfit import distribution

    x, y, _ = data(128)
    if os.environ.get("WORLD_SIZE"):
        distribution.set_distribution(distribution.ModelParallel())
    model = make_model()
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
    state = (
        distribution.full_state_dict(model)
        if os.environ.get("WORLD_SIZE")
        else model.module.state_dict()
    )
    result = {
        "weights": [v.detach().cpu().numpy() for v in state.values()],
        "loss": model.evaluate(x, y, batch_size=32, verbose=0),
    }
    if os.environ.get("WORLD_SIZE"):
        distribution.save_sharded(model, os.path.join(out, "sharded"))
    return result


def fsdp_files(out):
    """Under FSDP2, save_weights gathers the full weights into one plain file; save() refuses."""
    from torchfit import distribution

    distribution.set_distribution(distribution.ModelParallel())
    x, y, _ = data(64)
    model = make_model()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    model.save_weights(os.path.join(out, "full.weights.pt"))
    try:
        model.save(os.path.join(out, "whole.pt"))
        error = None
    except ValueError as err:
        error = str(err)
    full = distribution.full_state_dict(model)
    return {"full": [v.numpy() for v in full.values()], "save_error": error, "writes": WRITES}


class FailOnRank1(cbs.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if _rank() == 1:
            raise RuntimeError("callback failed on rank 1")


def fail(out):
    x, y, _ = data(64)
    model = make_model()
    model.fit(x, y, batch_size=16, epochs=50, verbose=0, callbacks=[FailOnRank1()])
    return {}


class Batches(torchfit.utils.Sequence):
    def __init__(self, x, y, size):
        super().__init__()
        self.x, self.y, self.size = x, y, size

    def __len__(self):
        return int(np.ceil(len(self.x) / self.size))

    def __getitem__(self, index):
        rows = slice(index * self.size, (index + 1) * self.size)
        return self.x[rows], self.y[rows]


def errors():
    x, y, _ = data(64)
    model = make_model()
    result = {}
    try:
        model.fit(x, y, batch_size=33, verbose=0)
    except ValueError as err:
        result["batch_size"] = str(err)

    def uneven():
        for step in range(3 - _rank()):
            yield x[step * 8 : (step + 1) * 8], y[step * 8 : (step + 1) * 8]

    try:
        model.fit(uneven(), verbose=0)
    except ValueError as err:
        result["uneven"] = str(err)
    sequence = Batches(x, y, 10)  # 7 batches: the last training round is padded
    model.fit(sequence, epochs=1, verbose=0, shuffle=True)
    result["sequence_predict"] = model.predict(sequence, verbose=0)
    result["sequence_predict_arrays"] = model.predict(x, batch_size=16, verbose=0)
    result["sequence_eval"] = model.evaluate(sequence, verbose=0, return_dict=True)
    result["sequence_eval_arrays"] = model.evaluate(
        x, y, batch_size=10, verbose=0, return_dict=True
    )
    return result


def jit(out, jit_compile=True):
    x, y, _ = data(128)
    model = make_model()
    model.compile(
        optimizer=torchfit.optimizers.SGD(learning_rate=0.05), loss="mse", jit_compile=jit_compile
    )
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
    return {"weights": weights(model)}


def tiny_last_batch(out):
    # 65 samples at a global batch of 64: the last batch gives one rank nothing.
    x, y, _ = data(65)
    model = make_model()
    history = model.fit(x, y, batch_size=64, epochs=2, verbose=0, shuffle=False)
    return {"weights": weights(model), "history": history.history}


class StopOnRanks(cbs.Callback):
    """Sets `stop_training` on the given ranks only, at one batch of one epoch."""

    def __init__(self, epoch, batch, ranks):
        super().__init__()
        self.at, self.ranks, self.epoch = (epoch, batch), ranks, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at and _rank() in self.ranks:
            self.model.stop_training = True


class Steps(cbs.Callback):
    """Records the (epoch, batch) this rank trained, and when a stop was first asked here."""

    def __init__(self):
        super().__init__()
        self.seen, self.epoch, self.asked = [], 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((self.epoch, batch))
        loss = logs.get("loss") if logs else None
        if self.asked is None and (self.model.stop_training or not np.isfinite(float(loss))):
            self.asked = time.monotonic()


def _stop_run(x, y, epochs, stopper):
    model = make_model()
    steps = Steps()
    try:
        model.fit(
            x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, callbacks=[stopper, steps]
        )
        error = None
    except RuntimeError as err:
        error = str(err)
    return {"seen": steps.seen, "asked": steps.asked, "ended": time.monotonic(), "error": error}


def stop_one_rank(out):
    """A stop asked mid-epoch on one rank (a NaN loss, a callback) stops every rank together."""
    from torchfit import distribution

    if os.environ.get("WORLD_SIZE"):  # a hang fails in 30 s instead of 300 s
        distribution.set_distribution(distribution.DataParallel(timeout=30))
    x, y, _ = data(128)
    x_nan = x.copy()
    x_nan[5 * 16 + 8 + 1] = np.nan  # in rank 1's half of batch 5
    return {
        "nan": _stop_run(x_nan, y, 3, cbs.TerminateOnNaN()),
        "nan_raise": _stop_run(x_nan, y, 3, cbs.TerminateOnNaN(raise_error=True)),
        "one_rank": _stop_run(x, y, 3, StopOnRanks(1, 2, ranks=(1,))),
        "every_rank": _stop_run(x, y, 3, StopOnRanks(1, 2, ranks=(0, 1))),
    }


MODES = {
    "train": train,
    "elastic": elastic,
    "fsdp": fsdp,
    "fsdp_files": fsdp_files,
    "fail": fail,
    "jit": jit,
    "tiny_last_batch": tiny_last_batch,
    "stop_one_rank": stop_one_rank,
}

if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    _count_weight_writes()
    torch.save(MODES[mode](out), os.path.join(out, f"rank{_rank()}.pt"))
