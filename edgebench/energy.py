"""Energy of a time window from timestamped power samples: the one integrator for wall meters and rails.

Trapezoid rule over the samples inside the window, with the power at each window edge linearly interpolated
from the samples either side of it, never a running average. Times are int64 nanoseconds; they are made relative
to the window start before becoming floats, so epoch-sized timestamps lose no precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowIntegral:
    """Energy over [start, end] and what it rests on."""

    energy_j: float
    mean_power_w: float  # energy / covered time
    window_s: float  # the window asked for
    covered_s: float  # the part of the window that lies between the first and last sample
    samples: int  # samples with start <= t <= end
    largest_gap_s: float  # longest stretch inside the covered window with no sample (edges included)

    @property
    def coverage(self) -> float:
        """Fraction of the window that samples span (1.0 when samples exist on both sides of it)."""
        return self.covered_s / self.window_s if self.window_s > 0 else 0.0


def _interp(t_rel_s: np.ndarray, p: np.ndarray, i: int, at_s: float) -> float:
    """Power at `at_s` from the samples i-1 and i that bracket it."""
    t0, t1 = t_rel_s[i - 1], t_rel_s[i]
    if t1 == t0:
        return float(p[i])
    return float(p[i - 1] + (p[i] - p[i - 1]) * (at_s - t0) / (t1 - t0))


def integrate_window(t_ns: np.ndarray, power_w: np.ndarray, start_ns: int, end_ns: int) -> WindowIntegral:
    """Integrate power over [start_ns, end_ns] (trapezoid, edges interpolated).

    `t_ns` must be sorted ascending. Where the window reaches past the first or last sample, only the covered
    part is integrated and `coverage` drops below 1: the caller decides whether such a window is valid.
    """
    if end_ns <= start_ns:
        raise ValueError("integrate_window: window end must be after its start")
    t = np.asarray(t_ns, dtype=np.int64)
    p = np.asarray(power_w, dtype=np.float64)
    window_s = (end_ns - start_ns) / 1e9
    n = len(t)
    if n == 0:
        return WindowIntegral(0.0, float("nan"), window_s, 0.0, 0, window_s)
    lo = int(np.searchsorted(t, start_ns, side="left"))  # first sample >= start
    hi = int(np.searchsorted(t, end_ns, side="right"))  # one past the last sample <= end
    inside = hi - lo
    cover_start = max(start_ns, int(t[0]))
    cover_end = min(end_ns, int(t[-1]))
    if cover_end <= cover_start:
        return WindowIntegral(0.0, float("nan"), window_s, 0.0, inside, window_s)

    # Relative seconds from the window start for the samples we need (one either side of the window).
    a = max(lo - 1, 0)
    b = min(hi + 1, n)
    t_rel = (t[a:b] - start_ns).astype(np.float64) / 1e9
    pw = p[a:b]
    cs = (cover_start - start_ns) / 1e9
    ce = (cover_end - start_ns) / 1e9

    times = [cs]
    powers = []
    # edge at cover start
    j = lo - a  # index in the slice of the first sample >= start
    powers.append(float(pw[j]) if j == 0 or t_rel[j] == cs else _interp(t_rel, pw, j, cs))
    mid_t = t_rel[j : j + inside]
    mid_p = pw[j : j + inside]
    keep = (mid_t > cs) & (mid_t < ce)
    times.extend(mid_t[keep].tolist())
    powers.extend(mid_p[keep].tolist())
    # edge at cover end
    k = j + inside  # index in the slice of the first sample > end (or one past)
    if k >= len(t_rel) or t_rel[k - 1] == ce:
        end_power = float(pw[k - 1])
    else:
        end_power = _interp(t_rel, pw, k, ce)
    times.append(ce)
    powers.append(end_power)

    tt = np.asarray(times)
    pp = np.asarray(powers)
    energy_j = float(np.sum((pp[1:] + pp[:-1]) * np.diff(tt)) / 2.0)
    covered_s = ce - cs
    gaps = np.diff(tt)
    largest_gap_s = float(gaps.max()) if len(gaps) else covered_s
    # time outside the covered part counts as a gap too: nothing was heard there
    largest_gap_s = max(largest_gap_s, cs, window_s - ce)
    return WindowIntegral(energy_j, energy_j / covered_s, window_s, covered_s, inside, largest_gap_s)
