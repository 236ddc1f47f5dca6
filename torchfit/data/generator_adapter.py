"""Feeds Python generators and other iterables of ready-made batches.

Owns the difference between a generator object (one pass ever) and an
iterable such as a list of batches (a new pass each epoch), and converting
each yielded batch (NumPy to tensors, floats to float32, onto the device).
When a one-pass source runs dry is the epoch iterator's business.
"""

from collections.abc import Iterator
from typing import Any, Optional

from torchfit.data.adapter import DataAdapter
from torchfit.data.batch_converter import BatchConverter


class GeneratorDataAdapter(DataAdapter):
    """Adapts a generator or iterable that yields whole batches.

    A batch is `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`; a list is read
    as a tuple and a dict alone is `x` (Keras's rule).

    Args:
        data: A generator object, consumed once (`restartable` is False), or
            any other iterable, iterated again for each epoch.
        class_weight: `{class_index: weight}` applied per batch. Defaults to `None`.
        device: Where batches are delivered. Defaults to `None`.
    """

    def __init__(self, data: Any, *, class_weight=None, device=None, restartable=None):
        self._data = data
        if restartable is None:
            # An iterator (generator, map, ...) is used up after one pass.
            restartable = not isinstance(data, Iterator)
        self.restartable = restartable
        self._source = "iterable" if restartable else "generator"
        self._convert = BatchConverter(device, True, class_weight, self._source)
        self._passes = 0
        self._num_batches = None
        try:
            self._num_batches = len(data) if restartable else None
        except TypeError:
            pass

    def get_iterator(self) -> Iterator[tuple]:
        first_pass = self._passes == 0
        self._passes += 1
        return self._convert_all(iter(self._data), first_pass or self.restartable)

    def _convert_all(self, iterator, check_empty: bool) -> Iterator[tuple]:
        convert = self._convert
        count = 0
        for batch in iterator:
            yield convert(batch, count)
            count += 1
        if count == 0 and check_empty:
            raise ValueError(
                f"The {self._source} passed as `x` yielded no batches."
                " It must yield at least one batch `(x, y)`."
            )

    def check_targets(self, check) -> None:
        self._convert.check_targets(check)

    @property
    def num_batches(self) -> Optional[int]:
        return self._num_batches
