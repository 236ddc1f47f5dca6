"""Prints the progress bar during fit, evaluate and predict.

Owns when the bar appears: one per epoch with an `Epoch i/N` header (only
when there are several epochs), silence during the validation run inside
`fit`, one bar per `evaluate` and `predict`. The text itself belongs to
`torchfit.utils.progbar`, which also decides when a redraw (and so a read
of the lazy batch logs) happens.
"""

from typing import Optional

from torchfit.callbacks.callback import Callback, Logs
from torchfit.utils.arguments import resolve_verbose
from torchfit.utils.progbar import Progbar, print_msg

__all__ = ["ProgbarLogger"]

_BATCH_END_HOOKS = ("on_train_batch_end", "on_test_batch_end", "on_predict_batch_end")


class ProgbarLogger(Callback):
    """Prints metrics to stdout with Keras 3's progress bar.

    Added by `fit`, `evaluate` and `predict` when `verbose != 0`. With
    `verbose=1` the bar is redrawn at most every 0.05 s (where stdout cannot
    redraw in place, a log file: a line at most every 10 s, and the final
    one); with `verbose=2` one line is printed per epoch:
    `782/782 - 2s - 2ms/step - accuracy: 0.9123 - loss: 0.3123`.

    Example:
    >>> logger = ProgbarLogger()
    >>> logger.set_params({"verbose": 2, "epochs": 1, "steps": 1})
    >>> logger.on_epoch_begin(0)
    >>> logger.on_epoch_end(0, {"loss": 0.25})  # doctest: +ELLIPSIS
    1/1 - 0s - ...s/step - loss: 0.2500
    """

    chief_only = True  # prints the bar: rank 0 alone under torch.distributed

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar: Optional[Progbar] = None
        self.target: Optional[int] = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params: Optional[dict]) -> None:
        super().set_params(params)
        params = params or {}
        self.verbose = resolve_verbose(params.get("verbose", 1))
        self.epochs = params.get("epochs", 1) or 1
        self.target = params.get("steps")

    def _overrides(self, hook: str) -> bool:
        # At verbose 2 batches print nothing: stay out of the step, unless
        # the step count is unknown and must be counted for the epoch line.
        if hook not in _BATCH_END_HOOKS:
            return False
        return self.verbose == 1 or (self.verbose == 2 and self.target is None)

    def on_train_begin(self, logs: Logs = None) -> None:
        # Inside fit, the validation run is silent.
        self._called_in_fit = True

    def on_train_end(self, logs: Logs = None) -> None:
        self._called_in_fit = False

    def on_test_begin(self, logs: Logs = None) -> None:
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            print_msg(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        # The outputs are not metrics: never show them.
        self._update_progbar(batch, None)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._finalize_progbar(logs)

    def on_test_end(self, logs: Logs = None) -> None:
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs: Logs = None) -> None:
        self._finalize_progbar(logs)

    def _reset_progbar(self) -> None:
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self) -> None:
        if self.progbar is None:
            # Every value is stateful (already a running mean), so the bar
            # reads the lazy logs only on the updates it draws.
            self.progbar = Progbar(
                target=self.target,
                verbose=self.verbose,
                unit_name="step",
                stateless_metrics=set(),
            )

    def _update_progbar(self, batch: int, logs: Logs) -> None:
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, logs, finalize=False)

    def _finalize_progbar(self, logs: Logs) -> None:
        self._maybe_init_progbar()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, logs or {}, finalize=True)
