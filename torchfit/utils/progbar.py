"""Draws Keras 3's progress bar, reading log values only when it redraws.

Owns the text format (20-character `━` bar, ETA, `Ns Nms/step`, `%.4f` /
`%.4e` values), the redraw interval and terminal detection. Which hooks
drive the bar, and when it stays silent, belongs to
`callbacks/progbar_logger.py`.

Reading a value can cost a device sync (the values may be a lazy
`torchfit.logs.BatchLogs`), so a bar whose metrics are all stateful (shown
as given, the way `ProgbarLogger` uses it) reads them only on the updates
it actually draws: at most once every `interval` seconds, and on the last.
"""

import math
import os
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

import numpy as np

__all__ = ["NON_INTERACTIVE_INTERVAL", "Progbar", "is_dynamic_display", "print_msg"]

Values = Union[Mapping[str, Any], Iterable[tuple[str, Any]], None]

_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"
_GREEN = "\33[32m"
_WHITE = "\33[37m"


def print_msg(message: str, line_break: bool = True) -> None:
    """Writes `message` to stdout and flushes, as Keras's `print_msg` does.

    Args:
        message: Text to write.
        line_break: Whether to end with a newline. Defaults to `True`.
    """
    message = f"{message}\n" if line_break else str(message)
    try:
        sys.stdout.write(message)
    except UnicodeEncodeError:
        # A non-UTF-8 console cannot print the bar character: fall back to
        # ASCII rather than crash the training run over a progress bar.
        encoding = sys.stdout.encoding or "utf-8"
        message = message.replace("━", "=")
        sys.stdout.write(message.encode(encoding, errors="ignore").decode(encoding))
    sys.stdout.flush()


#: Off a display that redraws in place (a log file, CI), `verbose=1` prints at
#: most one progress line per this many seconds, plus the final line.
NON_INTERACTIVE_INTERVAL = 10.0


