from torchfit.callbacks import CallbackList, History


class FakeModel:
    history = None


def test_records_every_epoch_and_sets_model_history():
    model = FakeModel()
    history = History()
    callbacks = CallbackList([history], model=model, verbose=0, epochs=2, steps=1)
    callbacks.on_train_begin()
    callbacks.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.6})
    callbacks.on_epoch_end(1, {"loss": 0.25, "val_loss": 0.5})
    assert history.history == {"loss": [0.5, 0.25], "val_loss": [0.6, 0.5]}
    assert history.epoch == [0, 1]
    assert history.params == {"verbose": 0, "epochs": 2, "steps": 1}
    assert model.history is history


def test_reused_history_keeps_appending_but_restarts_epochs():
    history = History()
    history.set_model(FakeModel())
    for _ in range(2):
        history.on_train_begin()
        history.on_epoch_end(0, {"loss": 1.0})
    assert history.history == {"loss": [1.0, 1.0]}
    assert history.epoch == [0]
