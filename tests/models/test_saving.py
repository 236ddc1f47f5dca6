"""Tests for save_weights/load_weights: plain state_dict files, atomic, safe to load."""

import os

import numpy as np
import pytest
import torch
from torch import nn

import torchfit


def _model(seed=0, hidden=4):
    torch.manual_seed(seed)
    return torchfit.Model(
        nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, 1)), device="cpu"
    )


@pytest.mark.parametrize("name", ["w.weights.h5", "ckpt.keras", "m.pt", "weights"])
def test_save_weights_is_a_plain_state_dict_any_suffix(tmp_path, name):
    model = _model()
    path = tmp_path / name
    model.save_weights(path)
    state = torch.load(path, weights_only=True)
    assert list(state) == list(model.module.state_dict())
    plain = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    plain.load_state_dict(state)
    for a, b in zip(plain.parameters(), model.module.parameters()):
        assert torch.equal(a, b)
    assert os.listdir(tmp_path) == [name]  # no temporary file left behind


def test_load_weights_round_trip(tmp_path):
    source, target = _model(0), _model(1)
    source.save_weights(tmp_path / "w.pt")
    target.load_weights(tmp_path / "w.pt")
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_weights_from_a_whole_model_file(tmp_path):
    source, target = _model(0), _model(1)
    source.compile(optimizer="sgd", loss="mse")
    source.save(tmp_path / "m.keras")
    target.load_weights(tmp_path / "m.keras")
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_overwrite_false(tmp_path):
    model = _model()
    model.save_weights(tmp_path / "w.pt")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save_weights(tmp_path / "w.pt", overwrite=False)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    model = _model()
    model.save_weights(tmp_path / "w.pt")
    before = (tmp_path / "w.pt").read_bytes()

    def failing_save(obj, file):
        file.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        _model(5).save_weights(tmp_path / "w.pt")
    assert (tmp_path / "w.pt").read_bytes() == before
    assert os.listdir(tmp_path) == ["w.pt"]


def test_truncated_file_is_a_clear_error(tmp_path):
    _model().save_weights(tmp_path / "w.pt")
    data = (tmp_path / "w.pt").read_bytes()
    (tmp_path / "w.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        _model().load_weights(tmp_path / "w.pt")


def test_file_of_another_model_is_a_clear_error(tmp_path):
    _model(hidden=6).save_weights(tmp_path / "w.pt")
    with pytest.raises(
        ValueError,
        match=r"do not fit this model.*shape mismatch for 0.weight:"
        r" file \(6, 3\) vs model \(4, 3\)",
    ):
        _model(hidden=4).load_weights(tmp_path / "w.pt")


def test_skip_mismatch_loads_what_fits(tmp_path):
    source = _model(0, hidden=6)
    source.save_weights(tmp_path / "w.pt")
    target = _model(1, hidden=4)
    before = target.module[0].weight.clone()
    with pytest.warns(UserWarning, match="skip_mismatch=True") as caught:
        target.load_weights(tmp_path / "w.pt", skip_mismatch=True)
    assert torch.equal(target.module[0].weight, before)
    assert torch.equal(target.module[2].bias, source.module[2].bias)
    message = str(caught[0].message)
    # Every skipped weight, with both shapes; the one that fit is not named.
    for skipped in (
        "0.weight: file (6, 3) vs model (4, 3)",
        "0.bias: file (6,) vs model (4,)",
        "2.weight: file (1, 6) vs model (1, 4)",
    ):
        assert skipped in message
    assert "2.bias" not in message


def test_skip_mismatch_names_weights_missing_from_the_file_or_unknown_to_the_model(tmp_path):
    state = _model(0).module.state_dict()
    state["extra.weight"] = state.pop("2.bias")
    torch.save(state, tmp_path / "w.pt")
    with pytest.warns(UserWarning, match=r"missing \['2.bias'\]; unexpected \['extra.weight'\]"):
        _model(1).load_weights(tmp_path / "w.pt", skip_mismatch=True)


def test_skip_mismatch_is_silent_when_everything_fits(tmp_path, recwarn):
    _model(0).save_weights(tmp_path / "w.pt")
    _model(1).load_weights(tmp_path / "w.pt", skip_mismatch=True)
    assert not [w for w in recwarn if "skip_mismatch" in str(w.message)]


def test_not_a_state_dict_is_a_clear_error(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        _model().load_weights(tmp_path / "list.pt")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _model().load_weights(tmp_path / "nothing.pt")


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickle_that_would_run_code_is_refused_and_nothing_runs(code_running_file, writer):
    path, marker = code_running_file(lambda evil: {"0.weight": evil}, writer)
    with pytest.raises(ValueError, match="nothing in it was run"):
        _model().load_weights(path)
    assert not marker.exists()
