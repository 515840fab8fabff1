"""The Monitor API: a block of Python code measured at the wall through an emulated meter on a pty (the real
logger, store and pairing), against the emulator's own closed-form energy."""

import math
import threading
import time

import pytest
from profile_truth import Ramp, reading_deviation_w

from edgebench.errors import BadInput
from edgebench.host.carbon import egrid_factor
from edgebench.host.meters.emulate import RampProfile, start_emulator
from edgebench.host.monitor import Monitor
from edgebench.host.store import load_trace
from edgebench.records import read_run_records

INTERVAL_S = 0.05



class SwitchedProfile:
    """`idle_w` until the test sets `busy`, then `busy_w`: a training loop drawing more than idle."""

    identity = "switched"

    def __init__(self, idle_w: float, busy_w: float) -> None:
        self.idle_w, self.busy_w, self.busy = idle_w, busy_w, threading.Event()

    def watts_at(self, t_s: float) -> float:
        return self.busy_w if self.busy.is_set() else self.idle_w


def test_edgebench_exports_monitor_lazily():
    import edgebench

    assert edgebench.Monitor is Monitor
    with pytest.raises(AttributeError):
        edgebench.NoSuchThing  # noqa: B018


@pytest.mark.slow
def test_with_block_is_measured_against_the_profile(tmp_path):
    grid = egrid_factor("RFCW", 2019)
    with start_emulator("lines", RampProfile(30.0, 1.5), interval_s=INTERVAL_S) as meter:
        with Monitor(meter.port, protocol="lines", idle_s=1.0, out=tmp_path, grid=grid) as m:
            block = [time.time_ns()]
            time.sleep(2.0)  # the measured work
            block.append(time.time_ns())
        after = time.time_ns()
        truth = Ramp.of(meter)
    result = m.result
    assert result is not None and result.valid, result
    assert result.start_host_ns <= block[0] and block[1] <= result.end_host_ns <= after  # it holds the block
    gross = truth.energy_j(result.start_host_ns, result.end_host_ns)
    idle = next(r for r in read_run_records(tmp_path / "runs.jsonl") if r.kind == "idle")
    idle_w = truth.energy_j(idle.window_start_ns, idle.window_end_ns) / (idle.duration_ns / 1e9)
    # every stored reading is within deviation_w of the true power: the tolerances follow (tests/profile_truth.py)
    deviation_w = reading_deviation_w(tmp_path / "meter.sqlite", truth, idle.window_start_ns, result.end_host_ns)
    assert abs(result.gross_energy_j - gross) <= deviation_w * result.duration_s
    assert abs(m.idle.power_w - idle_w) <= deviation_w
    assert abs(result.net_energy_j - (gross - idle_w * result.duration_s)) <= 2 * deviation_w * result.duration_s
    assert m.co2_kg(result) == pytest.approx(grid.co2_kg(result.gross_energy_j), rel=1e-12)
    # the readings counted are those the logger stored inside the window
    stored = load_trace(tmp_path / "meter.sqlite").t_ns
    inside = (stored >= result.start_host_ns) & (stored <= result.end_host_ns)
    assert result.samples == int(inside.sum()) >= 10
    assert (tmp_path / "meter.sqlite").is_file()
    assert any(line.startswith("energy") for line in m.lines(result))


def _wait_for_sent(meter, after_ns, timeout_s=60.0):
    """Until the emulator has sent a reading after `after_ns` (the timeout only guards against a hang)."""
    deadline = time.monotonic() + timeout_s
    while not (meter.sent and meter.sent[-1][0] > after_ns):
        assert time.monotonic() < deadline, "the emulator sent nothing"
        time.sleep(0.01)


def _edge_s(meter, stored, switched_ns, new_w):
    """How far the meter can place a power step of the profile from its true time: from the emulator's last
    reading sent before the switch to the first stored reading (host time) showing the new power."""
    sent_before = max(t for t, _, _ in meter.sent if t < switched_ns)
    t, p = stored
    shown = t[(t > switched_ns) & (p == new_w)]
    assert len(shown), f"no stored reading of {new_w} W after the switch"
    return (int(shown[0]) - sent_before) / 1e9


