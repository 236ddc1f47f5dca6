"""One function per contender; each trains a workload and times its epochs.

Every runner does the same work per epoch: one pass over the shuffled
training data (forward, sparse cross-entropy from logits, backward, RMSprop
update, running loss and accuracy), then one pass over the validation data.
Each returns the wall time of every epoch, the first being the warm-up.
"""

import time


def _sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


class _KerasRMSprop:
    """Keras's RMSprop update (epsilon inside the square root), in the same
    `torch._foreach_*` kernels as torchfit's, so the floor runs the same
    optimizer math as every Keras-compatible contender.

    `torch.optim.RMSprop` adds epsilon outside the square root: with rho 0.9
    the squared-gradient average of a unit that stops receiving gradient (a
    dead ReLU) decays into subnormal floats after ~800 steps, and the CPU's
    slow path for them made that loop 1.7-1.9x slower from the second epoch on
    (the warm-up epoch hid it).
    """

    def __init__(self, params, lr=1e-3, rho=0.9, epsilon=1e-7):
        import torch

        self.params, self.lr, self.rho, self.epsilon = params, lr, rho, epsilon
        self.velocities = [torch.zeros_like(p) for p in params]

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    def step(self):
        import torch

        with torch.no_grad():
            grads = [p.grad for p in self.params]
            torch._foreach_mul_(self.velocities, self.rho)
            torch._foreach_addcmul_(self.velocities, grads, grads, value=1.0 - self.rho)
            denominators = torch._foreach_add(self.velocities, self.epsilon)
            torch._foreach_sqrt_(denominators)
            torch._foreach_addcdiv_(self.params, grads, denominators, value=-self.lr)


def hand_written(workload, device, epochs, **_):
    """The floor: a plain torch loop slicing pre-shuffled device tensors, with
    the running loss and accuracy summed on the device and read once an epoch."""
    import torch
    import torch.nn.functional as F

    (x, y), (x_val, y_val) = workload.data()
    x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    x_val, y_val = torch.from_numpy(x_val).to(device), torch.from_numpy(y_val).to(device)
    model = workload.torch_module().to(device)
    optimizer = _KerasRMSprop(list(model.parameters()))
    batch_size = workload.batch_size
    times = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        model.train()
        permutation = torch.randperm(len(x)).to(device)
        xs, ys = x[permutation], y[permutation]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for i in range(0, len(xs), batch_size):
            xb, yb = xs[i : i + batch_size], ys[i : i + batch_size]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(xb)
            correct += (logits.argmax(-1) == yb).sum()
        logs = {"loss": (loss_sum / len(xs)).item(), "accuracy": (correct / len(xs)).item()}
        model.eval()
        with torch.no_grad():
            val_loss = torch.zeros((), device=device)
            val_correct = torch.zeros((), device=device)
            for i in range(0, len(x_val), batch_size):
                xb, yb = x_val[i : i + batch_size], y_val[i : i + batch_size]
                logits = model(xb)
                val_loss += F.cross_entropy(logits, yb) * len(xb)
                val_correct += (logits.argmax(-1) == yb).sum()
            logs["val_loss"] = (val_loss / len(x_val)).item()
            logs["val_accuracy"] = (val_correct / len(x_val)).item()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def torchfit_fit(
    workload,
    device,
    epochs,
    verbose=0,
    jit_compile="auto",
    steps_per_execution=1,
    dtype_policy=None,
    **_,
):
    """torchfit's `fit`, with validation data, as a user writes it."""
    import torchfit

    (x, y), (x_val, y_val) = workload.data()
    model = torchfit.Model(workload.torch_module(), device=device, dtype_policy=dtype_policy)
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(),
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[torchfit.metrics.SparseCategoricalAccuracy()],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    timer = _EpochTimer(torchfit.callbacks.Callback, device)
    model.fit(
        x,
        y,
        batch_size=workload.batch_size,
        epochs=epochs,
        verbose=verbose,
        validation_data=(x_val, y_val),
        callbacks=[timer],
    )
    return timer.times


