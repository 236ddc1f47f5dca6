"""Keras's "Transfer learning & fine-tuning" guide, ported to torchfit.

Each test follows one section of the guide, line by line where torch allows:
the three weight lists of a layer, `trainable = False` moving weights to the
non-trainable list, weights of a frozen layer that `fit` leaves alone, the
recursive flag, the typical workflow (a "pretrained" base made here on half the
digits, frozen; a new head trained; then the whole model fine-tuned with a small
learning rate, its BatchNorm layers kept in inference mode by calling the base
with `training=False`) and the same in a custom training loop. The numbers the
guide prints are Keras 3's; where torch's BatchNorm differs (its
`num_batches_tracked` counter) the test says so.
"""

import numpy as np
import torch
from guide_support import digits_data
from torch import nn

import torchfit


def _state(module):
    """A copy of every weight and buffer (BatchNorm statistics included)."""
    return {name: t.detach().clone() for name, t in module.state_dict().items()}


def _unchanged(before, module):
    now = module.state_dict()
    return [name for name, value in before.items() if not torch.equal(value, now[name])] == []


def _moved(before, module, names):
    now = module.state_dict()
    return all(not torch.equal(before[name], now[name]) for name in names)


def test_the_three_weight_lists_of_a_dense_and_a_batchnorm_layer():
    # keras.layers.Dense(3) built on 4 inputs: 2 weights, both trainable.
    layer = torchfit.Model(nn.Linear(4, 3), device="cpu")
    assert (len(layer.weights), len(layer.trainable_weights)) == (2, 2)
    assert len(layer.non_trainable_weights) == 0
    # keras.layers.BatchNormalization(): gamma, beta trainable; the moving mean and
    # variance not. torch's BatchNorm adds its `num_batches_tracked` counter.
    layer = torchfit.Model(nn.BatchNorm1d(4), device="cpu")
    assert len(layer.trainable_weights) == 2
    names = {id(t): n for n, t in layer.module.state_dict(keep_vars=True).items()}
    assert [names[id(t)] for t in layer.non_trainable_weights] == [
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert layer.count_params() == 16  # Keras's count: 4 x (gamma, beta, mean, variance)


def test_setting_trainable_false_moves_all_weights_to_non_trainable():
    layer = torchfit.Model(nn.Linear(3, 3), device="cpu")
    layer.trainable = False  # Freeze the layer
    assert (len(layer.weights), len(layer.trainable_weights)) == (2, 0)
    assert len(layer.non_trainable_weights) == 2
    assert not any(p.requires_grad for p in layer.parameters())


def test_the_weights_of_a_frozen_layer_do_not_change_during_fit():
    # Make a model with 2 layers; freeze the first one (the plain attribute, as in
    # Keras, takes effect at compile).
    layer1, layer2 = nn.Linear(3, 3), nn.Linear(3, 3)
    model = torchfit.Model(nn.Sequential(layer1, nn.ReLU(), layer2, nn.Sigmoid()), device="cpu")
    layer1.trainable = False
    initial_layer1 = [w.detach().clone() for w in layer1.parameters()]
    initial_layer2 = [w.detach().clone() for w in layer2.parameters()]
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.random((2, 3), "float32"), rng.random((2, 3), "float32"), verbose=0)
    for before, after in zip(initial_layer1, layer1.parameters()):
        np.testing.assert_array_equal(before.numpy(), after.detach().numpy())
    assert all(not torch.equal(b, a) for b, a in zip(initial_layer2, layer2.parameters()))


def test_trainable_false_is_recursive():
    inner_model = torchfit.Model(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), device="cpu")
    model = torchfit.Model(nn.Sequential(inner_model, nn.Linear(3, 3)), device="cpu")
    model.trainable = False  # Freeze the outer model
    assert inner_model.trainable is False  # All layers in `model` are now frozen
    assert inner_model.layers[0].trainable is False  # `trainable` is propagated recursively
    assert model.trainable_weights == []


# --------------------------------------------------- the typical workflow


def _base():
    """A small convolutional base with BatchNorm (channels first, 8x8 digits)."""
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
    )
    return torchfit.Model(net, device="cpu")


class Transfer(nn.Module):
    """The guide's `inputs -> base_model(x, training=False) -> pooling -> dropout -> Dense`."""

    def __init__(self, base, num_classes=5, training_false=True):
        super().__init__()
        self.base = base
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)  # Regularize with dropout
        self.head = nn.Linear(16, num_classes)
        self.training_false = training_false

    def forward(self, x):
        # The base model contains BatchNorm layers: keep them in inference mode when
        # the base is unfrozen for fine-tuning, by calling it with `training=False`.
        x = self.base(x, training=False) if self.training_false else self.base(x)
        x = self.pool(x).flatten(1)
        return self.head(self.dropout(x))


