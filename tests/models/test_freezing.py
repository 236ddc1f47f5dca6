"""Freezing as Keras users expect it: `trainable`, through a real fit.

A frozen part keeps its weights and its BatchNorm statistics bit for bit (no
gradient, no update, no weight decay, no moving average), its BatchNorm layers
run in inference mode although fit puts the model in train mode every epoch,
and unfreezing then compiling trains it again. The change takes effect at the
next compile (Keras's rule); `fit` warns once when it was not compiled again.
"""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.utils import set_trainable


class Net(nn.Module):
    """A "pretrained" base (with BatchNorm and Dropout) and a head."""

    def __init__(self, base=None):
        super().__init__()
        self.base = base if base is not None else _base()
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.base(x))


def _base():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.25))


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, (n, 4)).astype("float32")  # far from the BN statistics' start
    return x, rng.normal(size=(n, 1)).astype("float32")


def _model(base=None):
    torch.manual_seed(0)
    return torchfit.Model(Net(base), device="cpu")


def _snapshot(module):
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def _same(before, module):
    after = module.state_dict()
    return all(torch.equal(before[key], after[key]) for key in before)


def _changed(before, module):
    after = module.state_dict()
    return {key for key in before if not torch.equal(before[key], after[key])}


def _optimizer():
    # Every way an optimizer could move a weight without a gradient: decoupled
    # weight decay, and a moving average written into the weights every step.
    return torchfit.optimizers.AdamW(
        learning_rate=0.01, weight_decay=0.1, use_ema=True, ema_overwrite_frequency=1
    )


class _Modes(torchfit.callbacks.Callback):
    """Records the train/eval mode of some modules at every training batch."""

    def __init__(self, **modules):
        super().__init__()
        self.modules = modules
        self.seen = {name: set() for name in modules}

    def on_train_batch_begin(self, batch, logs=None):
        for name, module in self.modules.items():
            self.seen[name].add(module.training)


def _freeze_base(model, how):
    net = model.module
    if how == "set_trainable":
        set_trainable(net.base, False)
    elif how == "attribute":
        net.base.trainable = False  # Keras's spelling on a plain torch module
    else:
        net.base.trainable = False  # a torchfit.Model used as the base


@pytest.mark.parametrize("how", ["set_trainable", "attribute", "torchfit_base"])
def test_a_frozen_base_keeps_its_weights_and_statistics_and_the_head_trains(how):
    base = torchfit.Model(_base(), device="cpu") if how == "torchfit_base" else None
    model = _model(base)
    net = model.module
    x, y = _data()
    model.compile(optimizer=_optimizer(), loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # the base has trained: moments, EMA
    _freeze_base(model, how)
    model.compile(optimizer=_optimizer(), loss="mse")
    base_before, head_before = _snapshot(net.base), _snapshot(net.head)
    bn = net.base.module[1] if how == "torchfit_base" else net.base[1]
    dropout = net.base.module[3] if how == "torchfit_base" else net.base[3]
    modes = _Modes(bn=bn, dropout=dropout)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[modes])
    assert _same(base_before, net.base)  # weights and running statistics, bit for bit
    assert _changed(head_before, net.head) == {"weight", "bias"}
    # BatchNorm in inference mode (Keras's BatchNormalization with trainable=False);
    # other layers keep the training mode (Dropout still drops, as in Keras).
    assert modes.seen == {"bn": {False}, "dropout": {True}}


def test_the_same_optimizer_compiled_again_drops_frozen_weights_no_decay_no_average():
    model = _model()
    net = model.module
    x, y = _data()
    optimizer = _optimizer()
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    set_trainable(net.base, False)
    model.compile(optimizer=optimizer, loss="mse")  # built on all weights at the first compile
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(p) for p in net.head.parameters()}
    before = _snapshot(net.base)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert _same(before, net.base)


def test_unfreezing_and_compiling_again_trains_the_base_and_its_statistics():
    model = _model()
    net = model.module
    x, y = _data()
    set_trainable(net.base, False)
    model.compile(optimizer=_optimizer(), loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    set_trainable(net.base, True)
    model.compile(optimizer=torchfit.optimizers.Adam(1e-5), loss="mse")
    before = _snapshot(net.base)
    modes = _Modes(bn=net.base[1])
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[modes])
    assert _changed(before, net.base) == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    }
    assert modes.seen == {"bn": {True}}


