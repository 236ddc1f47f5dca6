from torchfit.callbacks import CallbackList, LambdaCallback


def test_given_functions_are_called_with_keras_arguments():
    calls = []
    callback = LambdaCallback(
        on_train_begin=lambda logs: calls.append(("train_begin", logs)),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, logs)),
        on_train_batch_end=lambda batch, logs: calls.append(("batch_end", batch, dict(logs))),
        on_test_end=lambda logs: calls.append(("test_end", logs)),
    )
    callbacks = CallbackList([callback])
    callbacks.on_train_begin()
    callbacks.on_train_batch_end(0, {"loss": 1.0})
    callbacks.on_epoch_end(0, {"loss": 1.0})
    callbacks.on_test_end({"loss": 2.0})
    assert calls == [
        ("train_begin", {}),
        ("batch_end", 0, {"loss": 1.0}),
        ("epoch_end", 0, {"loss": 1.0}),
        ("test_end", {"loss": 2.0}),
    ]


def test_only_given_batch_hooks_are_dispatched():
    callbacks = CallbackList([LambdaCallback(on_epoch_end=lambda epoch, logs: None)])
    assert not callbacks.needs_batch_logs


def test_on_batch_end_alias_and_extra_attributes():
    seen = []
    callback = LambdaCallback(on_batch_end=lambda batch, logs: seen.append(batch), note="hello")
    CallbackList([callback]).on_train_batch_end(5, {})
    assert seen == [5] and callback.note == "hello"
