"""Checks the arguments that several verbs and classes share: counts and `verbose`.

Owns what a count is (`epochs`, `steps_per_epoch`, `batch_size`, `save_freq`,
`steps_per_execution`, ...: an integer, NumPy's included, never a bool, at least
some minimum) and what `verbose="auto"` means. Which arguments are counts, and
their minimums, belong to the functions that take them.
"""

from typing import Any, Optional

from torchfit.utils.progbar import is_dynamic_display

__all__ = ["check_count", "is_count", "resolve_verbose"]


def is_count(value: Any, minimum: int = 1) -> bool:
    """Whether `value` is an integer (a Python or NumPy int, not a bool) >= `minimum`.

    Example:
    >>> import numpy as np
    >>> is_count(3), is_count(np.int64(1)), is_count(0), is_count(True), is_count(2.0)
    (True, True, False, False, False)
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        return False
    try:
        return value.__index__() >= minimum
    except TypeError:  # a 0-d float array has __index__, and refuses it
        return False


def check_count(
    name: str,
    value: Any,
    *,
    minimum: int = 1,
    allow_none: bool = True,
    expected: Optional[str] = None,
) -> Optional[int]:
    """Validates an argument that counts something; returns it as a Python int.

    Args:
        name: The argument's name, for the error.
        value: What was passed.
        minimum: The smallest valid count. Defaults to 1.
        allow_none: Whether `None` (not given) is valid; it is returned as is.
            Defaults to `True`.
        expected: What the error says a valid value is. Defaults to "a positive
            integer" (`minimum` 1), else "an integer >= `minimum`".

    Raises:
        ValueError: naming the argument and the value received.

    Example:
    >>> import numpy as np
    >>> check_count("batch_size", np.int64(8)), check_count("steps", None)
    (8, None)
    >>> check_count("epochs", -1, minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: `epochs` must be an integer >= 0. Received: epochs=-1.
    """
    if value is None and allow_none:
        return None
    if not is_count(value, minimum):
        if expected is None:
            expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}.")
    return value.__index__()


def resolve_verbose(verbose: Any) -> int:
    """`verbose` as 0, 1 or 2: `"auto"` is 1 where the bar redraws in place (a terminal,
    Jupyter, PyCharm's console), else 2 (a log file, CI).

    Raises:
        ValueError: For anything but 0, 1, 2 and "auto".

    Example:
    >>> resolve_verbose(0), resolve_verbose(2)
    (0, 2)
    """
    if verbose == "auto":
        return 1 if is_dynamic_display() else 2
    if isinstance(verbose, str) or verbose not in (0, 1, 2):
        raise ValueError(f'`verbose` must be 0, 1, 2 or "auto". Received: verbose={verbose!r}.')
    return int(verbose)
