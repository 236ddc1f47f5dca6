"""The `trainable` flag on plain torch modules: which parts are frozen, what is counted.

What freezing does to training (weights, statistics, optimizer) is tested through
a real fit in `tests/models/test_freezing.py`.
"""

import copy

import torch
from torch import nn

from torchfit.utils import trainable


def _net():
    return nn.Sequential(
        nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)),
        nn.Linear(3, 1),
    )


def test_a_module_is_frozen_when_it_or_any_module_above_it_says_so():
    net = _net()
    net[0].trainable = False  # a plain attribute, set on one module only
    frozen = {id(m) for m in trainable.frozen_modules(net)}
    assert frozen == {id(net[0]), id(net[0][0]), id(net[0][1])}
    net[0][0].trainable = True  # the frozen parent still wins, as in Keras
    assert id(net[0][0]) in {id(m) for m in trainable.frozen_modules(net)}
    kept = {id(p) for p in trainable.trainable_parameters(net)}
    names = [n for n, p in net.named_parameters() if id(p) in kept]
    assert names == ["1.weight", "1.bias"]


def test_set_trainable_records_what_it_froze_and_survives_a_deep_copy():
    net = _net()
    trainable.set_trainable(net, False)
    clone = copy.deepcopy(net)
    trainable.set_trainable(clone, True)
    assert all(p.requires_grad for p in clone.parameters())
    assert not any(p.requires_grad for p in net.parameters())


def test_apply_trainable_follows_plain_attributes_both_ways():
    net = _net()
    net[0].trainable = False
    trainable.apply_trainable(net)
    assert [p.requires_grad for p in net.parameters()] == [False] * 4 + [True] * 2
    net[0].trainable = True
    trainable.apply_trainable(net)
    assert all(p.requires_grad for p in net.parameters())


def test_frozen_batchnorm_stays_in_inference_mode_when_the_tree_goes_to_train():
    net = _net()
    net[0].trainable = False
    net.train()
    trainable.keep_frozen_norms_in_inference(net)
    assert (net[0][1].training, net[0][0].training, net[1].training) == (False, True, True)


def test_weight_counts_are_keras_counts():
    net = _net()  # Linear(2, 3): 9, BatchNorm1d(3): 6 trainable + 6 statistics, Linear(3, 1): 4
    assert trainable.weight_counts(net) == (19, 6)
    trainable.set_trainable(net[0], False)
    assert trainable.weight_counts(net) == (4, 21)
    tied = nn.Linear(2, 2)
    shared = nn.Sequential(tied, tied)  # a tied weight counts once
    assert trainable.weight_counts(shared) == (6, 0)


def test_set_trainable_clears_the_frozen_weights_last_gradient():
    layer = nn.Linear(2, 1)
    layer(torch.ones(1, 2)).sum().backward()
    trainable.set_trainable(layer, False)
    assert layer.weight.grad is None and layer.bias.grad is None