def is_dynamic_display() -> bool:
    """Whether stdout redraws a line in place: a terminal, Jupyter (ipykernel)
    or PyCharm's console.

    Keras 3 also tests `"posix" in sys.modules`, which is true on every Linux
    and macOS process; we follow its documented intent instead, so a log file
    is not filled with carriage-return redraws.

    Example:
    >>> import io, sys
    >>> stdout, sys.stdout = sys.stdout, io.StringIO()
    >>> dynamic = is_dynamic_display()
    >>> sys.stdout = stdout
    >>> dynamic == ("ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ)
    True
    """
    return (
        (hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
        or "ipykernel" in sys.modules
        or "PYCHARM_HOSTED" in os.environ
    )


def _to_float(value: Any) -> float:
    if isinstance(value, float):
        return value
    if hasattr(value, "detach"):  # a torch tensor, possibly on an accelerator
        value = value.detach().double().mean().cpu().numpy()
    return float(np.mean(np.asarray(value, dtype=np.float64)))


def _format_value(value: float) -> str:
    # Keras 3's verbose=2 line tests `value > 1e-3` (no abs), so it prints a
    # negative loss in e-notation; we use |value| for both modes.
    if abs(value) > 1e-3:
        return f" {value:.4f}"
    return f" {value:.4e}"


class Progbar:
    """Displays a progress bar, formatted exactly like Keras 3's.

    If neither `stateful_metrics` nor `stateless_metrics` is given, every
    value is stateless: averaged over the steps by the bar before display.

    Args:
        target: Total number of steps expected, `None` if unknown.
        width: Bar width in characters. Defaults to `20`.
        verbose: `0` (silent), `1` (bar redrawn in place) or `2` (one line
            when finished). Defaults to `1`.
        interval: Minimum seconds between two redraws. Defaults to `0.05`.
            Where stdout cannot redraw in place (a log file), `verbose=1`
            prints a progress line at most every `NON_INTERACTIVE_INTERVAL`
            seconds, plus the final line.
        stateful_metrics: Names shown as given rather than averaged. Give
            this or `stateless_metrics`, not both. Defaults to `None`.
        stateless_metrics: Names to average; every other name is shown as
            given. Defaults to `None`.
        unit_name: Name of a step in the time-per-step field. Defaults to
            `"step"`.

    Example:
    >>> bar = Progbar(3, verbose=2)
    >>> for step in range(1, 4):
    ...     bar.update(step, [("loss", 0.5)])  # doctest: +ELLIPSIS
    3/3 - 0s - ...s/step - loss: 0.5000
    """

    def __init__(
        self,
        target: Optional[int],
        width: int = 20,
        verbose: int = 1,
        interval: float = 0.05,
        stateful_metrics: Optional[Iterable[str]] = None,
        stateless_metrics: Optional[Iterable[str]] = None,
        unit_name: str = "step",
    ):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError(
                "Give only one of `stateful_metrics` (names shown as given;"
                " every other name is averaged) and `stateless_metrics`"
                " (names averaged; every other name is shown as given)."
                f" Received both: stateful_metrics={sorted(stateful_metrics)},"
                f" stateless_metrics={sorted(stateless_metrics)}."
            )
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        if stateful_metrics is not None:
            self.stateful_metrics = set(stateful_metrics)
            self.stateless_metrics = None
        elif stateless_metrics is not None:
            self.stateful_metrics = None
            self.stateless_metrics = set(stateless_metrics)
        else:
            self.stateful_metrics = set()
            self.stateless_metrics = None
        # With nothing to average, values seen between two redraws are never
        # shown, so they need not be read (read = device sync).
        self._reads_only_when_drawing = self.stateless_metrics == set()
        self._dynamic_display = is_dynamic_display()
        self._seen_so_far = 0
        # name -> [sum of value * steps, steps]
        self._values: dict[str, list] = {}
        self._values_order: list[str] = []
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step: Optional[float] = None
        self._prev_total_width = 0

    def update(self, current: int, values: Values = None, finalize: Optional[bool] = None) -> None:
        """Updates the progress bar.

        Args:
            current: Number of steps done so far.
            values: `(name, value)` pairs, or a mapping, for the last step.
                Stateful names are shown as given, others are averaged.
            finalize: Whether this is the last update. Defaults to
                `current >= target` (never, when the target is unknown).
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now)
        if self.verbose == 1:
            draws = finalize or self._line_due(now)
        else:
            draws = self.verbose == 2 and finalize
        if draws or not self._reads_only_when_drawing:
            self._record(current, values, finalize)
        self._seen_so_far = current
        if self.verbose == 1:
            if not draws:
                return
            self._draw_line(current, now, time_per_unit, finalize)
        elif draws and self.target is not None and self.target > 0:
            self._print_summary_line(current, now, time_per_unit)
        self._last_update = now

    def _line_due(self, now: float) -> bool:
        """Whether a (non-final) progress line is due: `interval` after the last one
        where the line is redrawn in place; off such a display (a log file), at
        least `NON_INTERACTIVE_INTERVAL` after the last one or the bar's start."""
        if self._dynamic_display:
            return now - self._last_update >= self.interval
        last = self._last_update or self._start
        return now - last >= max(self.interval, NON_INTERACTIVE_INTERVAL)

    def add(self, n: int, values: Values = None) -> None:
        """Advances the bar by `n` steps; see `update`."""
        self.update(self._seen_so_far + n, values)

    def _record(self, current: int, values: Values, finalize: bool) -> None:
        if values is None:
            return
        items = values.items() if isinstance(values, Mapping) else values
        for name, value in items:
            if name not in self._values:
                self._values_order.append(name)
            if self.stateful_metrics is not None:
                stateless = name not in self.stateful_metrics
            else:
                stateless = name in self.stateless_metrics
            if not stateless or finalize:
                # At finalize the value given is already the epoch's final
                # value: show it as is.
                self._values[name] = [value, 1]
                continue
            # At least 1: an unknown-target bar may get the same `current`
            # from the last batch and from the epoch end.
            steps = max(current - self._seen_so_far, 1)
            if name not in self._values:
                self._values[name] = [value * steps, steps]
            else:
                self._values[name][0] += value * steps
                self._values[name][1] += steps

    def _metrics_text(self) -> str:
        text = ""
        for name in self._values_order:
            total, count = self._values[name]
            text += f" - {name}:" + _format_value(_to_float(total) / max(1, count))
        return text

    def _draw_line(self, current: int, now: float, time_per_unit: float, finalize: bool) -> None:
        colour = self._dynamic_display
        bold, reset = (_BOLD, _RESET) if colour else ("", "")
        if self._dynamic_display:
            message = "\b" * self._prev_total_width + "\r"
        else:
            message = "\n"
        known_target = self.target is not None and self.target > 0
        if known_target:
            digits = int(math.log10(self.target)) + 1
            count = f"{current:{digits}d}/{self.target}"
            done = int(self.width * float(current) / self.target)
            bar = f"{bold}{count}{reset} "
            if colour:
                if done > 0:
                    bar += f"{_GREEN}{'━' * done}{_RESET}"
                bar += f"{_WHITE}{'━' * (self.width - done)}{_RESET}"
            else:
                bar += "━" * self.width
        else:
            bar = f"{int(current):7d}/Unknown"
        if known_target and not finalize:
            timing = _format_eta(time_per_unit * (self.target - current))
        else:
            timing = f"{now - self._start:.0f}s"
        info = f" {bold}{timing}{reset}"
        info += _format_time(time_per_unit, self.unit_name)
        info += self._metrics_text()
        message += bar + info
        visible_width = len(_strip_ansi(bar)) + len(_strip_ansi(info))
        if self._dynamic_display and self._prev_total_width > visible_width:
            message += " " * (self._prev_total_width - visible_width)
        if finalize:
            message += "\n"
        print_msg(message, line_break=False)
        self._prev_total_width = visible_width

    def _print_summary_line(self, current: int, now: float, time_per_unit: float) -> None:
        digits = int(math.log10(self.target)) + 1
        line = f"{current:{digits}d}/{self.target} - {now - self._start:.0f}s"
        line += " -" + _format_time(time_per_unit, self.unit_name)
        line += self._metrics_text()
        print_msg(line)

    def _estimate_step_duration(self, current: int, now: float) -> float:
        # The first step (compilation, warm-up) is left out of the average
        # once a second step exists.
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit


def _format_eta(eta: float) -> str:
    if eta > 3600:
        return f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
    if eta > 60:
        return f"{int(eta // 60)}:{int(eta % 60):02d}"
    return f"{int(eta)}s"


def _format_time(time_per_unit: float, unit_name: str) -> str:
    if time_per_unit >= 1 or time_per_unit == 0:
        return f" {time_per_unit:.0f}s/{unit_name}"
    if time_per_unit >= 1e-3:
        return f" {time_per_unit * 1000.0:.0f}ms/{unit_name}"
    return f" {time_per_unit * 1000000.0:.0f}us/{unit_name}"


def _strip_ansi(text: str) -> str:
    for code in (_BOLD, _RESET, _GREEN, _WHITE):
        text = text.replace(code, "")
    return text
