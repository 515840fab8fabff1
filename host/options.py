"""The host's pairing and carbon options, each defined once for every command that takes it (`pair`, `report`,
`carbon`, `measure`, `run`, `train-estimate`), and the defaults they show, which the library uses too (`pair()`,
`Monitor`, `MeasureConfig`). The meter's own options (port, protocol, address, timeout) are in meters/options.py.

numpy-free: `edgebench pair --help` imports this, and pairing.py (numpy) takes MIN_SAMPLES from here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgebench.options import MAX_POWER_W, finite, non_negative
from edgebench.protocol import MAX_WINDOW_S

from .carbon import MAX_PUE

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

MIN_SAMPLES = 10  # meter readings inside a window; so the shortest valid window is 10 meter periods
MAX_MIN_SAMPLES = 10**6  # readings a window must hold: a million is a day at 10 readings/s (more is a typo)
DEFAULT_PUE = 1.0  # a device on a desk: no facility overhead
DEFAULT_IDLE_S = 10.0  # the idle baseline: at least this, and at least the meter's shortest valid window
FORMAT_CHOICE = click.Choice(["table", "csv", "json", "md"])
SORT_HELP = (
    "Rank by this column (default gross_j_sample: wall J per sample; net_j_sample, gross_j and net_j per "
    "execution, latency, co2, any CSV column; -COL descending)."
)
PUE_HELP = "Facility overhead multiplier (PUE) for energy and CO2: 1 for a desk, 1.58 a 2018 data centre"


def grid_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--grid/--egrid/--country/--intensity: one grid factor (resolved by carbon.resolve_grid)."""
    f = click.option("--intensity", help="Explicit intensity with units: 400g/kWh, 0.4kg/kWh, 1067.7lb/MWh.")(f)
    f = click.option(
        "--country", help="Country average (OWID/Ember 2023): ISO-3 code (DEU) or name (Germany)."
    )(f)
    f = click.option("--egrid", "egrid", metavar="YEAR", help="eGRID edition: 2019, 2022 or 2023 (default latest).")(f)
    return click.option("--grid", metavar="SUBREGION", help="EPA eGRID subregion, e.g. RFCW (default: US average).")(f)


def sort_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--sort COLUMN: the ranked figure (`edgebench.host.table`), the same on pair, report and measure."""
    return click.option("--sort", metavar="COLUMN", help=SORT_HELP)(f)


def format_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--format table|csv|json|md (into `fmt`): how the ranked table is printed."""
    return click.option(
        "--format", "fmt", type=FORMAT_CHOICE, default="table", show_default=True,
        help="How the ranked table is printed on stdout.",
    )(f)  # fmt: skip


def pue_option(default_words: str | None = None) -> Decorator:
    """--pue (>= 1): DEFAULT_PUE, or, given `default_words`, no default value (None) and those words saying what
    the command takes instead (the session's, the run's)."""
    if default_words is None:
        return click.option("--pue", type=finite(min=1, max=MAX_PUE), default=DEFAULT_PUE, show_default=True, help=f"{PUE_HELP}.")
    return click.option("--pue", type=finite(min=1, max=MAX_PUE), help=f"{PUE_HELP} (default: {default_words}).")


def idle_option(when: str = "") -> Decorator:
    """--idle S (into `idle_s`): the idle baseline's length; `when` says when it is measured."""
    return click.option(
        "--idle", "idle_s", type=finite(min=0, max=MAX_WINDOW_S),
        help=f"Idle baseline seconds{when} (default: the meter's minimum, at least {DEFAULT_IDLE_S:g} s; 0: none, "
        "and no net figures).",
    )  # fmt: skip


def meter_resolution_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--resolution W (into `resolution_w`): the meter's resolution, not the input HxW of edgebench.options."""
    return click.option(
        "--resolution", "resolution_w", type=non_negative(max=MAX_POWER_W), metavar="W",
        help="Meter resolution in W (default: what the meter, or its log, says).",
    )(f)  # fmt: skip


def min_samples_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--min-samples N, default MIN_SAMPLES: the meter readings a valid window holds."""
    return click.option(
        "--min-samples", type=click.IntRange(min=2, max=MAX_MIN_SAMPLES), default=MIN_SAMPLES, show_default=True,
        help="Meter readings a window needs to be valid.",
    )(f)  # fmt: skip


def emissions_csv_option(what: str) -> Decorator:
    """--emissions-csv FILE: append `what` (the window, the valid windows) to a CodeCarbon-style emissions.csv."""
    return click.option(
        "--emissions-csv", type=click.Path(path_type=Path, dir_okay=False),
        help=f"Also append {what} to this CodeCarbon-style emissions.csv (its columns; no CodeCarbon needed).",
    )  # fmt: skip
