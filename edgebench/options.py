"""Click parameter types shared by every command.

`finite()` is the one float type for options: click's own `float` accepts `nan`, `inf` and `1e309`, which then
crash a command long after it started (or, worse, give a table of NaN). Every float option goes through here so
the user hears about it at once, as a usage error (exit code 2) that names the option.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
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


def positive(max: float | None = None) -> FiniteFloat:  # noqa: A002
    """A finite float > 0 (durations, periods, intervals), at most `max`."""
    return FiniteFloat(min=0, min_open=True, max=max)


def non_negative(max: float | None = None) -> FiniteFloat:  # noqa: A002
    """A finite float >= 0 (warm-up seconds, resolutions that may be zero), at most `max`."""
    return FiniteFloat(min=0, max=max)


# Upper bounds of options. A value beyond one is a typo, never a measurement, and refused as a usage error at
# once: unbounded, 1e308 seconds overflow a thread's wait and a 400-digit thread count overflows the runtime's C
# int, long after the command started. Options without one are checked where their results are computed (the
# lifetime projection's --per-day and --years, carbon's --hours: a result that overflows is one line).
MAX_SECONDS = 366 * 86_400.0  # a meter log or an emulator: a year of logging
MAX_TIMEOUT_S = 86_400.0  # a wait or a time limit: a day
MAX_THREADS = 1024  # runner threads: more than any edge board's cores
MAX_POWER_W = 100_000.0  # watts: beyond any wall socket (a Kill-a-Watt's limit is 1875 W, a lines meter's 50 kW)
MAX_REPEAT = 1000  # windows per engine


# --- options that mean the same on the device side and the host side ------------------------------------------
# Each is defined once here and put on every command that takes it, so that a name, type, default or help text
# cannot drift apart between `bench`, `agent`, `measure`, `eval`, `build-engines`, `train-probe` and `study`.

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

DEFAULT_ENGINES_DIR = Path("engines-out")  # what build-engines writes and every engine user reads by default
DEFAULT_INPUT_RESOLUTION = "32x32"  # a probe's and a model-size study's input HxW (the digits are 8x8, upscaled)
ENGINES_HELP = "Engines directory, as `edgebench build-engines --out` wrote it"
SENSOR_NAMES = "ina3221, jtop, tegrastats, nvml, rapl, pi5, estimate"  # agent/sensors/base.py PROBE_ORDER


def _help(base: str, extra: str | None) -> str:
    return f"{base}{'; ' + extra if extra else ''}."


def engines_dir_option(extra: str | None = None) -> Decorator:
    """--engines DIRECTORY (into `engines_dir`), default engines-out; `extra` adds what it means to the command."""
    return click.option(
        "--engines", "engines_dir", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_ENGINES_DIR,
        show_default=True, help=_help(ENGINES_HELP, extra),
    )  # fmt: skip


def engine_names_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--engine NAME (into `engine_names`, repeatable): which engines of the manifest; default all."""
    return click.option(
        "--engine", "engine_names", multiple=True, metavar="NAME", help="Only this engine (repeatable); default all."
    )(f)


def threads_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--threads N: the runner's intra-op threads (on the agent, for measure)."""
    return click.option(
        "--threads", type=click.IntRange(min=1, max=MAX_THREADS), help="Intra-op threads of the engine runner (default: the backend's)."
    )(f)


def sensor_option(default: str = "auto", extra: str | None = None) -> Decorator:
    """--sensor auto|none|NAME: the on-board power source sampled during each window."""
    return click.option(
        "--sensor", default=default, show_default=True, metavar="auto|none|NAME",
        help=_help(
            "On-board power source sampled during each window: auto (the first found, see `edgebench sensors`), "
            f"none, or one of {SENSOR_NAMES}", extra,
        ),
    )  # fmt: skip


def token_option(role: str) -> Decorator:
    """--token (or $EDGEBENCH_AGENT_TOKEN): the TCP agent's shared secret; `role` says who sends or checks it."""
    from edgebench.protocol import TOKEN_ENV

    return click.option("--token", envvar=TOKEN_ENV, help=f"Shared secret of a TCP agent: {role} (or ${TOKEN_ENV}).")


def input_resolution_option(*, multiple: bool = False, required: bool = False, extra: str | None = None) -> Decorator:
    """--resolution HxW, the engine's input size: one (into `resolution`, default 32x32) or, with `multiple`, several
    (into `resolutions`, repeatable or comma-separated). Not the meter's --resolution in W (host/options.py)."""
    if multiple:
        return click.option(
            "--resolution", "resolutions", multiple=True, required=required, metavar="HxW[,HxW...]",
            help=_help("Input resolutions HxW (repeatable, or comma-separated), e.g. 120x392,240x784", extra),
        )  # fmt: skip
    return click.option(
        "--resolution", default=DEFAULT_INPUT_RESOLUTION, show_default=True, metavar="HxW",
        help=f"Input resolution HxW{' ' + extra if extra else ''}.",
    )  # fmt: skip
