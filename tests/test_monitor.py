"""The Monitor API: a block of Python code measured at the wall through an emulated meter on a pty (the real
logger, store and pairing), against the emulator's own closed-form energy."""

import math
import threading
import time

import pytest

from edgebench.errors import BadInput
from edgebench.host.carbon import egrid_factor
from edgebench.host.meters.emulate import RampProfile, start_emulator
from edgebench.host.monitor import Monitor
from edgebench.records import read_run_records

INTERVAL_S = 0.05



class SwitchedProfile:
    """`idle_w` until the test sets `busy`, then `busy_w`: a training loop drawing more than idle."""

    identity = "switched"

    def __init__(self, idle_w: float, busy_w: float) -> None:
        self.idle_w, self.busy_w, self.busy = idle_w, busy_w, threading.Event()

    def watts_at(self, t_s: float) -> float:
        return self.busy_w if self.busy.is_set() else self.idle_w


def _ramp_energy(handle):
    import numpy as np

    t = np.array([s[0] for s in handle.sent], dtype=np.float64)
    w = np.array([s[1] for s in handle.sent])
    slope, intercept = np.polyfit((t - t[0]) / 1e9, w, 1)
    return lambda a, b: (b - a) / 1e9 * (intercept + slope * (((a + b) / 2 - t[0]) / 1e9))


def test_edgebench_exports_monitor_lazily():
    import edgebench

    assert edgebench.Monitor is Monitor
    with pytest.raises(AttributeError):
        edgebench.NoSuchThing  # noqa: B018


@pytest.mark.slow
def test_with_block_is_measured_within_1_percent(tmp_path):
    grid = egrid_factor("RFCW", 2019)
    with start_emulator("lines", RampProfile(30.0, 1.5), interval_s=INTERVAL_S) as meter:
        with Monitor(meter.port, protocol="lines", idle_s=1.0, out=tmp_path, grid=grid) as m:
            time.sleep(2.0)
        energy = _ramp_energy(meter)
    result = m.result
    assert result is not None and result.valid, result
    assert 2.0 <= result.duration_s < 2.5
    gross = energy(result.start_ns, result.end_ns)
    idle = next(r for r in read_run_records(tmp_path / "runs.jsonl") if r.kind == "idle")
    idle_w = energy(idle.window_start_ns, idle.window_end_ns) / (idle.duration_ns / 1e9)
    assert result.gross_energy_j == pytest.approx(gross, rel=0.01)
    assert result.idle_power_w == pytest.approx(idle_w, rel=0.01)
    assert result.net_energy_j == pytest.approx(gross - idle_w * result.duration_s, rel=0.01)
    assert result.co2_kg == pytest.approx(grid.co2_kg(gross), rel=0.01)
    assert result.samples >= 35
    assert (tmp_path / "meter.sqlite").is_file()
    assert any(line.startswith("energy") for line in result.lines())


@pytest.mark.slow
def test_named_windows_from_inside_a_training_loop(tmp_path):
    profile = SwitchedProfile(idle_w=20.0, busy_w=60.0)
    with start_emulator("lines", profile, interval_s=INTERVAL_S) as meter:
        mon = Monitor(meter.port, protocol="lines", idle_s=1.0, grid=egrid_factor()).start()
        tmp = mon.out
        try:
            time.sleep(0.2)  # the idle window's right edge is interpolated with the reading after it: keep it idle
            epochs = []
            for epoch in range(2):
                mon.begin_window(f"epoch{epoch}")
                profile.busy.set()
                time.sleep(1.5)
                profile.busy.clear()
                time.sleep(0.3)
                epochs.append(mon.end_window(f"epoch{epoch}", iterations=50))
            with pytest.raises(BadInput, match="no open window"):
                mon.end_window("epoch9")
            mon.begin_window("a")
            with pytest.raises(BadInput, match="already open"):
                mon.begin_window("a")
        finally:
            mon.stop()
        sent = list(meter.sent)
    for m in epochs:
        assert m.valid, m.status
        # truth: the emulator's own readings inside the window, held for one period each
        inside = [w for t, w, _ in sent if m.start_ns <= t < m.end_ns]
        truth = sum(inside) * INTERVAL_S
        assert m.gross_energy_j == pytest.approx(truth, rel=0.05)
        assert m.idle_power_w == pytest.approx(20.0)
        # net: 40 W above idle for the busy 1.5 s, nothing for the rest
        assert m.net_energy_j == pytest.approx(40.0 * 1.5, rel=0.05)
        assert m.net_j_per_iteration == pytest.approx(m.net_energy_j / 50)
    assert mon.out is None and not tmp.exists()  # the temporary folder is gone after stop()


@pytest.mark.slow
def test_a_window_too_short_for_the_meter_is_invalid_and_says_why():
    with start_emulator("lines", RampProfile(10.0, 0.0), interval_s=INTERVAL_S) as meter:
        with Monitor(meter.port, protocol="lines", idle_power_w=4.0) as m:
            time.sleep(0.1)
    assert not m.result.valid
    assert "meter readings" in m.result.status
    assert m.result.idle_source == "given"


def test_monitor_refuses_bad_settings_and_use_before_start():
    with pytest.raises(BadInput, match="PUE"):
        Monitor("/dev/null", pue=0.5)
    with pytest.raises(BadInput, match="idle_s"):
        Monitor("/dev/null", idle_s=math.nan)
    with pytest.raises(BadInput, match="not started"):
        Monitor("/dev/null").begin_window("x")
