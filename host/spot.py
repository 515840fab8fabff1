"""Windows of meters that are not sampled continuously, and the energy-counter cross-check.

Pairing hands a window here when its trace's `sampling` is not "continuous":
- "spot": readings a person typed off a display (the manual meter). The window's power is the mean of the
  readings inside it; a window with no reading is invalid, never guessed, and so is one with a single reading
  (its spread, how much the display moves, is unknown); the 10-reading minimum of sampled meters does not
  apply. Its standard uncertainty combines, in quadrature:
  the display's resolution r (each reading off by up to r: r / sqrt(3 N) on the mean), the meter's stated
  accuracy (the Kill-a-Watt P4400's 0.2 % of the reading, a bound: 0.2 % / sqrt(3), common to every reading),
  the spread between the readings (their standard error, sd / sqrt(N)), and the clock at both edges; each as
  power, times the window's duration.
- "counter": cumulative energy readings (the Kill-a-Watt's kWh counter typed at window edges). The energy is
  the counter interpolated linearly in time at each edge; each reading is off by up to one counter step s
  (s x sqrt(2/3) on the difference), and each interpolated edge by up to the counter's advance over the
  readings bracketing it times the nearer fraction (so a reading typed right at the edge costs nothing). A
  window over which the counter moved fewer than `MIN_COUNTER_STEPS` steps is invalid, with the figure.
`counter_check` compares a smart plug's own energy counter with the integral of its power over a span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgebench.records import MeterTrace

if TYPE_CHECKING:
    from .pairing import RecordFields, WindowResult

KILL_A_WATT_ACCURACY = 0.002  # the P4400's stated accuracy, 0.2 % of the reading
MIN_SPOT_READINGS = 2  # one reading says nothing of how much the display moves
MIN_COUNTER_STEPS = 10  # a counter window must see the counter move this many steps (then +-8 % at most)


def energy_step_wh(energy_wh: np.ndarray) -> float:
    """The counter's step: the coarsest decimal step (100 Wh down to 0.001 Wh) every reading sits on."""
    values = np.asarray(energy_wh, dtype=np.float64)
    if not len(values):
        return 0.0
    for step in (100.0, 10.0, 1.0, 0.1, 0.01, 0.001):
        # an absolute tolerance: typed or printed decimals, off only by float rounding (a relative one would
        # take 0.005 Wh for a multiple of 100 Wh)
        if np.allclose(np.round(values / step) * step, values, rtol=0, atol=1e-6):
            return step
    return 0.001


@dataclass(frozen=True)
class SpotWindow:
    """A window measured from typed readings or a counter, before it becomes a WindowResult."""

    samples: int
    coverage: float
    largest_gap_s: float
    energy_j: float
    energy_u_j: float
    mean_power_w: float
    reasons: tuple[str, ...]
    meter_fault: bool


def spot_window(trace: MeterTrace, start_ns: int, end_ns: int, clock_u_s: float) -> SpotWindow:
    """The mean of the readings inside [start, end] as the window's power (see the module docstring)."""
    duration_s = (end_ns - start_ns) / 1e9
    t = np.asarray(trace.t_ns, dtype=np.int64)
    i0, i1 = int(np.searchsorted(t, start_ns, "left")), int(np.searchsorted(t, end_ns, "right"))
    readings = np.asarray(trace.power_w[i0:i1], dtype=np.float64)
    n = len(readings)
    if n < MIN_SPOT_READINGS:
        got = "no reading was" if n == 0 else "only one reading was"
        reason = (f"{got} typed during the {duration_s:.3g} s window: type the display's watts two or more times "
                  "while it runs")  # fmt: skip
        mean = float(readings.mean()) if n else math.nan
        return SpotWindow(n, 0.0, duration_s, mean * duration_s, math.nan, mean, (reason,), True)
    mean_w = float(readings.mean())
    res_w = trace.resolution_w / math.sqrt(3 * n)
    accuracy_w = KILL_A_WATT_ACCURACY * mean_w / math.sqrt(3)
    spread_w = float(readings.std(ddof=1)) / math.sqrt(n)
    clock_w = mean_w * math.sqrt(2) * clock_u_s / duration_s if duration_s > 0 else 0.0
    u_w = math.sqrt(res_w**2 + accuracy_w**2 + spread_w**2 + clock_w**2)
    inside = t[i0:i1]
    largest = max(np.diff(np.concatenate(([start_ns], inside, [end_ns])))) / 1e9
    return SpotWindow(n, 1.0, float(largest), mean_w * duration_s, u_w * duration_s, mean_w, (), False)


