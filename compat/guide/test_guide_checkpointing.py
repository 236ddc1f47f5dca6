"""The Keras guide's "Checkpointing models" section, as torchfit twins.

Source: the "Training & evaluation with the built-in methods" guide. The
guide's MNIST MLP becomes the same MLP on the bundled 8x8 digits (no
download); `keras.` becomes `torchfit.`; the guide's code is otherwise kept
as written, comments included.
"""

import os

import numpy as np
import torch
from guide_support import digits_data, get_compiled_model

import torchfit


def test_model_checkpoint_save_best_only_writes_a_file_per_improved_epoch(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    torchfit.utils.set_random_seed(0)
    x_train, y_train = digits_data()

    model = get_compiled_model(64)

    callbacks = [
        torchfit.callbacks.ModelCheckpoint(
            # Path where to save the model
            # The two parameters below mean that we will overwrite
            # the current checkpoint if and only if
            # the `val_loss` score has improved.
            # The saved model name will include the current epoch.
            filepath="mymodel_{epoch}",
            save_best_only=True,  # Only save a model if `val_loss` has improved.
            monitor="val_loss",
            verbose=1,
        )
    ]
    history = model.fit(
        x_train, y_train, epochs=3, batch_size=64, callbacks=callbacks, validation_split=0.2
    )

    val_losses = history.history["val_loss"]
    improved = [
        epoch
        for epoch, value in enumerate(val_losses)
        if value < min(val_losses[:epoch], default=np.inf)
    ]
    assert sorted(os.listdir(tmp_path)) == sorted(f"mymodel_{epoch + 1}" for epoch in improved)
    assert "mymodel_1" in capsys.readouterr().out
    best = torchfit.models.load_model(f"mymodel_{improved[-1] + 1}")
    if improved[-1] == 2:  # the last epoch was best: the file holds the final weights
        for a, b in zip(best.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
    x_val, y_val = x_train[-288:], y_train[-288:]
    np.testing.assert_allclose(
        best.evaluate(x_val, y_val, verbose=0)[0], min(val_losses), rtol=1e-5
    )


def test_make_or_restore_model_works_across_two_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    x_train, y_train = digits_data()
    # Four copies: enough batches (180 of 32) for a checkpoint every 100.
    x_train, y_train = np.concatenate([x_train] * 4), np.concatenate([y_train] * 4)

    # Prepare a directory to store all the checkpoints.
    checkpoint_dir = "./ckpt"
    if not os.path.exists(checkpoint_dir):
        os.makedirs(checkpoint_dir)

    def make_or_restore_model():
        # Either restore the latest model, or create a fresh one
        # if there is no checkpoint available.
        checkpoints = [checkpoint_dir + "/" + name for name in os.listdir(checkpoint_dir)]
        if checkpoints:
            latest_checkpoint = max(checkpoints, key=os.path.getctime)
            print("Restoring from", latest_checkpoint)
            return torchfit.models.load_model(latest_checkpoint)
        print("Creating a new model")
        return get_compiled_model(64)

    def run():
        model = make_or_restore_model()
        callbacks = [
            # This callback saves a SavedModel every 100 batches.
            # We include the training loss in the saved model name.
            torchfit.callbacks.ModelCheckpoint(
                filepath=checkpoint_dir + "/ckpt-loss={loss:.2f}", save_freq=100
            )
        ]
        model.fit(x_train, y_train, epochs=1, callbacks=callbacks)
        return model

    torchfit.utils.set_random_seed(0)
    first = run()
    assert "Creating a new model" in capsys.readouterr().out
    saved = os.listdir(checkpoint_dir)
    assert saved and all(name.startswith("ckpt-loss=") for name in saved)
    assert first.optimizer.iterations == 180

    second = run()
    out = capsys.readouterr().out
    assert "Restoring from ./ckpt/ckpt-loss=" in out
    # The restored model went on from its checkpoint (100 steps), with its
    # optimizer state, and trained one more epoch.
    assert second.optimizer.iterations == 100 + 180
    assert type(second.optimizer).__name__ == "RMSprop"
    assert second.metrics_names == ["loss", "sparse_categorical_accuracy"]
    assert second.history.history["loss"][0] < first.history.history["loss"][0]


def test_ckpt_loss_filename_holds_the_formatted_loss(tmp_path):
    torchfit.utils.set_random_seed(1)
    x_train, y_train = digits_data()
    model = get_compiled_model(64)
    checkpoint_dir = str(tmp_path)
    callbacks = [
        torchfit.callbacks.ModelCheckpoint(
            filepath=checkpoint_dir + "/ckpt-loss={loss:.2f}", save_freq=20
        )
    ]
    model.fit(x_train, y_train, epochs=1, callbacks=callbacks, verbose=0)
    names = sorted(os.listdir(checkpoint_dir))
    assert names and all(name.startswith("ckpt-loss=") for name in names)
    for name in names:
        loss = float(name.split("=")[1])
        assert 0.0 < loss < 3.0
        restored = torchfit.models.load_model(os.path.join(checkpoint_dir, name))
        assert restored.optimizer.iterations in (20, 40)
        assert isinstance(restored.module[-1], torch.nn.Softmax)
