import pytest

from torchfit.callbacks import Callback


class FakeModel:
    pass


def test_every_hook_exists_and_is_a_no_op():
    callback = Callback()
    for name in ("train", "test", "predict"):
        assert getattr(callback, f"on_{name}_begin")({}) is None
        assert getattr(callback, f"on_{name}_end")({}) is None
        assert getattr(callback, f"on_{name}_batch_begin")(0, {}) is None
        assert getattr(callback, f"on_{name}_batch_end")(0, {}) is None
    assert callback.on_epoch_begin(0) is None
    assert callback.on_epoch_end(0, {}) is None


def test_train_batch_hooks_call_the_aliases():
    calls = []

    class Old(Callback):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch))

    callback = Old()
    callback.on_train_batch_begin(3)
    callback.on_train_batch_end(3, {"loss": 1.0})
    callback.on_test_batch_end(3)
    assert calls == [("begin", 3), ("end", 3)]
    assert callback._overrides("on_train_batch_end")
    assert not callback._overrides("on_test_batch_end")


def test_set_model_and_params():
    callback = Callback()
    model = FakeModel()
    callback.set_model(model)
    callback.set_params({"verbose": 1, "epochs": 2, "steps": 5})
    assert callback.model is model
    assert callback.params == {"verbose": 1, "epochs": 2, "steps": 5}


def test_model_unwraps_distributed_data_parallel():
    from torch.nn.parallel import DistributedDataParallel

    inner = FakeModel()
    # A DDP wrapper without a process group: never initialised, holding `module` only.
    wrapper = DistributedDataParallel.__new__(DistributedDataParallel)
    object.__setattr__(wrapper, "module", inner)
    callback = Callback()
    callback.set_model(wrapper)
    assert callback.model is inner


def test_overrides_sees_only_real_overrides():
    class OnlyEpochs(Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    assert not any(
        OnlyEpochs()._overrides(h) for h in ("on_train_batch_end", "on_test_batch_begin")
    )


def test_check_batch_frequency_takes_its_words_or_a_positive_batch_count():
    from torchfit.callbacks.callback import check_batch_frequency

    check_batch_frequency("save_freq", "epoch")
    check_batch_frequency("save_freq", 3)
    check_batch_frequency("update_freq", "batch", words=("epoch", "batch"))
    for bad in (0, -1, True, 2.0, "batch"):
        with pytest.raises(ValueError, match=r"`save_freq` must be 'epoch' or a positive integer"):
            check_batch_frequency("save_freq", bad)


def _batch_frequency_callback(name, folder, frequency):
    """The callback taking the batch frequency `name` (`backup` for BackupAndRestore's)."""
    from torchfit.callbacks import BackupAndRestore, ModelCheckpoint, TensorBoard

    if name == "save_freq":
        return ModelCheckpoint(
            str(folder / "e{epoch}-b{batch}.pt"), save_freq=frequency, save_weights_only=True
        )
    if name == "backup":
        return BackupAndRestore(folder / "backup", save_freq=frequency)
    return TensorBoard(str(folder / "logs"), update_freq=frequency, write_graph=False)


def test_a_frequency_of_one_batch_acts_after_every_batch(tmp_path, bias_fit):
    bias_fit([_batch_frequency_callback("save_freq", tmp_path, 1)], epochs=2)  # 2 batches each
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [
        "e1-b1.pt",
        "e1-b2.pt",
        "e2-b1.pt",
        "e2-b2.pt",
    ]


@pytest.mark.parametrize("name", ["save_freq", "backup", "update_freq"])
def test_callbacks_take_one_batch_and_refuse_zero(tmp_path, name):
    _batch_frequency_callback(name, tmp_path, 1)
    argument = "save_freq" if name == "backup" else name
    with pytest.raises(ValueError, match=rf"`{argument}` must be .*Received: {argument}=0\."):
        _batch_frequency_callback(name, tmp_path, 0)
