"""How a call reaches forward: input routing, dtype casts, autocast, compile."""

import warnings

import numpy as np
import pytest
import torch
import typing_extensions

import torchfit
from torchfit.models.forward import (
    ForwardSignature,
    autocast,
    cast_floats,
    default_device,
    describe_forward_error,
    make_jit_forward,
    route_inputs,
)


def two_inputs(a, b, training=False):
    return a, b


def one_input(x):
    return x


def test_signature_reads_names_and_training():
    signature = ForwardSignature(two_inputs)
    assert signature.names == ["a", "b"]
    assert signature.num_positional == 2
    assert signature.accepts_training
    assert not ForwardSignature(one_input).accepts_training


def test_a_list_goes_to_positional_parameters_when_forward_takes_several():
    a, b = torch.zeros(1), torch.ones(1)
    args, kwargs = route_inputs(ForwardSignature(two_inputs), ([a, b],), {"training": True})
    assert args == (a, b) and kwargs == {"training": True}


def test_a_list_stays_one_input_for_a_single_parameter_forward():
    xs = [torch.zeros(1), torch.ones(1)]
    args, kwargs = route_inputs(ForwardSignature(one_input), (xs,), {"training": True})
    assert args == (xs,) and kwargs == {}  # training dropped: forward does not take it


def test_a_dict_goes_to_keyword_parameters():
    a, b = torch.zeros(1), torch.ones(1)
    args, kwargs = route_inputs(ForwardSignature(two_inputs), ({"b": b, "a": a},), {})
    assert args == () and kwargs == {"a": a, "b": b}


def test_an_unknown_dict_key_names_the_parameters():
    with pytest.raises(ValueError, match=r"\['c'\].*accepts: \['a', 'b'\]"):
        route_inputs(ForwardSignature(two_inputs), ({"a": 1, "c": 2},), {})


def test_cast_floats_casts_only_floating_tensors():
    x = {"f": torch.zeros(2), "i": torch.zeros(2, dtype=torch.int64), "n": 3}
    cast = cast_floats(x, torch.float64)
    assert cast["f"].dtype == torch.float64
    assert cast["i"].dtype == torch.int64 and cast["n"] == 3


def test_autocast_without_dtype_is_a_no_op_and_with_one_casts_matmuls():
    with autocast(torch.device("cpu"), None):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_default_device_is_cpu_without_accelerators():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        pytest.skip("this machine has MPS")
    assert default_device() == torch.device("cpu")


def test_make_jit_forward_warns_once_and_returns_none_when_compile_is_unavailable(monkeypatch):
    def unavailable(fn, *args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", unavailable)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        assert make_jit_forward(one_input) is None
    assert [str(r.message) for r in records if "jit_compile" in str(r.message)] == [
        "jit_compile=True: torch.compile is unavailable (RuntimeError: no compiler here)."
        " Running the model eagerly instead."
    ]


def test_describe_forward_error_keeps_the_type_and_names_every_input():
    err = RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x2 and 3x1)")
    described = describe_forward_error(
        err,
        (torch.ones(4, 2, dtype=torch.int64), [torch.ones(4)]),
        {"mask": torch.ones(4, dtype=torch.bool), "training": True},
        ["a", "b", "mask"],
        torch.float32,
    )
    assert type(described) is RuntimeError
    message = str(described)
    assert message.startswith("mat1 and mat2 shapes cannot be multiplied (4x2 and 3x1)")
    assert (
        "forward(a, b, mask) received (positional inputs in this order): input 0: int64 (4, 2);"
        " input 1: [float32 (4,)]; input `mask`: bool (4,)."
    ) in message
    assert "Input 0 has dtype int64 while the model's weights are float32" in message
    assert "Input `mask` has dtype bool" in message

    class NeedsTwo(Exception):
        def __init__(self, a, b):
            super().__init__(a, b)

    assert describe_forward_error(NeedsTwo(1, 2), (), {}, [], None) is None


# ------------------------------------------- training= and keys, by the real signature
class _Typed(typing_extensions.TypedDict, total=False):
    output_hidden_states: bool


def typed_kwargs(input_ids, attention_mask=None, **kwargs: typing_extensions.Unpack[_Typed]):
    return input_ids


def untyped_kwargs(x, **kwargs):
    return x


def test_training_goes_only_to_a_forward_that_names_it():
    # Keras passes `training` only to a `call` that names it; **kwargs does not.
    for forward in (typed_kwargs, untyped_kwargs, one_input):
        assert not ForwardSignature(forward).accepts_training
        _, kwargs = route_inputs(ForwardSignature(forward), (1,), {"training": True})
        assert kwargs == {}
    assert ForwardSignature(two_inputs).accepts_training


def test_a_typed_kwargs_adds_its_keys_and_a_typo_names_every_accepted_key():
    signature = ForwardSignature(typed_kwargs)
    assert signature.keyword_keys == ["output_hidden_states"] and not signature.any_keyword
    args, kwargs = route_inputs(signature, ({"input_ids": 1, "output_hidden_states": True},), {})
    assert kwargs == {"input_ids": 1, "output_hidden_states": True}
    with pytest.raises(
        ValueError,
        match=r"keys \['attention_masks'\] that are not parameters of forward\(\)\."
        r" forward\(\) accepts: \['input_ids', 'attention_mask'\], and through its typed"
        r" \*\*kwargs: \['output_hidden_states'\]",
    ):
        route_inputs(signature, ({"input_ids": 1, "attention_masks": 2},), {})
    # An untyped **kwargs takes any key: nothing to check against.
    assert route_inputs(ForwardSignature(untyped_kwargs), ({"x": 1, "y": 2},), {})[1] == {
        "x": 1,
        "y": 2,
    }


def test_a_compiled_module_is_read_through_its_wrapper():
    class Net(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    compiled = torch.compile(Net(), backend="eager")
    signature = ForwardSignature(compiled)
    assert signature.names == ["a", "b"] and not signature.accepts_training
    with pytest.raises(ValueError, match=r"\['c'\].*accepts: \['a', 'b'\]"):
        route_inputs(signature, ({"a": 1, "c": 2},), {})


def test_a_compiled_module_trains_in_a_model_without_training_reaching_forward():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 2))
    model = torchfit.Model(torch.compile(net, backend="eager"), device="cpu")
    model.compile("sgd", "mse")
    before = net[0].weight.detach().clone()
    # Was: "Sequential.forward() got an unexpected keyword argument 'training'".
    model.fit(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"), verbose=0)
    assert not torch.equal(before, net[0].weight)