def counter_window(trace: MeterTrace, start_ns: int, end_ns: int, clock_u_s: float) -> SpotWindow:
    """The counter's advance over [start, end], interpolated at the edges (see the module docstring)."""
    duration_s = (end_ns - start_ns) / 1e9
    t = np.asarray(trace.t_ns, dtype=np.int64)
    e = np.asarray(trace.energy_wh if trace.energy_wh is not None else [], dtype=np.float64)
    n = len(t)
    before = int(np.searchsorted(t, start_ns, "right")) - 1
    after = int(np.searchsorted(t, end_ns, "left"))
    inside = int(np.searchsorted(t, end_ns, "right") - np.searchsorted(t, start_ns, "left"))
    reasons = []
    if n == 0 or len(e) != n:
        reasons.append("no kWh counter reading at all: type the counter at the start and end of each window")
    else:
        if before < 0:
            reasons.append("no kWh counter reading at or before the window's start: type it before the window starts")
        if after >= n:
            reasons.append("no kWh counter reading at or after the window's end: type it when the window ends")
    if reasons:
        return SpotWindow(inside, 0.0, duration_s, math.nan, math.nan, math.nan, tuple(reasons), True)
    if np.any(np.diff(e[before : after + 1]) < 0):
        reason = "the kWh counter went down inside the window: a typo, or the meter was reset"
        return SpotWindow(inside, 0.0, duration_s, math.nan, math.nan, math.nan, (reason,), True)
    step_wh = energy_step_wh(e)
    t_f = t.astype(np.float64)
    e_start, e_end = float(np.interp(start_ns, t_f, e)), float(np.interp(end_ns, t_f, e))
    energy_wh = e_end - e_start

    def edge_u_wh(edge: int) -> float:
        i = int(np.searchsorted(t, edge, "right")) - 1
        if i + 1 >= n or t[i] == edge:
            return 0.0
        f = (edge - t[i]) / (t[i + 1] - t[i])
        return float(e[i + 1] - e[i]) * min(f, 1 - f) / math.sqrt(3)

    mean_w = energy_wh * 3600 / duration_s if duration_s > 0 else math.nan
    u_wh = math.sqrt(2 / 3 * step_wh**2 + edge_u_wh(start_ns) ** 2 + edge_u_wh(end_ns) ** 2)
    clock_j = mean_w * math.sqrt(2) * clock_u_s if math.isfinite(mean_w) else 0.0
    u_j = math.hypot(u_wh * 3600, clock_j)
    steps = energy_wh / step_wh if step_wh > 0 else math.inf
    if steps < MIN_COUNTER_STEPS:
        from edgebench.units import duration

        need_wh = MIN_COUNTER_STEPS * step_wh
        moved = (f"the kWh counter moved {energy_wh / 1000:.3g} kWh over this {duration(duration_s)} window "
                 f"({steps:.2g} steps of {step_wh / 1000:g} kWh: +-{u_wh / energy_wh:.0%})" if energy_wh > 0 else
                 f"the kWh counter did not move over this {duration(duration_s)} window")  # fmt: skip
        at = (f"; at the {mean_w:.3g} W seen here, windows of {duration(need_wh * 3600 / mean_w)} or more"
              if mean_w > 0 else "")  # fmt: skip
        reasons.append(f"{moved}; a window needs >= {MIN_COUNTER_STEPS} steps ({need_wh / 1000:g} kWh){at}")
    return SpotWindow(inside, 1.0, 0.0, energy_wh * 3600, u_j, mean_w, tuple(reasons), False)


def pair_window(
    trace: MeterTrace,
    start_ns: int,
    end_ns: int,
    clock_u_s: float,
    idle_w: float,
    idle_u_w: float,
    common: RecordFields,
) -> WindowResult:
    """The pairing's WindowResult for a "spot" or "counter" trace (called by `pairing._pair_window`)."""
    from .pairing import WindowResult, WindowState

    measure = spot_window if trace.sampling == "spot" else counter_window
    w = measure(trace, start_ns, end_ns, clock_u_s)
    duration_s = (end_ns - start_ns) / 1e9
    if math.isfinite(idle_w) and math.isfinite(w.energy_j):
        net_j, net_u_j = w.energy_j - idle_w * duration_s, math.hypot(w.energy_u_j, idle_u_w * duration_s)
    else:
        net_j = net_u_j = math.nan
    return WindowResult(
        start_host_ns=start_ns, end_host_ns=end_ns, duration_s=duration_s, samples=w.samples, coverage=w.coverage,
        largest_gap_s=w.largest_gap_s, gross_energy_j=w.energy_j, gross_energy_u_j=w.energy_u_j,
        mean_power_w=w.mean_power_w, net_energy_j=net_j, net_energy_u_j=net_u_j,
        state=WindowState.INVALID if w.reasons else WindowState.OK, reason="; ".join(w.reasons),
        meter_fault=w.meter_fault, idle_power_w=idle_w, idle_power_u_w=idle_u_w, **common,
    )  # fmt: skip


