"""Click parameter types shared by every command.

`finite()` is the one float type for options: click's own `float` accepts `nan`, `inf` and `1e309`, which then
crash a command long after it started (or, worse, give a table of NaN). Every float option goes through here so
the user hears about it at once, as a usage error (exit code 2) that names the option.
"""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloat(click.ParamType):
    """A finite float, optionally bounded; `nan`, `inf` and overflowing literals are refused."""

    name = "float"

    def __init__(
        self,
        min: float | None = None,  # noqa: A002 - mirrors click.FloatRange
        max: float | None = None,  # noqa: A002
        min_open: bool = False,
        max_open: bool = False,
    ) -> None:
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number.", param, ctx)
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a number.", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        low_bad = self.min is not None and (number <= self.min if self.min_open else number < self.min)
        high_bad = self.max is not None and (number >= self.max if self.max_open else number > self.max)
        if low_bad or high_bad:
            self.fail(f"{value!r} is not in the range {self._describe()}.", param, ctx)
        return number

    def _describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"x{'>' if self.min_open else '>='}{self.min:g}")
        if self.max is not None:
            parts.append(f"x{'<' if self.max_open else '<='}{self.max:g}")
        return " and ".join(parts) or "of finite numbers"

    def __repr__(self) -> str:
        return f"FiniteFloat({self._describe()})"


def finite(
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    min_open: bool = False,
    max_open: bool = False,
) -> FiniteFloat:
    """The float option type: finite, and within [min, max] (open ends with `min_open`/`max_open`)."""
    return FiniteFloat(min=min, max=max, min_open=min_open, max_open=max_open)


def positive() -> FiniteFloat:
    """A finite float > 0 (durations, periods, intervals)."""
    return FiniteFloat(min=0, min_open=True)


def non_negative() -> FiniteFloat:
    """A finite float >= 0 (warm-up seconds, resolutions that may be zero)."""
    return FiniteFloat(min=0)
