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
    """`value` with a format spec (".3g", ".1%"), or "-" when it is missing or not finite; never `-0`."""
    return _unsigned_zero(format(value, spec)) if finite(value) else MISSING


ZERO_RELATIVE = 1e-9  # a value this small against its uncertainty (or 1e-12 absolute) is zero, not float noise
APPROX_ZERO = "≈0"


def _unsigned_zero(text: str) -> str:
    """`-0.0000` -> `0.0000`: a number that rounds to zero has no sign."""
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text.split("e")[0]) else text


def is_zero(value: float, u: float | None = None) -> bool:
    """Zero to float precision: |value| under 1e-9 of its uncertainty, or under 1e-12 when it has none."""
    scale = u if finite(u) and u is not None and u > 0 else 1e-3
    return finite(value) and abs(value) < ZERO_RELATIVE * scale


def plus_minus(value: float, u: float) -> str:
    """`0.5500 ± 0.0050`: the value to the decimal place of the uncertainty's second significant digit. A value
    that is zero to float precision prints as 0 (never `-0.0000` or `1e-15`)."""
    if not finite(value):
        return MISSING
    if is_zero(value, u):
        value = 0.0
    if not (finite(u) and u > 0):
        return "0" if value == 0 else _unsigned_zero(f"{value:.4g}")
    decimals = min(max(0, 1 - math.floor(math.log10(u))), 15)
    return f"{_unsigned_zero(f'{value:.{decimals}f}')} ± {u:.{decimals}f}"


def within(value: float, u: float, sigmas: float = 2.0) -> bool:
    """Whether `value` is zero within `sigmas` standard uncertainties."""
    return finite(value) and finite(u) and abs(value) <= sigmas * u


def signed_figure(value: float, u: float, *, below: bool = False, sigmas: float = 2.0) -> str:
    """A figure that may be near or below zero (a net energy): `≈0 (± 0.0018)` when zero lies within `sigmas`
    of it, `<0 !` when `below` (negative beyond its uncertainty: a warning, never a result), else `plus_minus`."""
    if not finite(value):
        return MISSING
    if below:
        return "<0 !"
    if is_zero(value, u):
        return "0" if not (finite(u) and u > 0) else f"0 (± {u:.2g})"
    if within(value, u, sigmas) and u > 0:
        return f"{APPROX_ZERO} (± {u:.2g})"
    return plus_minus(value, u)


def ratio(a: float, u_a: float, b: float, u_b: float) -> tuple[float, float]:
    """b / a with its standard uncertainty (relative uncertainties in quadrature); nan when a or b is not > 0."""
    if not (finite(a) and finite(b) and a > 0 and b > 0):
        return math.nan, math.nan
    r = b / a
    rel = math.hypot(u_a / a if finite(u_a) else 0.0, u_b / b if finite(u_b) else 0.0)
    return r, r * rel


# Characters that must not reach a page or a plot as they are: C0/C1 controls (NUL included) and the Unicode
# bidirectional controls, which can make a name read backwards (CVE-2021-42574, "Trojan Source").
_UNSAFE = {
    *range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, *range(0x80, 0xA0),
    0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),
}
_VISIBLE = {c: f"\\u{c:04x}" if c > 0xFF else f"\\x{c:02x}" for c in _UNSAFE}


def visible(text: str) -> str:
    """`text` with control and bidirectional-override characters written out visibly (`\\x00`, `\\u202e`)."""
    return text.translate(_VISIBLE)


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