def test_a_change_takes_effect_at_the_next_compile_and_fit_warns_once_before():
    model = _model()
    net = model.module
    x, y = _data()
    set_trainable(net.base, False)
    model.compile(optimizer="sgd", loss="mse")
    set_trainable(net.base, True)  # not compiled again: the optimizer holds the head only
    before = _snapshot(net.base)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    changed = [w for w in caught if "changed since it was compiled" in str(w.message)]
    assert len(changed) == 1 and "next compile" in str(changed[0].message)
    assert _changed(before, net.base) <= {
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    }
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert {"0.weight", "1.weight"} <= _changed(before, net.base)


def test_compiling_the_same_optimizer_again_takes_in_the_unfrozen_weights():
    model = _model()
    net = model.module
    x, y = _data()
    set_trainable(net.base, False)
    model.compile(optimizer="adam", loss="mse")
    set_trainable(net.base, True)
    model.compile(optimizer=model.optimizer, loss="mse")
    before = _snapshot(net.base)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert {"0.weight", "0.bias", "1.weight", "1.bias"} <= _changed(before, net.base)


def test_a_plain_trainable_attribute_takes_effect_at_compile():
    model = _model()
    net = model.module
    net.base.trainable = False
    # The weight lists read the flag at once; requires_grad changes at compile.
    assert all(p.requires_grad for p in net.base.parameters())
    assert len(model.trainable_weights) == 2
    model.compile(optimizer="sgd", loss="mse")
    assert not any(p.requires_grad for p in net.base.parameters())
    net.base.trainable = True
    model.compile(optimizer="sgd", loss="mse")
    assert all(p.requires_grad for p in net.base.parameters())


def test_model_trainable_is_recursive_and_summary_counts_follow():
    model = _model()
    net = model.module
    model(torch.from_numpy(_data(4)[0]))

    def counts():
        lines = []
        model.summary(print_fn=lines.append)
        return [line for text in lines for line in text.splitlines() if "rainable params" in line]

    # Keras's numbers for Dense(4, 8), BatchNormalization(8), Dense(8, 1).
    assert counts() == [" Trainable params: 65 (260.00 B)", " Non-trainable params: 16 (64.00 B)"]
    model.trainable = False
    assert model.trainable is False and net.base.trainable is False
    assert net.base[0].trainable is False  # set on every submodule, as Keras's setter
    assert counts() == [" Trainable params: 0 (0.00 B)", " Non-trainable params: 81 (324.00 B)"]
    assert model.trainable_weights == [] and model.count_params() == 81
    model.trainable = True
    assert counts()[0] == " Trainable params: 65 (260.00 B)"


def test_unfreezing_leaves_weights_frozen_by_hand_frozen():
    model = _model()
    net = model.module
    net.base[0].bias.requires_grad_(False)  # frozen by the user, the torch way
    model.trainable = False
    model.trainable = True
    assert [name for name, p in net.named_parameters() if not p.requires_grad] == ["base.0.bias"]
    x, y = _data()
    model.compile(optimizer="sgd", loss="mse")
    before = net.base[0].bias.detach().clone()
    model.fit(x, y, batch_size=16, verbose=0)
    assert torch.equal(before, net.base[0].bias)


def test_a_frozen_torchfit_base_called_with_training_true_still_normalizes_in_inference():
    base = torchfit.Model(_base(), device="cpu")
    base.trainable = False
    stats = base.module[1].running_mean.clone()
    base(torch.randn(8, 4) + 3.0, training=True)
    assert torch.equal(stats, base.module[1].running_mean)
    assert base.module[1].training is False and base.module[3].training is True


def test_train_on_batch_respects_frozen_parts():
    model = _model()
    net = model.module
    set_trainable(net.base, False)
    model.compile(optimizer=_optimizer(), loss="mse")
    before = _snapshot(net.base)
    x, y = _data(16)
    for _ in range(3):
        model.train_on_batch(x, y)
    assert _same(before, net.base)


def test_trainable_must_be_a_bool():
    model = _model()
    with pytest.raises(TypeError, match=r"`trainable` must be True or False.*str"):
        model.trainable = "no"
    with pytest.raises(TypeError, match=r"`module` must be a torch.nn.Module.*list"):
        set_trainable([nn.Linear(2, 2)], False)
