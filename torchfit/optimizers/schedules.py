"""Learning-rate schedules: Keras's formulas as plain Python functions of the step.

Owns the six Keras schedules and their (de)serialization. Every schedule maps a
Python int step (`optimizer.iterations` counted in applied calls) to a Python
float, so evaluating one never touches a device. When the step advances belongs
to the optimizer (`base.py`).
"""

import bisect
import difflib
import math
from typing import Any, Optional

__all__ = [
    "LearningRateSchedule",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "CosineDecay",
    "CosineDecayRestarts",
    "serialize",
    "deserialize",
]


def _as_step(step: Any) -> float:
    """Returns `step` as a float; accepts ints, floats and 0-d tensors/arrays."""
    if isinstance(step, (int, float)):
        return float(step)
    try:
        # A tensor step comes from user code (`schedule(opt.iterations)` in a
        # Keras script); converting it once here is the user's own sync.
        return float(step)
    except (TypeError, ValueError) as err:
        raise TypeError(
            "A learning-rate schedule takes the optimizer step as a number."
            f" Received: step of type {type(step).__name__}."
        ) from err


def _check_positive(name: str, value: Any) -> None:
    if value <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")


class LearningRateSchedule:
    """Base class of learning-rate schedules.

    A schedule is called with the optimizer step (an int, counted in applied
    optimizer calls) and returns the learning rate as a Python float. Subclasses
    implement `__call__(step)` and `get_config()`.

    Example:

    >>> class InverseSqrt(LearningRateSchedule):
    ...     def __init__(self, initial_learning_rate):
    ...         self.initial_learning_rate = initial_learning_rate
    ...     def __call__(self, step):
    ...         return self.initial_learning_rate / (step + 1) ** 0.5
    ...     def get_config(self):
    ...         return {"initial_learning_rate": self.initial_learning_rate}
    >>> InverseSqrt(0.1)(3)
    0.05
    """

    def __call__(self, step: int) -> float:
        raise NotImplementedError(
            f"Learning rate schedule '{self.__class__.__name__}' must override"
            " `__call__(self, step)`."
        )

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments as a JSON-friendly dict."""
        raise NotImplementedError(
            f"Learning rate schedule '{self.__class__.__name__}' must override"
            " `get_config()` in order to be serializable."
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LearningRateSchedule":
        """Instantiates a schedule from the output of `get_config()`."""
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)`.

    Args:
        initial_learning_rate: The learning rate at step 0.
        decay_steps: Positive number of steps per decay period.
        decay_rate: The factor applied per period.
        staircase: If `True`, `step / decay_steps` is floored, so the rate
            drops in discrete jumps. Defaults to `False`.
        name: Name of the schedule. Defaults to `"ExponentialDecay"`.

    Example:

    >>> ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(20)
    0.025
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "ExponentialDecay",
    ):
        _check_positive("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: int) -> float:
        progress = _as_step(step) / self.decay_steps
        if self.staircase:
            progress = math.floor(progress)
        return float(self.initial_learning_rate * self.decay_rate**progress)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant learning rate per interval of steps.

    Returns `values[0]` while `step <= boundaries[0]`, `values[i]` while
    `boundaries[i-1] < step <= boundaries[i]`, and `values[-1]` after the last
    boundary.

    Args:
        boundaries: Strictly increasing step numbers.
        values: One more value than `boundaries`.
        name: Name of the schedule. Defaults to `"PiecewiseConstant"`.

    Raises:
        ValueError: If `len(values) != len(boundaries) + 1`.

    Example:

    >>> schedule = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    >>> schedule(10), schedule(11), schedule(21)
    (1.0, 0.5, 0.1)
    """

    def __init__(self, boundaries: list, values: list, name: str = "PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of `boundaries` should be 1 less than the length of"
                f" `values`. Received: {len(boundaries)} boundaries and"
                f" {len(values)} values."
            )
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step: int) -> float:
        # bisect_left counts the boundaries strictly below `step`: that is the
        # index of the interval `(b[i-1], b[i]]` holding it.
        return float(self.values[bisect.bisect_left(self.boundaries, _as_step(step))])

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """Polynomial decay from `initial_learning_rate` to `end_learning_rate`.

    `(initial - end) * (1 - step / decay_steps) ** power + end`, with the step
    held at `decay_steps` afterwards; with `cycle=True`, `decay_steps` grows to
    the first multiple of itself not below `step` instead.

    Args:
        initial_learning_rate: The learning rate at step 0.
        decay_steps: Positive number of steps to decay over.
        end_learning_rate: The final learning rate. Defaults to `0.0001`.
        power: Exponent of the polynomial. Defaults to `1.0`.
        cycle: Whether to restart the decay after `decay_steps`. Defaults to
            `False`.
        name: Name of the schedule. Defaults to `"PolynomialDecay"`.

    Example:

    >>> PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0)(5)
    0.5
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str = "PolynomialDecay",
    ):
        _check_positive("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step: int) -> float:
        step = _as_step(step)
        decay_steps = float(self.decay_steps)
        if self.cycle:
            multiplier = 1.0 if step == 0 else math.ceil(step / self.decay_steps)
            decay_steps *= multiplier
        else:
            step = min(step, decay_steps)
        remaining = 1.0 - step / decay_steps
        span = self.initial_learning_rate - self.end_learning_rate
        return float(span * remaining**self.power + self.end_learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)`.

    Args:
        initial_learning_rate: The learning rate at step 0.
        decay_steps: Positive number of steps per decay unit.
        decay_rate: How fast the rate falls.
        staircase: If `True`, `step / decay_steps` is floored. Defaults to
            `False`.
        name: Name of the schedule. Defaults to `"InverseTimeDecay"`.

    Example:

    >>> InverseTimeDecay(0.1, decay_steps=1, decay_rate=0.5)(2)
    0.05
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "InverseTimeDecay",
    ):
        _check_positive("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: int) -> float:
        progress = _as_step(step) / self.decay_steps
        if self.staircase:
            progress = math.floor(progress)
        return float(self.initial_learning_rate / (1.0 + self.decay_rate * progress))

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


def _cosine(fraction: float, alpha: float) -> float:
    """The cosine multiplier: 1 at `fraction=0`, `alpha` at `fraction=1`."""
    cosine = 0.5 * (1.0 + math.cos(math.pi * fraction))
    return (1.0 - alpha) * cosine + alpha


class CosineDecay(LearningRateSchedule):
    """Cosine decay, optionally after a linear warmup.

    Without `warmup_target`, decays from `initial_learning_rate` to
    `initial_learning_rate * alpha` over `decay_steps`. With it, first rises
    linearly from `initial_learning_rate` to `warmup_target` over
    `warmup_steps`, then decays from `warmup_target` to `warmup_target * alpha`
    over `decay_steps`. The rate stays at its final value afterwards.

    Args:
        initial_learning_rate: The learning rate at step 0.
        decay_steps: Positive number of steps to decay over.
        alpha: Final rate as a fraction of the decay's starting rate.
            Defaults to `0.0`.
        name: Name of the schedule. Defaults to `"CosineDecay"`.
        warmup_target: Rate reached at the end of the warmup, or `None` for no
            warmup. Defaults to `None`.
        warmup_steps: Number of warmup steps. Defaults to `0`.

    Example:

    >>> CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=10)(5)
    0.5
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str = "CosineDecay",
        warmup_target: Optional[float] = None,
        warmup_steps: int = 0,
    ):
        _check_positive("decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        step = _as_step(step)
        if self.warmup_target is None:
            step = min(step, self.decay_steps)
            fraction = step / self.decay_steps
            return float(self.initial_learning_rate * _cosine(fraction, self.alpha))
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return float(delta * (step / self.warmup_steps) + self.initial_learning_rate)
        fraction = (step - self.warmup_steps) / self.decay_steps
        return float(self.warmup_target * _cosine(fraction, self.alpha))

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR).

    The multiplier decays from 1 to `alpha` over `first_decay_steps`, then
    restarts; each period lasts `t_mul` times longer than the previous one and
    starts from `m_mul` times its peak.

    Args:
        initial_learning_rate: The learning rate at step 0.
        first_decay_steps: Positive length of the first period.
        t_mul: Growth factor of the period length. Defaults to `2.0`.
        m_mul: Growth factor of the peak rate. Defaults to `1.0`.
        alpha: Minimum rate as a fraction of `initial_learning_rate`.
            Defaults to `0.0`.
        name: Name of the schedule. Defaults to `"SGDRDecay"`.

    Example:

    >>> schedule = CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=1.0)
    >>> schedule(0), schedule(5), schedule(10)
    (1.0, 0.5, 1.0)
    """

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: int,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str = "SGDRDecay",
    ):
        _check_positive("first_decay_steps", first_decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def _restart_and_fraction(self, fraction: float) -> tuple[float, float]:
        """Splits progress in first-period units into (restart index, fraction)."""
        t_mul = self._t_mul
        if t_mul == 1.0:
            restart = math.floor(fraction)
            return restart, fraction - restart

        # Periods have lengths 1, t, t^2, ...: restart i starts at (1-t^i)/(1-t).
        def start(i):
            return (1.0 - t_mul**i) / (1.0 - t_mul)

        restart = math.floor(math.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul))
        # The log can land a hair below an exact restart; step to the period
        # that really holds `fraction`, so a restart step gives the peak rate.
        while start(restart + 1) <= fraction:
            restart += 1
        while restart > 0 and start(restart) > fraction:
            restart -= 1
        return restart, (fraction - start(restart)) / t_mul**restart

    def __call__(self, step: int) -> float:
        fraction = _as_step(step) / self.first_decay_steps
        restart, fraction = self._restart_and_fraction(fraction)
        peak = self._m_mul**restart
        cosine = 0.5 * peak * (1.0 + math.cos(math.pi * fraction))
        decayed = (1.0 - self.alpha) * cosine + self.alpha
        return float(self.initial_learning_rate * decayed)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self._t_mul,
            "m_mul": self._m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


_SCHEDULES = {
    cls.__name__: cls
    for cls in (
        LearningRateSchedule,
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}


def serialize(learning_rate_schedule: LearningRateSchedule) -> dict[str, Any]:
    """Returns a JSON-friendly dict describing `learning_rate_schedule`.

    Args:
        learning_rate_schedule: A `LearningRateSchedule` instance.

    Returns:
        `{"module", "class_name", "config", "registered_name"}`, the layout of
        Keras's `serialize`.

    Example:

    >>> serialize(ExponentialDecay(0.1, 10, 0.9))["class_name"]
    'ExponentialDecay'
    """
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError(
            "`learning_rate_schedule` must be a LearningRateSchedule."
            f" Received: type {type(learning_rate_schedule).__name__}."
        )
    cls = type(learning_rate_schedule)
    builtin = _SCHEDULES.get(cls.__name__) is cls
    return {
        "module": "torchfit.optimizers.schedules" if builtin else cls.__module__,
        "class_name": cls.__name__,
        "config": learning_rate_schedule.get_config(),
        "registered_name": None if builtin else cls.__name__,
    }


def deserialize(
    config: dict[str, Any], custom_objects: Optional[dict[str, Any]] = None
) -> LearningRateSchedule:
    """Rebuilds a schedule from `serialize()`'s output (Keras's layout works too).

    Args:
        config: A dict with `"class_name"` and `"config"`.
        custom_objects: Optional mapping of names to custom schedule classes.

    Returns:
        A `LearningRateSchedule` instance.

    Raises:
        ValueError: If the class name is unknown.

    Example:

    >>> deserialize({"class_name": "InverseTimeDecay",
    ...              "config": {"initial_learning_rate": 1.0, "decay_steps": 1,
    ...                         "decay_rate": 1.0}})(1)
    0.5
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "`config` must be a dict with 'class_name' and 'config' keys."
            f" Received: type {type(config).__name__}."
        )
    known = dict(_SCHEDULES)
    known.update(custom_objects or {})
    name = config["class_name"]
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=3) or sorted(known)
        raise ValueError(
            f"Unknown learning rate schedule: '{name}'. Expected one of (closest first): {close}."
        )
    return known[name].from_config(dict(config.get("config", {})))