def keras_fit(workload, device, epochs, verbose=0, **_):
    """Keras 3 on its torch backend."""
    import os

    os.environ["KERAS_BACKEND"] = "torch"
    if device.startswith("cuda"):
        os.environ.setdefault("KERAS_TORCH_DEVICE", device)
    else:
        os.environ["KERAS_TORCH_DEVICE"] = "cpu"
    import keras

    (x, y), (x_val, y_val) = workload.data()
    model = workload.keras_model()
    model.compile(
        optimizer=keras.optimizers.RMSprop(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    timer = _EpochTimer(keras.callbacks.Callback, device)
    model.fit(
        x,
        y,
        batch_size=workload.batch_size,
        epochs=epochs,
        verbose=verbose,
        validation_data=(x_val, y_val),
        callbacks=[timer],
    )
    return timer.times


def lightning_fit(workload, device, epochs, **_):
    """PyTorch Lightning with DataLoaders over tensors, no logger or checkpoints."""
    import lightning as L
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    (x, y), (x_val, y_val) = workload.data()

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = workload.torch_module()

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            logits = self.net(xb)
            loss = F.cross_entropy(logits, yb)
            self.log("loss", loss, on_step=False, on_epoch=True)
            self.log(
                "accuracy", (logits.argmax(-1) == yb).float().mean(), on_step=False, on_epoch=True
            )
            return loss

        def validation_step(self, batch, batch_idx):
            xb, yb = batch
            logits = self.net(xb)
            self.log("val_loss", F.cross_entropy(logits, yb))
            self.log("val_accuracy", (logits.argmax(-1) == yb).float().mean())

        def configure_optimizers(self):
            return torch.optim.RMSprop(self.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)

    train = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=workload.batch_size,
        shuffle=True,
    )
    val = DataLoader(
        TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val)),
        batch_size=workload.batch_size,
    )

    class Timer(L.Callback):
        def __init__(self):
            self.times, self.start = [], None

        def on_train_epoch_start(self, trainer, module):
            _sync(device)
            self.start = time.perf_counter()

        def on_validation_epoch_end(self, trainer, module):
            if self.start is not None and not trainer.sanity_checking:
                _sync(device)
                self.times.append(time.perf_counter() - self.start)

    timer = Timer()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device.startswith("cuda") else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(Module(), train, val)
    return timer.times


def poutyne_fit(workload, device, epochs, **_):
    """Poutyne's Model.fit on arrays."""
    import poutyne
    import torch

    (x, y), (x_val, y_val) = workload.data()
    network = workload.torch_module()
    optimizer = torch.optim.RMSprop(network.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    model = poutyne.Model(
        network, optimizer, "cross_entropy", batch_metrics=["accuracy"], device=torch.device(device)
    )

    class Timer(poutyne.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.start = [], None

        def on_epoch_begin(self, epoch_number, logs):
            _sync(device)
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch_number, logs):
            _sync(device)
            self.times.append(time.perf_counter() - self.start)

    timer = Timer()
    model.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=workload.batch_size,
        verbose=False,
        callbacks=[timer],
    )
    return timer.times


class _EpochTimer:
    """Builds a callback (for torchfit or Keras) that times whole epochs.

    It overrides epoch hooks only, so it never makes the loop read batch logs.
    """

    def __new__(cls, base, device):
        class EpochTimer(base):
            def __init__(self):
                super().__init__()
                self.times, self.start = [], None

            def on_epoch_begin(self, epoch, logs=None):
                _sync(device)
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                _sync(device)
                self.times.append(time.perf_counter() - self.start)

        return EpochTimer()


def hand_written_evaluate(workload, device, epochs, **_):
    """The floor of `evaluate`: the mean loss and accuracy summed on the device
    under `torch.inference_mode()`, one host read at the end."""
    import torch
    import torch.nn.functional as F

    (x, y), _ = workload.data()
    model = workload.torch_module().to(device)
    batch_size = workload.batch_size
    times = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        model.eval()
        with torch.inference_mode():
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device)
            for i in range(0, len(xs), batch_size):
                xb, yb = xs[i : i + batch_size], ys[i : i + batch_size]
                logits = model(xb)
                loss_sum += F.cross_entropy(logits, yb) * len(xb)
                correct += (logits.argmax(-1) == yb).sum()
            _read_logs(loss_sum / len(xs), correct / len(xs))
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _read_logs(*values):
    """The values as Python floats: the one host read an evaluation makes."""
    import torch

    return torch.stack(values).tolist()


