"""Numbers as people read them: the one place values become text (tables, progress lines, notes).

Units stay in field names (`_ns`, `_w`, `_j`) and are converted here, at the edge. A value that is missing or
not finite prints as "-", never as "nan".
"""

from __future__ import annotations

import math

MISSING = "-"


def finite(value: float | None) -> bool:
    """True for a real, finite number (not None, NaN or infinity)."""
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def num(value: float | None, spec: str) -> str:
    """`value` with a format spec (".3g", ".1%"), or "-" when it is missing or not finite."""
    return format(value, spec) if finite(value) else MISSING


def plus_minus(value: float, u: float) -> str:
    """`0.5500 ± 0.0050`: the value to the decimal place of the uncertainty's second significant digit."""
    if not finite(value):
        return MISSING
    if not (finite(u) and u > 0):
        return f"{value:.4g}"
    decimals = min(max(0, 1 - math.floor(math.log10(u))), 15)
    return f"{value:.{decimals}f} ± {u:.{decimals}f}"


def count(n: int, word: str) -> str:
    """`1 engine`, `3 engines`: a count with its noun in singular or plural."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """`45s`, `3m05s`: a time left or taken, to the second."""
    seconds = max(0.0, seconds) if finite(seconds) else 0.0
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def time_unit(ms: float) -> tuple[str, float]:
    """A display unit for a duration in ms: µs below 1 ms, s from 1000 ms (hyperfine-style)."""
    if not math.isnan(ms) and ms < 1.0:
        return "µs", 1e3
    if not math.isnan(ms) and ms >= 1000.0:
        return "s", 1e-3
    return "ms", 1.0


def fmt_time(ms: float, unit: tuple[str, float] | None = None) -> str:
    """A duration given in ms, shown in `unit` (chosen from the value when None)."""
    if math.isnan(ms):
        return "n/a"
    name, scale = unit or time_unit(ms)
    value = ms * scale
    digits = 1 if value >= 100 else 2 if value >= 10 else 3
    return f"{value:.{digits}f} {name}"


def fmt_rate(sps: float) -> str:
    """A throughput in samples/s."""
    if math.isnan(sps):
        return "n/a"
    return f"{sps:,.1f} samples/s" if sps < 1000 else f"{sps:,.0f} samples/s"
