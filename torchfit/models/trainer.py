"""The verbs of `torchfit.Model`: fit, evaluate, predict and the *_on_batch calls.

Owns turning the user's arguments into an epoch iterator and a callback list,
with Keras 3's defaults and checks. The loops themselves belong to
`loops.py`; the steps they run belong to `models/model.py`.
"""

import warnings

import torch

from torchfit import distribution as distribution_lib
from torchfit import loops
from torchfit.callbacks import CallbackList
from torchfit.data import get_adapter
from torchfit.data.data_adapter_utils import (
    class_weight_to_sample_weights,
    structure_to_device,
    train_validation_split,
    unpack_x_y_sample_weight,
)
from torchfit.data.epoch_iterator import EpochIterator
from torchfit.logs import pythonify_logs
from torchfit.utils.arguments import check_count, resolve_verbose
from torchfit.utils.modes import run_in_mode

__all__ = ["Trainer"]


def _checked_count(name: str, value, *, minimum: int = 1, allow_none: bool = True):
    """`check_count`, saying "an integer >= N" as the verbs' errors always have."""
    expected = f"an integer >= {minimum}"
    return check_count(name, value, minimum=minimum, allow_none=allow_none, expected=expected)


class _RestartingEpochIterator(EpochIterator):
    """The validation data of a fit: every run starts from the first batch.

    Keras resets the validation iterator before each run, so with
    `validation_steps` every epoch is scored on the same batches. A one-pass
    generator cannot restart and keeps being drawn from.
    """

    def enumerate_epoch(self):
        try:
            yield from super().enumerate_epoch()
        finally:
            if self.adapter.restartable:
                self.close()


def _as_list_if_tuple(outputs):
    """Several outputs come back as a list of arrays (a dict stays a dict), as in Keras."""
    if type(outputs) is tuple:
        return list(outputs)
    return outputs