def hand_written_predict(workload, device, epochs, **_):
    """The floor of `predict`: the logits of every batch under
    `torch.inference_mode()`, joined and copied to the host once."""
    import torch

    (x, _), _ = workload.data()
    model = workload.torch_module().to(device)
    batch_size = workload.batch_size
    times = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        xs = torch.from_numpy(x).to(device)
        model.eval()
        with torch.inference_mode():
            outputs = [model(xs[i : i + batch_size]) for i in range(0, len(xs), batch_size)]
            torch.cat(outputs).cpu().numpy()
        times.append(time.perf_counter() - start)
    return times


def _compiled_torchfit_model(workload, device, jit_compile="auto", dtype_policy=None):
    import torchfit

    model = torchfit.Model(workload.torch_module(), device=device, dtype_policy=dtype_policy)
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(),
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[torchfit.metrics.SparseCategoricalAccuracy()],
        jit_compile=jit_compile,
    )
    return model


def torchfit_evaluate(workload, device, epochs, verbose=0, **options):
    """torchfit's `evaluate` on the arrays, as a user calls it."""
    (x, y), _ = workload.data()
    model = _compiled_torchfit_model(workload, device, **options)
    times = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        model.evaluate(x, y, batch_size=workload.batch_size, verbose=verbose)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def torchfit_predict(workload, device, epochs, verbose=0, **options):
    """torchfit's `predict` on the arrays, as a user calls it."""
    (x, _), _ = workload.data()
    model = _compiled_torchfit_model(workload, device, **options)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.predict(x, batch_size=workload.batch_size, verbose=verbose)
        times.append(time.perf_counter() - start)
    return times


def _keras_model(workload, device):
    import os

    os.environ["KERAS_BACKEND"] = "torch"
    if device.startswith("cuda"):
        os.environ.setdefault("KERAS_TORCH_DEVICE", device)
    else:
        os.environ["KERAS_TORCH_DEVICE"] = "cpu"
    import keras

    model = workload.keras_model()
    model.compile(
        optimizer=keras.optimizers.RMSprop(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def keras_evaluate(workload, device, epochs, verbose=0, **_):
    """Keras 3's `evaluate` on its torch backend."""
    (x, y), _ = workload.data()
    model = _keras_model(workload, device)
    times = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        model.evaluate(x, y, batch_size=workload.batch_size, verbose=verbose)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def keras_predict(workload, device, epochs, verbose=0, **_):
    """Keras 3's `predict` on its torch backend."""
    (x, _), _ = workload.data()
    model = _keras_model(workload, device)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.predict(x, batch_size=workload.batch_size, verbose=verbose)
        times.append(time.perf_counter() - start)
    return times


FIT_RUNNERS = {
    "torch loop": (hand_written, {}),
    "torchfit v0": (torchfit_fit, {"verbose": 0}),
    "torchfit v1": (torchfit_fit, {"verbose": 1}),
    "torchfit jit": (torchfit_fit, {"verbose": 1, "jit_compile": True, "steps_per_execution": 8}),
    "torchfit bf16": (torchfit_fit, {"verbose": 1, "dtype_policy": "mixed_bfloat16"}),
    "keras 3": (keras_fit, {"verbose": 0}),
    "lightning": (lightning_fit, {}),
    "poutyne": (poutyne_fit, {}),
}

EVALUATE_RUNNERS = {
    "torch loop": (hand_written_evaluate, {}),
    "torchfit v0": (torchfit_evaluate, {"verbose": 0}),
    "torchfit v1": (torchfit_evaluate, {"verbose": 1}),
    "keras 3": (keras_evaluate, {"verbose": 0}),
}

PREDICT_RUNNERS = {
    "torch loop": (hand_written_predict, {}),
    "torchfit v0": (torchfit_predict, {"verbose": 0}),
    "torchfit v1": (torchfit_predict, {"verbose": 1}),
    "keras 3": (keras_predict, {"verbose": 0}),
}

#: task -> runner name -> (function, keyword arguments)
RUNNERS = {"fit": FIT_RUNNERS, "evaluate": EVALUATE_RUNNERS, "predict": PREDICT_RUNNERS}
