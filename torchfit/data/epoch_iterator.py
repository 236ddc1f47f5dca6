"""Turns a DataAdapter into epochs of `(step, batch)` pairs.

Owns steps_per_epoch, carrying a finite iterator across epochs, the "ran
out of data" warning, and handing the compiled target checks to the adapter.
Batching, shuffling and when targets are checked belong to the adapter;
validation and callbacks belong to loops.py.
"""

import warnings
from collections.abc import Iterator
from typing import Optional

from torchfit.data.adapter import DataAdapter
from torchfit.utils.arguments import check_count

_NOT_PEEKED = object()


class EpochIterator:
    """Draws the batches of each epoch from an adapter.

    Without `steps_per_epoch`, an epoch is one full pass over the data (the
    adapter's `num_batches` batches, or until an unknown-size source ends).
    With it, each epoch takes `steps_per_epoch` batches and the next epoch
    continues where the last one stopped; a new pass starts only when the
    current one is used up, as in Keras.

    Args:
        adapter: A `DataAdapter`.
        steps_per_epoch: Batches per epoch, or `None` for one full pass.

    Attributes:
        exhausted: True once a one-pass source (a generator object) has
            nothing left. The training loop should stop after this epoch
            (calling `warn_ran_out()` if epochs remain).

    Example:
        >>> import torch
        >>> from torchfit.data import get_adapter
        >>> it = EpochIterator(get_adapter(torch.zeros(10, 2), batch_size=4))
        >>> [batch[0].shape[0] for step, batch in it.enumerate_epoch()]
        [4, 4, 2]
    """

    def __init__(self, adapter: DataAdapter, steps_per_epoch: Optional[int] = None):
        self.adapter = adapter
        self.steps_per_epoch = check_count("steps_per_epoch", steps_per_epoch)
        self.exhausted = False
        self._iterator = None
        self._steps_seen = 0  # batches drawn from the current pass
        self._counted_batches = None  # size of an unknown-size source, once seen
        self._peeked = _NOT_PEEKED

    @property
    def num_batches(self) -> Optional[int]:
        """Batches per epoch: steps_per_epoch, the adapter's count, or the
        count seen in the first full pass; `None` while unknown."""
        return self.steps_per_epoch or self.adapter.num_batches or self._counted_batches

    def check_targets(self, *compiled) -> None:
        """Has the adapter check its host targets against the compiled loss and metrics.

        Called by the loops before the first step of each epoch, when the
        compiled objects are built; the adapter checks each array once.

        Args:
            *compiled: Objects with `check_targets(y, where)` (a `CompileLoss`,
                a `CompileMetrics`), or `None`.
        """
        checks = [item.check_targets for item in compiled if item is not None]
        if not checks:
            return

        def check(y, where: str) -> None:
            for each in checks:
                each(y, where)

        self.adapter.check_targets(check)

    def enumerate_epoch(self) -> Iterator[tuple]:
        """Yields `(step, batch)` for one epoch, `step` counting from 0.

        Calls the adapter's `on_epoch_begin` before and `on_epoch_end` after
        (also when the caller stops early).
        """
        if self.exhausted:
            self.warn_ran_out()
            return
        self.adapter.on_epoch_begin()
        try:
            yield from self._epoch_steps()
        finally:
            if self.steps_per_epoch is None:
                self.close()  # stopped early or not, the next epoch is a new pass
            self.adapter.on_epoch_end()

    def _epoch_steps(self) -> Iterator[tuple]:
        known = self.adapter.num_batches
        limit = self.steps_per_epoch or known
        if self._iterator is None:
            self._start_pass()
        step = 0
        while limit is None or step < limit:
            if self.steps_per_epoch and known is not None and self._steps_seen >= known:
                # A pass of known size is used up mid-epoch: end the epoch
                # short, as Keras does, and start a new pass next epoch.
                self._iterator = None
                self._warn_short(step, limit)
                break
            batch = self._next_batch()
            if batch is _NOT_PEEKED:
                if self._should_restart(step):
                    self._start_pass()
                    continue
                if limit is not None:
                    self._warn_short(step, limit)
                break
            yield step, batch
            step += 1
        self._finish_epoch(known)

    def _start_pass(self) -> None:
        self._iterator = iter(self.adapter.get_iterator())
        self._steps_seen = 0

    def _next_batch(self):
        """The next batch, or `_NOT_PEEKED` when the pass has ended."""
        if self._peeked is not _NOT_PEEKED:
            batch, self._peeked = self._peeked, _NOT_PEEKED
        else:
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._end_of_pass()
                return _NOT_PEEKED
        self._steps_seen += 1
        return batch

    def _end_of_pass(self) -> None:
        self._iterator = None
        self._counted_batches = self._counted_batches or self._steps_seen or None
        if not self.adapter.restartable:
            self.exhausted = True

    def _should_restart(self, step: int) -> bool:
        # The previous epoch ended exactly at the end of an unknown-size pass:
        # start the next pass rather than report an empty epoch.
        # (_steps_seen > 0: the pass that just ended was not itself empty.)
        return (
            step == 0
            and self.steps_per_epoch is not None
            and self.adapter.restartable
            and self._steps_seen > 0
        )

    def _finish_epoch(self, known: Optional[int]) -> None:
        if self._iterator is None:
            return
        if self.steps_per_epoch is None or (known is not None and self._steps_seen >= known):
            self.close()  # a full pass: the next epoch starts a new one
        elif not self.adapter.restartable:
            # Look one batch ahead so the loop learns now, not in an empty
            # next epoch, that a generator is used up.
            try:
                self._peeked = next(self._iterator)
            except StopIteration:
                self._end_of_pass()

    def close(self) -> None:
        """Drops the current pass (stopping any worker pool it holds)."""
        iterator, self._iterator = self._iterator, None
        self._peeked = _NOT_PEEKED
        close = getattr(iterator, "close", None)
        if close is not None:
            close()

    def _warn_short(self, step: int, limit: int) -> None:
        if self.exhausted:
            self.warn_ran_out()
            return
        warnings.warn(
            f"Your input ran out of data after {step} of {limit} steps in this epoch;"
            " the epoch ends early and the next one starts a new pass over the data."
            " Make sure `steps_per_epoch` is at most the number of batches"
            f" ({self.adapter.num_batches or self._counted_batches}).",
            stacklevel=4,
        )

    def warn_ran_out(self) -> None:
        """Warns that a one-pass source is used up and training is interrupted."""
        warnings.warn(
            "Your input ran out of data; interrupting training. Make sure that"
            " your dataset or generator can generate at least"
            " `steps_per_epoch * epochs` batches. A generator object can be read"
            " only once: use an endless generator with `steps_per_epoch`, or a"
            " `Sequence`/`Dataset`, which restarts each epoch.",
            stacklevel=3,
        )