@pytest.mark.slow
def test_named_windows_from_inside_a_training_loop(tmp_path):
    profile = SwitchedProfile(idle_w=20.0, busy_w=60.0)
    with start_emulator("lines", profile, interval_s=INTERVAL_S) as meter:
        mon = Monitor(meter.port, protocol="lines", idle_s=1.0, grid=egrid_factor()).start()
        tmp = mon.out
        try:
            # the idle window's right edge is interpolated with the reading after it, which must still be idle:
            # the profile switches only once the emulator has sent a reading past the idle window's end
            _wait_for_sent(meter, read_run_records(mon.runs_path)[0].window_end_ns)
            epochs, switches = [], []
            for epoch in range(2):
                mon.begin_window(f"epoch{epoch}")
                switches.append(time.time_ns())
                profile.busy.set()
                time.sleep(1.5)  # the work
                switches.append(time.time_ns())
                profile.busy.clear()
                time.sleep(0.3)
                epochs.append(mon.end_window(f"epoch{epoch}", iterations=50))
            trace = load_trace(mon.log_path)
            stored = (trace.t_ns, trace.power_w)
            with pytest.raises(BadInput, match="no open window"):
                mon.end_window("epoch9")
            mon.begin_window("a")
            with pytest.raises(BadInput, match="already open"):
                mon.begin_window("a")
        finally:
            mon.stop()
    for epoch, m in enumerate(epochs):
        assert m.valid, m.status
        assert mon.idle.power_w == pytest.approx(20.0)
        # truth: 20 W throughout, 40 W more while busy; each step can be misplaced by the meter by as much as
        # the time between the emulator's last reading before it and the first stored reading after it
        on, off = switches[2 * epoch], switches[2 * epoch + 1]
        busy_s = (off - on) / 1e9
        tolerance_j = 40.0 * (_edge_s(meter, stored, on, 60.0) + _edge_s(meter, stored, off, 20.0))
        assert abs(m.net_energy_j - 40.0 * busy_s) <= tolerance_j, (m.net_energy_j, busy_s, tolerance_j)
        assert abs(m.gross_energy_j - (20.0 * m.duration_s + 40.0 * busy_s)) <= tolerance_j
        assert m.net_j_per_inference == pytest.approx(m.net_energy_j / 50)
    assert mon.out is None and not tmp.exists()  # the temporary folder is gone after stop()


@pytest.mark.slow
def test_a_window_too_short_for_the_meter_is_invalid_and_says_why():
    # an empty block against a meter read every 0.2 s: 10 readings would need 2 s, however busy the machine
    with start_emulator("lines", RampProfile(10.0, 0.0), interval_s=0.2) as meter:
        with Monitor(meter.port, protocol="lines", idle_power_w=4.0) as m:
            pass
    assert not m.result.valid
    assert "meter readings" in m.result.status
    assert m.idle.source == "given"


def test_monitor_refuses_bad_settings_and_use_before_start():
    with pytest.raises(BadInput, match="PUE"):
        Monitor("/dev/null", pue=0.5)
    with pytest.raises(BadInput, match="idle_s"):
        Monitor("/dev/null", idle_s=math.nan)
    with pytest.raises(BadInput, match="not started"):
        Monitor("/dev/null").begin_window("x")


def test_monitor_checks_its_arguments_like_the_cli():
    """The Python API refuses what the CLI refuses, each with one BadInput naming the argument: strings for
    numbers, booleans, NaN, infinities, 400-digit integers, fractions where a count is meant, None for a name."""
    huge = 10**400
    for kwargs, words in [
        ({"pue": "1.2"}, "pue"), ({"pue": math.nan}, "pue"), ({"pue": True}, "pue"), ({"pue": huge}, "pue"),
        ({"idle_s": "10"}, "idle_s"), ({"idle_s": math.inf}, "idle_s"), ({"idle_power_w": -1.0}, "idle_power_w"),
        ({"min_samples": 2.5}, "min_samples"), ({"min_samples": huge}, "min_samples"),
        ({"meter_timeout_s": math.nan}, "meter_timeout_s"), ({"meter_timeout_s": 0}, "meter_timeout_s"),
        ({"resolution_w": huge}, "resolution_w"), ({"grid": "RFCW"}, "grid"),
    ]:  # fmt: skip
        with pytest.raises(BadInput, match=words):
            Monitor("/dev/null", **kwargs)
    mon = Monitor("/dev/null")
    for name in (None, "", 3):
        with pytest.raises(BadInput, match="window name"):
            mon.begin_window(name)
    for iterations in (2.5, math.nan, True, 0, huge, "10"):
        with pytest.raises(BadInput, match="iterations"):
            mon.end_window("x", iterations=iterations)