def _halves():
    """The digits as images, split into classes 0-4 ("pretraining") and 5-9 (the new task)."""
    x, y = digits_data()
    x = x.reshape(-1, 1, 8, 8)
    old, new = y < 5, y >= 5
    return (x[old], y[old]), (x[new], y[new] - 5)


def _compile(model, learning_rate=1e-3):
    model.compile(
        optimizer=torchfit.optimizers.Adam(learning_rate),
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[torchfit.metrics.SparseCategoricalAccuracy()],
    )


def _pretrained_base(old):
    torchfit.utils.set_random_seed(0)
    base = _base()
    pretrain = torchfit.Model(Transfer(base, training_false=False), device="cpu")
    _compile(pretrain)
    pretrain.fit(*old, batch_size=64, epochs=1, verbose=0)
    return base


def test_the_typical_workflow_freeze_train_a_head_then_fine_tune():
    old, new = _halves()
    base_model = _pretrained_base(old)
    base_model.trainable = False  # Freeze the base_model
    model = torchfit.Model(Transfer(base_model), device="cpu")
    head_params = sum(p.numel() for p in model.module.head.parameters())
    assert sum(p.numel() for p in model.trainable_weights) == head_params

    _compile(model)
    frozen = _state(base_model)
    head = _state(model.module.head)
    history = model.fit(*new, batch_size=64, epochs=3, verbose=0)
    assert _unchanged(frozen, base_model)  # weights and BatchNorm statistics alike
    assert _moved(head, model.module.head, ["weight", "bias"])
    assert history.history["loss"][-1] < history.history["loss"][0]

    # Unfreeze the base model; the change takes effect at the next compile.
    base_model.trainable = True
    _compile(model, learning_rate=1e-5)  # Very low learning rate
    before = _state(base_model)
    model.fit(*new, batch_size=64, epochs=1, verbose=0)
    assert _moved(before, base_model, ["module.0.weight", "module.1.weight", "module.3.weight"])
    # Called with training=False, the BatchNorm layers stayed in inference mode.
    statistics = [n for n in before if "running" in n or "num_batches" in n]
    assert statistics and all(
        torch.equal(before[n], base_model.state_dict()[n]) for n in statistics
    )


def test_batchnorm_in_a_frozen_base_runs_in_inference_mode_even_without_training_false():
    # Keras 3: a BatchNormalization layer with trainable=False runs in inference mode.
    old, new = _halves()
    base_model = _pretrained_base(old)
    base_model.trainable = False
    model = torchfit.Model(Transfer(base_model, training_false=False), device="cpu")
    _compile(model)
    frozen = _state(base_model)
    model.fit(*new, batch_size=64, epochs=1, verbose=0)
    assert _unchanged(frozen, base_model)
    # Unfrozen and compiled again, the statistics follow the new data.
    base_model.trainable = True
    _compile(model, learning_rate=1e-5)
    model.fit(*new, batch_size=64, epochs=1, verbose=0)
    assert _moved(frozen, base_model, ["module.1.running_mean", "module.4.running_var"])


def test_fine_tuning_in_a_custom_training_loop():
    old, new = _halves()
    base_model = _pretrained_base(old)
    base_model.trainable = False
    model = torchfit.Model(Transfer(base_model), device="cpu")
    loss_fn = torchfit.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = torchfit.optimizers.Adam()
    frozen, head = _state(base_model), _state(model.module.head)
    x, y = torch.from_numpy(new[0]), torch.from_numpy(new[1])
    losses = []
    for step in range(10):  # Iterate over the batches of a dataset.
        inputs, targets = x[step * 32 : (step + 1) * 32], y[step * 32 : (step + 1) * 32]
        predictions = model(inputs, training=True)  # Forward pass.
        loss_value = loss_fn(targets, predictions)  # Compute the loss value for this batch.
        model.zero_grad()
        loss_value.backward()  # Get gradients of loss wrt the *trainable* weights.
        gradients = [w.grad for w in model.trainable_weights]
        optimizer.apply(gradients, model.trainable_weights)  # Update the weights.
        losses.append(loss_value.item())
    assert len(model.trainable_weights) == 2  # the head only
    assert _unchanged(frozen, base_model)
    assert _moved(head, model.module.head, ["weight", "bias"])
    assert optimizer.iterations == 10
