"""The true energy of an emulated meter's power profile, and how far edgebench's figure may honestly be from it.

Tests of `measure`, `run` and `Monitor` drive an emulated meter on a pty and compare edgebench's joules with the
profile's own. The emulator logs what it sent (`handle.sent`: send time, watts); for a ramp, a line through those
points gives the power at any host time, and its integral is closed-form. No edgebench integration code is used.

The tolerance is derived, not tuned. Edgebench integrates the stored readings: linear between them, interpolated
at the window edges. For a linear profile, that interpolant differs from the true power by no more than the
largest deviation of a stored reading from the true power at the reading's host timestamp. That deviation is the
meter's resolution (the emulator prints watts to 0.01 W) plus the profile's slope times the reading's arrival
delay (a loaded machine reads the pty late, and the logger stamps the reading when it reads it). So

    |gross measured - gross true| <= max deviation x window length,

and a net figure (gross minus the idle power, itself the mean of such readings, times the window's length) is off
by at most twice that. The meter's stated resolution is in the deviation; the clock's uncertainty is not (the
tests' agents share the host's clock), nor is the spread of repeated windows (it is the ramp's, not an error).

A profile that steps (an engine's watts switched on and off by the session) is linear inside each window, but a
step just past a window's end (the power falls when the engine stops, before the next reading) reaches into the
window through the edge's interpolation between the two readings that straddle it: by at most
|p_after - p_before| x (t_after - t_before) / 2 joules per edge (`edge_straddle_j`), a meter's sampling at the
edge, beyond what the deviation bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.host.store import load_trace


@dataclass(frozen=True)
class Ramp:
    """The emulated ramp as a line in host time: watts = intercept + slope x (t - t0)."""

    t0_ns: float
    intercept_w: float
    slope_w_per_s: float

    @classmethod
    def of(cls, handle) -> Ramp:
        t = np.array([s[0] for s in handle.sent], dtype=np.float64)
        w = np.array([s[1] for s in handle.sent], dtype=np.float64)
        slope, intercept = np.polyfit((t - t[0]) / 1e9, w, 1)
        return cls(float(t[0]), float(intercept), float(slope))

    def power_w(self, t_ns):
        return self.intercept_w + self.slope_w_per_s * ((np.asarray(t_ns, dtype=np.float64) - self.t0_ns) / 1e9)

    def energy_j(self, start_ns: int, end_ns: int) -> float:
        """The closed-form integral over [start, end] (host ns)."""
        return (end_ns - start_ns) / 1e9 * float(self.power_w((start_ns + end_ns) / 2))


def reading_deviation_w(log: Path, truth: Ramp, start_ns: int, end_ns: int) -> float:
    """The largest |stored watts - true watts at the reading's host time| over the readings that the windows in
    [start_ns, end_ns] use: those inside and the one on each side (the edges are interpolated with them)."""
    trace = load_trace(log)
    t, p = trace.t_ns, trace.power_w
    first = max(int(np.searchsorted(t, start_ns, side="left")) - 1, 0)
    last = min(int(np.searchsorted(t, end_ns, side="right")) + 1, len(t))
    assert last - first >= 2, f"no readings around [{start_ns}, {end_ns}] in {log}"
    return float(np.max(np.abs(p[first:last] - truth.power_w(t[first:last]))))


def edge_straddle_j(log: Path, start_ns: int, end_ns: int) -> float:
    """The most a step between the two readings that straddle each edge of [start_ns, end_ns] can move the
    window's interpolated energy: sum over both edges of |p_after - p_before| x (t_after - t_before) / 2."""
    trace = load_trace(log)
    t, p = trace.t_ns, trace.power_w
    total = 0.0
    for edge in (start_ns, end_ns):
        after = int(np.searchsorted(t, edge, side="left"))  # the first reading at or after the edge
        if 0 < after < len(t):
            total += abs(float(p[after] - p[after - 1])) * float(t[after] - t[after - 1]) / 1e9 / 2
    return total
