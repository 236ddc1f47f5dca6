"""Adafactor, Lamb, Muon and LossScaleOptimizer learn, save, load and resume bitwise."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.callbacks import BackupAndRestore, Callback
from torchfit.optimizers import Adafactor, Adam, Lamb, LossScaleOptimizer, Muon

FACTORIES = {
    "adafactor": lambda: Adafactor(learning_rate=0.05, weight_decay=0.01),
    "lamb": lambda: Lamb(learning_rate=0.01, use_ema=True),
    "muon": lambda: Muon(learning_rate=0.02, exclude_layers=[r"^2\."]),
    "loss_scale": lambda: LossScaleOptimizer(Adam(learning_rate=0.02), dynamic_growth_steps=3),
}


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype("float32")
    y = rng.integers(0, 3, size=(40,))
    return x, y


def _model(kind):
    torchfit.utils.set_random_seed(7)
    net = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3))
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer=FACTORIES[kind](), loss=nn.CrossEntropyLoss())
    return model


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_save_and_load_model_resume_training_identically(kind, tmp_path):
    x, y = _data()
    model = _model(kind)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model.save(tmp_path / "m.pt")
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 10
    for m in (model, loaded):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(_weights(model), _weights(loaded)):
        assert torch.equal(a, b)


class _Interrupt(Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations == self.step:
            raise KeyboardInterrupt("interrupted")


def _train(kind, backup_dir, interrupt_at=None):
    x, y = _data()
    model = _model(kind)
    callbacks = [BackupAndRestore(backup_dir, save_freq=3)]
    if interrupt_at is not None:
        callbacks.append(_Interrupt(interrupt_at))
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=callbacks)
    return model


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_backup_and_restore_resumes_bitwise(kind, tmp_path):
    reference = _train(kind, tmp_path / "reference")
    with pytest.raises(KeyboardInterrupt):
        _train(kind, tmp_path / "backup", interrupt_at=8)
    resumed = _train(kind, tmp_path / "backup")
    assert resumed.optimizer.iterations == reference.optimizer.iterations == 15
    for a, b in zip(_weights(reference), _weights(resumed)):
        assert torch.equal(a, b)
    if kind == "loss_scale":
        assert resumed.optimizer.dynamic_scale == reference.optimizer.dynamic_scale == 2.0**20


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_learns_in_a_plain_torch_loop(kind):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.5], [-1.0], [0.5], [2.0]])
    optimizer = FACTORIES[kind]()
    optimizer.build(net.named_parameters())
    first = None
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        first = loss.item() if first is None else first
        scaled = optimizer.scale_loss(loss)
        scaled.backward()
        optimizer.step()
    assert loss.item() < 0.2 * first
