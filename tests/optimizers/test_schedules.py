import math

import pytest
import torch

from torchfit.optimizers import schedules


def test_exponential_decay_continuous_and_staircase():
    assert schedules.ExponentialDecay(1.0, 10, 0.5)(5) == pytest.approx(0.5**0.5)
    assert schedules.ExponentialDecay(1.0, 10, 0.5, staircase=True)(19) == pytest.approx(0.5)


def test_piecewise_constant_boundaries_are_inclusive_on_the_left_interval():
    schedule = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [schedule(s) for s in (0, 10, 11, 20, 21)] == [1.0, 1.0, 0.5, 0.5, 0.1]


def test_piecewise_constant_needs_one_more_value():
    with pytest.raises(ValueError, match="boundaries"):
        schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5])


def test_polynomial_decay_holds_the_end_value_or_cycles():
    schedule = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, power=2.0)
    assert schedule(5) == pytest.approx(0.25)
    assert schedule(50) == 0.0
    cycling = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, cycle=True)
    assert cycling(0) == 1.0
    assert cycling(15) == pytest.approx(0.25)  # decay_steps becomes 20


def test_inverse_time_decay():
    assert schedules.InverseTimeDecay(1.0, 2, 1.0)(3) == pytest.approx(1 / 2.5)
    assert schedules.InverseTimeDecay(1.0, 2, 1.0, staircase=True)(3) == pytest.approx(0.5)


def test_cosine_decay_with_alpha_and_warmup():
    schedule = schedules.CosineDecay(1.0, 10, alpha=0.2)
    assert schedule(5) == pytest.approx(0.6)
    assert schedule(100) == pytest.approx(0.2)
    warm = schedules.CosineDecay(0.0, 10, warmup_target=2.0, warmup_steps=4)
    assert warm(2) == pytest.approx(1.0)
    assert warm(4) == pytest.approx(2.0)
    assert warm(9) == pytest.approx(1.0)


def test_cosine_decay_restarts_periods_grow_and_peaks_shrink():
    schedule = schedules.CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)
    assert schedule(10) == pytest.approx(0.5)  # second period starts at half
    assert schedule(20) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert schedule(30) == pytest.approx(0.25)  # third period starts at 10 + 20


def test_cosine_decay_restarts_exact_restart_step_gives_the_peak():
    schedule = schedules.CosineDecayRestarts(1.0, 64, t_mul=1.5, m_mul=0.9)
    assert schedule(844) == pytest.approx(0.9**5)


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.ExponentialDecay(0.1, 10, 0.9),
        schedules.PiecewiseConstantDecay([5], [0.1, 0.01]),
        schedules.PolynomialDecay(0.1, 10),
        schedules.InverseTimeDecay(0.1, 10, 0.5),
        schedules.CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=3),
        schedules.CosineDecayRestarts(0.1, 10),
    ],
)
def test_returns_python_floats_and_round_trips(schedule):
    assert isinstance(schedule(3), float)
    assert isinstance(schedule(torch.tensor(3)), float)
    rebuilt = schedules.deserialize(schedules.serialize(schedule))
    assert type(rebuilt) is type(schedule)
    assert rebuilt.get_config() == schedule.get_config()
    assert rebuilt(7) == schedule(7)


@pytest.mark.parametrize("cls", [schedules.ExponentialDecay, schedules.InverseTimeDecay])
def test_decay_steps_must_be_positive(cls):
    with pytest.raises(ValueError, match="decay_steps"):
        cls(0.1, 0, 0.5)


def test_unknown_class_lists_closest_names():
    with pytest.raises(ValueError, match="ExponentialDecay"):
        schedules.deserialize({"class_name": "ExponentalDecay", "config": {}})


def test_custom_schedule_subclass():
    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 1.0 / 2**step

        def get_config(self):
            return {}

    restored = schedules.deserialize(
        schedules.serialize(Halving()), custom_objects={"Halving": Halving}
    )
    assert restored(2) == 0.25
    with pytest.raises(NotImplementedError):
        schedules.LearningRateSchedule()(0)