class Trainer:
    """Keras 3's training verbs, mixed into `torchfit.Model`."""

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
    ):
        """Trains the model for `epochs` epochs; returns the `History`.

        Args:
            x: Inputs: arrays, tensors, pandas objects, lists/dicts of them, a
                torch `Dataset`, a `DataLoader`, a dataset of dict rows (a
                `datasets.Dataset`: `x` from the columns named after forward's
                parameters, `y` from `labels` or `label`), a generator or
                iterable of batches, or a `torchfit.utils.Sequence`.
            y: Targets, when `x` is arrays. Defaults to `None`.
            batch_size: Samples per step for arrays and Datasets. Defaults to 32.
            epochs: The index of the last epoch (see `initial_epoch`). Defaults to 1.
            verbose: 0 (silent), 1 (progress bar), 2 (a line per epoch) or
                `"auto"` (1 on a terminal, else 2). Defaults to `"auto"`.
            callbacks: A list of `torchfit.callbacks.Callback`.
            validation_split: Fraction of the arrays (or of the rows of a dataset
                of dict rows), taken from the end before shuffling, held out for
                validation. Defaults to 0.
            validation_data: `(x_val, y_val)`, `(x_val, y_val, sample_weight)`
                (a list too, as in Keras) or any data `x` accepts. Overrides
                `validation_split`.
            shuffle: Reshuffle array data before each epoch (`"batch"`
                shuffles within batch-sized chunks). Defaults to `True`.
            class_weight: `{class_index: weight}` for a single-output model.
            sample_weight: Per-sample (or per-timestep) loss weights.
            initial_epoch: The epoch to start from (0-based); one at or past
                `epochs` trains nothing, with a warning. Defaults to 0.
            steps_per_epoch: Steps per epoch. A finite iterable keeps being
                drawn from across epochs; an endless generator needs this.
            validation_steps: Steps of each validation run.
            validation_batch_size: Batch size of validation arrays.
                Defaults to `batch_size`.
            validation_freq: Validate every N epochs, or at the listed epochs
                (counted from 1). Defaults to 1.

        Returns:
            The `History` callback; `history.history` maps log keys to lists.
        """
        self._assert_compiled("fit")
        epochs = _checked_count("epochs", epochs, minimum=0, allow_none=False)
        initial_epoch = _checked_count("initial_epoch", initial_epoch, minimum=0, allow_none=False)
        steps_per_epoch = _checked_count("steps_per_epoch", steps_per_epoch)
        validation_steps = _checked_count("validation_steps", validation_steps)
        verbose = resolve_verbose(verbose)
        self._warn_if_trainable_changed()
        self._warn_if_nothing_to_train(epochs, initial_epoch)
        self._place()
        self._attach_distribution()
        if validation_split and validation_data is None:
            (x, y, sample_weight), validation_data = train_validation_split(
                (x, y, sample_weight), validation_split=validation_split
            )
        train = EpochIterator(
            self._distribute_data(
                get_adapter(
                    x,
                    y,
                    sample_weight,
                    batch_size=batch_size,
                    steps=steps_per_epoch,
                    shuffle=shuffle,
                    class_weight=class_weight,
                    device=self.device,
                    purpose="fit",
                    forward_signature=self.forward_signature,
                ),
                "fit",
            ),
            steps_per_epoch=steps_per_epoch,
        )
        validation = None
        if validation_data is not None:
            validation = loops.Validation(
                self._evaluation_iterator(
                    validation_data, validation_batch_size, validation_steps, batch_size
                ),
                validation_freq,
            )
        callbacks = self._callback_list(
            callbacks, verbose=verbose, epochs=epochs, steps=train.num_batches
        )
        return loops.fit_loop(
            self,
            train,
            callbacks,
            epochs=epochs,
            initial_epoch=initial_epoch,
            validation=validation,
        )

    def _warn_if_nothing_to_train(self, epochs: int, initial_epoch: int) -> None:
        if initial_epoch and initial_epoch >= epochs:
            warnings.warn(
                f"fit(epochs={epochs}, initial_epoch={initial_epoch}) trains nothing: `epochs`"
                " is the index of the epoch to stop at, not a number of epochs to add (as in"
                f" Keras). To train N more epochs, pass epochs={initial_epoch} + N.",
                stacklevel=3,
            )
        if not self._has_trainable_weights:
            warnings.warn(
                "The model has no trainable weights: fit() will compute the losses and"
                " metrics but change no weight. Unfreeze parameters (requires_grad=True)"
                " and compile() again to train them.",
                stacklevel=3,
            )

    def _evaluation_iterator(self, data, batch_size, steps, fit_batch_size) -> EpochIterator:
        if isinstance(data, (tuple, list)):
            if not 1 <= len(data) <= 3:
                raise ValueError(
                    "`validation_data` must be `(x_val, y_val)` or `(x_val, y_val,"
                    f" sample_weight)`. Received: a {type(data).__name__} of length {len(data)}."
                )
            # Keras reads a list as (x_val, y_val[, sample_weight]) too.
            data = tuple(data)
            x, y, sample_weight = unpack_x_y_sample_weight(data)
        else:
            x, y, sample_weight = data, None, None
        # fit's `batch_size` batches validation arrays (as in Keras); validation data that
        # makes its own batches was not given it, so it does not warn that it ignores it.
        adapter = get_adapter(
            x,
            y,
            sample_weight,
            batch_size=batch_size,
            default_batch_size=fit_batch_size,
            steps=steps,
            shuffle=False,
            device=self.device,
            purpose="evaluate",
            forward_signature=self.forward_signature,
        )
        return _RestartingEpochIterator(
            self._distribute_data(adapter, "evaluate"), steps_per_epoch=steps
        )

    def _attach_distribution(self) -> None:
        """Under torchrun, runs the model across the processes (DDP, FSDP2) from now on."""
        distribution = distribution_lib.attach(self)
        if distribution is not self.distribution:
            self.use_distribution(distribution)

    def _distribute_data(self, adapter, purpose: str):
        """This process's share of the data (all of it in a single process)."""
        return self.distribution.shard(adapter, purpose)

    def _callback_list(self, callbacks, *, verbose: int, epochs: int, steps) -> CallbackList:
        if isinstance(callbacks, CallbackList):
            return callbacks
        return CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            model=self,
            verbose=verbose,
            epochs=epochs,
            steps=steps,
        )

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        steps=None,
        callbacks=None,
        return_dict=False,
        **kwargs,
    ):
        """Returns the loss and metrics on the data (scalar, list or dict).

        Args:
            x, y, batch_size, sample_weight: As in `fit`.
            verbose: 0, 1, 2 or `"auto"`. Defaults to `"auto"`.
            steps: Steps to run; defaults to the whole data.
            callbacks: A list of callbacks.
            return_dict: Return `{name: value}` rather than a list.

        Returns:
            A scalar when there is one value, else a list in `metrics_names`
            order (keys a custom `test_step` adds come last, sorted), or a
            dict with `return_dict=True`.

        Runs in eval mode and puts the mode back as found; called from a
        callback in the middle of `fit`, it leaves the epoch's training
        metrics as they were.
        """
        if kwargs:
            raise TypeError(f"evaluate() got unexpected keyword arguments: {sorted(kwargs)}.")
        self._assert_compiled("evaluate")
        steps = _checked_count("steps", steps)
        verbose = resolve_verbose(verbose)
        self._place()
        self._attach_distribution()
        adapter = get_adapter(
            x,
            y,
            sample_weight,
            batch_size=batch_size,
            steps=steps,
            shuffle=False,
            device=self.device,
            purpose="evaluate",
            forward_signature=self.forward_signature,
        )
        adapter = self._distribute_data(adapter, "evaluate")
        iterator = EpochIterator(adapter, steps_per_epoch=steps)
        callbacks = CallbackList(
            callbacks,
            add_progbar=verbose != 0,
            model=self,
            verbose=verbose,
            epochs=1,
            steps=iterator.num_batches,
        )
        with self._epoch_metrics_kept():
            logs = loops.evaluate_loop(self, iterator, callbacks)
        if return_dict:
            return logs
        return self._flatten_metrics_in_order(logs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Returns the model's outputs as NumPy arrays (a list/dict for several outputs).

        Args:
            x: Inputs, any kind `fit` accepts (targets in batches are ignored).
            batch_size: Defaults to 32.
            verbose: 0, 1, 2 or `"auto"`. Defaults to `"auto"`.
            steps: Steps to run; defaults to the whole data.
            callbacks: A list of callbacks; `on_predict_batch_end` receives
                `{"outputs": ...}`.
        """
        steps = _checked_count("steps", steps)
        verbose = resolve_verbose(verbose)
        self._place()
        self._attach_distribution()
        adapter = get_adapter(
            x,
            batch_size=batch_size,
            steps=steps,
            shuffle=False,
            device=self.device,
            purpose="predict",
            forward_signature=self.forward_signature,
        )
        adapter = self._distribute_data(adapter, "predict")
        iterator = EpochIterator(adapter, steps_per_epoch=steps)
        callbacks = CallbackList(
            callbacks,
            add_progbar=verbose != 0,
            model=self,
            verbose=verbose,
            epochs=1,
            steps=iterator.num_batches,
        )
        outputs = loops.predict_loop(self, iterator, callbacks)
        outputs = self.distribution.gather_predictions(outputs, adapter)
        return _as_list_if_tuple(outputs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """Runs one training step on one batch; metrics are reset first, as in Keras 3."""
        self._assert_compiled("train_on_batch")
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError(
                    "`sample_weight` and `class_weight` cannot be given together."
                    " Fold the class weights into `sample_weight`."
                )
            sample_weight = class_weight_to_sample_weights(y, class_weight)
        self._warn_if_trainable_changed()
        if not self._has_trainable_weights:
            warnings.warn(
                "The model has no trainable weights: train_on_batch() changes none.", stacklevel=2
            )
        self._place()
        batch = self._single_batch(x, y, sample_weight)
        self.reset_metrics()
        with run_in_mode(self, True):
            logs = self.train_step(batch)
        return self._batch_result(logs, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Evaluates one batch in eval mode (the mode is put back as found);
        metrics are reset first, as in Keras 3."""
        self._assert_compiled("test_on_batch")
        self._place()
        batch = self._single_batch(x, y, sample_weight)
        with self._epoch_metrics_kept(), run_in_mode(self, False), torch.no_grad():
            self.reset_metrics()
            logs = self.test_step(batch)
            return self._batch_result(logs, return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for one batch, as NumPy, computed in eval mode."""
        self._place()
        with run_in_mode(self, False), torch.no_grad():
            outputs = self.predict_step(self._single_batch(x, None, None))
        return _as_list_if_tuple(loops.concatenate_outputs([outputs]))

    def _single_batch(self, x, y, sample_weight) -> tuple:
        batch = structure_to_device((x, y, sample_weight), self.device)
        x, y, sample_weight = batch
        if sample_weight is not None:
            return (x, y, sample_weight)
        return (x,) if y is None else (x, y)

    def _batch_result(self, logs, return_dict: bool):
        logs = pythonify_logs(loops.logs_at_epoch_end(self, logs))
        if return_dict:
            return logs
        return self._flatten_metrics_in_order(logs)

    def _flatten_metrics_in_order(self, logs: dict):
        """A list of the logs in `metrics_names` order, other keys sorted after;
        a single value alone."""
        names = self.metrics_names
        compiled = self._compile_metrics
        if compiled is not None and compiled.outputs is not None and compiled.outputs.count > 1:
            # Keras 3 lists prefixed per-output metrics after the losses, sorted.
            prefixed = set(compiled.log_names)
            names = [name for name in names if name not in prefixed]
        results = [logs[name] for name in names if name in logs]
        results += [logs[key] for key in sorted(logs) if key not in names]
        return results[0] if len(results) == 1 else results