# --- a meter's own energy counter against the integrated power ------------------------------------------------


@dataclass(frozen=True)
class CounterCheck:
    """Over [start, end] (the first and last readings carrying the counter): the counter's advance and the
    integral of the power readings, both in joules, and the counter's step."""

    start_ns: int
    end_ns: int
    counter_j: float
    integrated_j: float
    step_j: float
    resets: int  # times the counter went back (the plug restarted)

    @property
    def difference(self) -> float:
        """(integrated - counter) / counter."""
        return (self.integrated_j - self.counter_j) / self.counter_j if self.counter_j > 0 else math.nan

    @property
    def steps(self) -> float:
        return self.counter_j / self.step_j if self.step_j > 0 else math.inf


def counter_check(
    path: str | Path, start_ns: int | None = None, end_ns: int | None = None, address: str | None = None
) -> CounterCheck | None:
    """The meter's energy counter against its integrated power over a span of a log; None when the logger did not
    declare a counter of the meter's own (`energy_step_wh` in the meta: a Tweet-a-Watt's energy_wh is the
    decoder's own sum of its readings, nothing to check against) or the span has fewer than two counter readings."""
    from edgebench.energy import integrate_window

    from .store import load_energy, load_trace

    step_wh = _meta_float(Path(path), "energy_step_wh")
    if step_wh is None:
        return None
    t, e = load_energy(path, start_ns, end_ns, address)
    if len(t) < 2 or t[-1] <= t[0]:
        return None
    trace = load_trace(path, int(t[0]), int(t[-1]), address)
    if trace.sampling != "continuous" or len(trace.t_ns) < 2:
        return None
    steps = np.diff(e)
    resets = int(np.sum(steps < 0))
    counter_wh = float(np.sum(steps[steps > 0]))
    integral = integrate_window(trace.t_ns, trace.power_w, int(t[0]), int(t[-1]))
    return CounterCheck(int(t[0]), int(t[-1]), counter_wh * 3600, integral.energy_j, step_wh * 3600, resets)


def _meta_float(path: Path, key: str) -> float | None:
    """A number the logger kept in a SQLite log's meta (a smart plug's counter step), else None."""
    import sqlite3

    from .store import sqlite_uri

    try:
        with open(path, "rb") as stream:
            if stream.read(16) != b"SQLite format 3\x00":
                return None
        db = sqlite3.connect(sqlite_uri(path), uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
        value = float(row[0]) if row else math.nan
    except (OSError, sqlite3.Error, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def counter_lines(check: CounterCheck) -> list[str]:
    """The cross-check in words (what `meter show` and the end of a session print)."""
    span_s = (check.end_ns - check.start_ns) / 1e9
    step_wh = check.step_j / 3600
    head = (
        f"energy counter {check.counter_j / 3600:.4g} Wh over {span_s:.0f} s (the meter's own, in {step_wh:.3g} Wh "
        f"steps); the integrated power {check.integrated_j / 3600:.4g} Wh"
    )
    lines = []
    if check.steps < MIN_COUNTER_STEPS:
        lines.append(f"{head}: too few counter steps ({check.steps:.3g}) to compare; longer logs do")
    else:
        bound = 1 / check.steps
        lines.append(f"{head}: {check.difference:+.2%} (the counter's steps alone allow +-{bound:.2%})")
    if check.resets:
        lines.append(f"the counter went back {check.resets} time(s) (the plug restarted?); only its rises are counted")
    return lines


def counter_note(path: str | Path, start_ns: int, end_ns: int, address: str | None = None) -> str:
    """One line for the end of a session (empty when the meter has no counter or the log is unreadable)."""
    from edgebench.errors import BadInput

    try:
        check = counter_check(path, start_ns, end_ns, address)
    except BadInput:
        return ""
    return "meter check: " + "; ".join(counter_lines(check)) if check is not None else ""
