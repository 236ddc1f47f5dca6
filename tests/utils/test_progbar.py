import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest

from torchfit.logs import BatchLogs
from torchfit.utils import progbar as progbar_module
from torchfit.utils.progbar import Progbar

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr("time.time", fake)
    return fake


def _keras_progbar(*args, dynamic, **kwargs):
    keras = pytest.importorskip("keras")
    bar = keras.utils.Progbar(*args, **kwargs)
    bar._dynamic_display = dynamic
    return bar


def _ours(*args, dynamic, **kwargs):
    bar = Progbar(*args, **kwargs)
    bar._dynamic_display = dynamic
    return bar


def _drive(bar, clock, steps, target_values, dt, finalize_values=None):
    for step in range(1, steps + 1):
        clock.now += dt
        bar.update(step, target_values(step))
    if finalize_values is not None:
        clock.now += dt
        bar.update(steps, finalize_values, finalize=True)


def _run(make, clock, capsys, **drive):
    clock.now = 1000.0
    bar = make()
    _drive(bar, clock, **drive)
    return capsys.readouterr().out


def _values(step):
    return [
        ("loss", 1.0 / step),
        ("accuracy", 0.5 + step / 100),
        ("tiny", 1e-5 * step),
        ("neg", -0.25),
    ]


SCENARIOS = {
    "fast_steps": dict(steps=12, target_values=_values, dt=0.02),
    "slow_steps": dict(steps=5, target_values=_values, dt=0.7),
    "minutes_eta": dict(steps=3, target_values=_values, dt=40.0),
    "hours_eta": dict(steps=2, target_values=_values, dt=400.0),
    "micro_steps": dict(steps=4, target_values=_values, dt=0.0000031),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("stateful", [True, False])
def test_terminal_output_matches_keras(name, stateful, clock, capsys):
    kwargs = dict(stateless_metrics=set()) if stateful else {}
    target = {"minutes_eta": 300, "hours_eta": 1000}.get(name, SCENARIOS[name]["steps"])
    ours = _run(lambda: _ours(target, dynamic=True, **kwargs), clock, capsys, **SCENARIOS[name])
    theirs = _run(
        lambda: _keras_progbar(target, dynamic=True, **kwargs), clock, capsys, **SCENARIOS[name]
    )
    assert ours == theirs
    assert "━" in ours


NON_TERMINAL_SCENARIOS = {
    **SCENARIOS,
    # 70 s of 0.7 s steps: a line after 10.5 s, 21 s, ... then the final one.
    "long_epoch": dict(steps=100, target_values=_values, dt=0.7),
}


def _keras_every_10_seconds(target):
    # Keras's bar with a 10 s interval counted from its start: the oracle for
    # every line's text and for which updates print.
    bar = _keras_progbar(target, dynamic=False, interval=10.0)
    bar._last_update = bar._start
    return bar


@pytest.mark.parametrize("name", sorted(NON_TERMINAL_SCENARIOS))
def test_non_terminal_output_is_keras_lines_at_most_every_10_seconds(name, clock, capsys):
    scenario = NON_TERMINAL_SCENARIOS[name]
    target = scenario["steps"]
    ours = _run(lambda: _ours(target, dynamic=False), clock, capsys, **scenario)
    theirs = _run(lambda: _keras_every_10_seconds(target), clock, capsys, **scenario)
    assert "\x1b" not in ours
    expected = "\n".join(line.rstrip() for line in ANSI.sub("", theirs).split("\n"))
    assert ours == expected
    assert ours.startswith("\n")
    lines = [line for line in ours.split("\n") if line]
    assert lines[-1].startswith(f"{target}/{target}")


def test_non_terminal_long_epoch_prints_one_line_per_10_seconds(clock, capsys):
    clock.now = 1000.0
    bar = _ours(100, dynamic=False)
    for step in range(1, 101):
        clock.now += 0.7
        bar.update(step, [("loss", 0.5)])
    lines = [line for line in capsys.readouterr().out.split("\n") if line]
    assert [line.split()[0] for line in lines] == [
        "15/100",
        "30/100",
        "45/100",
        "60/100",
        "75/100",
        "90/100",
        "100/100",
    ]


def test_terminal_keeps_redrawing_every_50_ms(clock, capsys):
    clock.now = 1000.0
    bar = _ours(100, dynamic=True)
    for step in range(1, 101):
        clock.now += 0.7
        bar.update(step, [("loss", 0.5)])
    assert capsys.readouterr().out.count("\r") == 100


def test_unknown_target_matches_keras(clock, capsys):
    drive = dict(steps=5, target_values=_values, dt=0.1, finalize_values=[("loss", 0.125)])
    ours = _run(lambda: _ours(None, dynamic=True), clock, capsys, **drive)
    theirs = _run(lambda: _keras_progbar(None, dynamic=True), clock, capsys, **drive)
    assert ours == theirs
    assert "/Unknown" in ours


def test_verbose_2_matches_keras_for_positive_values(clock, capsys):
    def values(step):
        return [("loss", 0.5 + 1.0 / step), ("mae", 2e-4)]

    drive = dict(steps=782, target_values=values, dt=0.002)
    ours = _run(lambda: _ours(782, verbose=2, dynamic=False), clock, capsys, **drive)
    theirs = _run(lambda: _keras_progbar(782, verbose=2, dynamic=False), clock, capsys, **drive)
    assert ours == theirs
    assert re.fullmatch(r"782/782 - 2s - 2ms/step - loss: \d\.\d{4} - mae: 2\.0000e-04\n", ours)


def test_verbose_2_prints_negative_values_as_fixed_point(clock, capsys):
    # Keras prints negatives in e-notation at verbose=2 (it tests v > 1e-3);
    # torchfit uses |v| as at verbose=1.
    bar = _ours(2, verbose=2, dynamic=False, stateless_metrics=set())
    bar.update(2, [("loss", -0.5)])
    assert capsys.readouterr().out.endswith("loss: -0.5000\n")


def test_known_line_format(clock, capsys):
    bar = _ours(1875, dynamic=True, stateless_metrics=set())
    clock.now += 2.0
    bar.update(1, [("accuracy", 0.5), ("loss", 1.2)])
    out = ANSI.sub("", capsys.readouterr().out).lstrip("\r")
    assert out == "   1/1875 ━━━━━━━━━━━━━━━━━━━━ 1:02:28 2s/step - accuracy: 0.5000 - loss: 1.2000"


def test_silent_verbose_0(clock, capsys):
    bar = _ours(3, verbose=0, dynamic=True)
    for step in range(1, 4):
        bar.update(step, [("loss", 1.0)])
    assert capsys.readouterr().out == ""


def test_stateful_values_read_only_when_drawing(clock, capsys):
    reads = []

    def compute():
        reads.append(1)
        return {"loss": 0.5}

    bar = _ours(100, dynamic=True, stateless_metrics=set())
    for step in range(1, 101):
        clock.now += 0.001  # 1 ms steps: a redraw every 50 steps at most
        bar.update(step, BatchLogs(compute), finalize=False if step < 100 else None)
    # Step 1 draws (first update), then every 0.05 s, then the last step.
    assert 2 <= len(reads) <= 4
    assert "loss: 0.5000" in capsys.readouterr().out


def test_stateless_values_are_averaged_over_steps(clock, capsys):
    bar = _ours(3, verbose=2, dynamic=False)
    bar.update(1, [("loss", 1.0)])
    bar.update(2, [("loss", 3.0)])
    bar.update(3)  # the final update brings no value: the average shows
    assert capsys.readouterr().out.endswith("loss: 2.0000\n")


def test_both_metric_lists_is_an_error():
    with pytest.raises(ValueError, match="stateful_metrics"):
        Progbar(3, stateful_metrics=["a"], stateless_metrics=["b"])


def test_add_advances_by_n(clock, capsys):
    bar = _ours(4, verbose=2, dynamic=False, stateless_metrics=set())
    bar.add(2, [("loss", 1.0)])
    bar.add(2, [("loss", 0.5)])
    assert capsys.readouterr().out.startswith("4/4 - ")


def test_tensor_values_are_displayed(clock, capsys):
    torch = pytest.importorskip("torch")
    bar = _ours(1, verbose=2, dynamic=False, stateless_metrics=set())
    bar.update(1, [("loss", torch.tensor(0.25))])
    assert capsys.readouterr().out.endswith("loss: 0.2500\n")


def test_print_msg_falls_back_to_ascii(monkeypatch):
    written = []

    class AsciiOut:
        encoding = "ascii"

        def write(self, text):
            text.encode("ascii")
            written.append(text)

        def flush(self):
            pass

    monkeypatch.setattr(progbar_module.sys, "stdout", AsciiOut())
    progbar_module.print_msg("1/1 ━━")
    assert written == ["1/1 ==\n"]
