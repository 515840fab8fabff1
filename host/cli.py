"""`edgebench pair` (run records + a meter log, offline), `edgebench report` (re-render a measure directory) and
`edgebench carbon` (energy to kWh and CO2 with a grid factor).

Results go to stdout (the ranked table, CSV, JSON or Markdown); diagnostics and warnings to stderr.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgebench.console import note, warn
from edgebench.errors import BadInput
from edgebench.options import non_negative, positive

from .meters.options import address_option
from .options import (
    emissions_csv_option,
    format_option,
    grid_options,
    meter_resolution_option,
    min_samples_option,
    pue_option,
    sort_option,
)

if TYPE_CHECKING:
    from edgebench.errors import MissingDependency
    from edgebench.host.plot import RenderedFigure
_OFFSET_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_clock_offset(text: str) -> int:
    """`0`, `-1500000` (ns), `12.5ms`, `300us`, `-1.2s` -> host minus agent, in integer nanoseconds."""
    match = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)?\s*", text)
    if match is None:
        raise BadInput(f"clock offset {text!r} is not a time: write it like 0, 1500000 (ns), 12.5ms or -1.2s")
    value, unit = match.group(1), match.group(2)
    if unit is None and "." in value:
        raise BadInput(
            f"clock offset {text!r} without a unit must be whole nanoseconds: add ms or s, e.g. {text}ms"
        )
    return round(float(value) * _OFFSET_UNITS_NS[unit or "ns"])


def _emit(lines: list[str]) -> None:
    click.echo("\n".join(lines))


def _load_trace(path: Path, resolution_w: float | None, address: str | None = None, records=None, clock=None):
    """The meter log through the store's loader (SQLite or CSV), one sensor's readings when `address` is given
    (a log with several must name one), with the resolution overridden if given. Given the run records and their
    clock, only what their windows need (`store.load_windows`): a month-long log costs what the windows hold."""
    import dataclasses

    from edgebench.host.store import load_trace, load_windows

    if records is None:
        trace = load_trace(path, address=address)
    else:
        from edgebench.host.measuredir import host_spans

        trace = load_windows(path, host_spans(records, clock), address=address)
    if resolution_w is not None:
        trace = dataclasses.replace(trace, resolution_w=resolution_w)
    return trace


def _report_invalid(result) -> None:
    bad = [w for w in result.windows if not w.valid]
    if bad:
        warn(
            f"{len(bad)} of {len(result.windows)} windows are invalid or failed and are left out of the figures "
            "(see the status column; --format json lists every reason)"
        )
    if result.idle is None:
        warn("no valid idle window: net figures need an idle baseline (measure one with `edgebench measure`)")
    from edgebench.host.table import result_warnings

    for message in result_warnings(result):
        warn(message)


def _append_emissions(result, path: Path | None) -> None:
    """Every valid engine window of `result` as a row of the CodeCarbon-style emissions.csv at `path`."""
    if path is None:
        return
    from edgebench.host.codecarbon_bridge import pairing_rows, write_rows

    rows = pairing_rows(result)
    if not rows:
        warn(f"not appended to {path}: no valid window has an energy to report")
        return
    write_rows(path, rows)
    note(f"appended {len(rows)} windows to {path}")


def _render(result, fmt: str, sort: str | None, out: Path | None) -> None:
    from edgebench.host.table import render, write_exports

    lines = render(result, fmt, sort)
    if out is not None:
        from edgebench.host.measuredir import make_writable_dir

        make_writable_dir(out)
        for path in write_exports(result, out, sort):
            note(f"wrote {path}")
    _emit(lines)


@click.command()
@click.argument("runs", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("meter_log", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--clock-offset",
    default=None,
    metavar="OFFSET",
    help="Host clock minus agent clock: 0, nanoseconds, or 12.5ms / -1.2s (default 0: same machine).",
)
@click.option(
    "--clock-uncertainty",
    default="0",
    metavar="TIME",
    help="Uncertainty of the clock offset (ns, or 2ms...); windows where it matters are marked invalid.",
)
@grid_options
@pue_option()
@meter_resolution_option
@min_samples_option
@address_option
@sort_option
@format_option
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), help="Also write table.csv/json/md here."
)
@emissions_csv_option("every valid window")
def pair(
    runs: Path,
    meter_log: Path,
    clock_offset: str | None,
    clock_uncertainty: str,
    grid: str | None,
    egrid: str | None,
    country: str | None,
    intensity: str | None,
    pue: float,
    resolution_w: float | None,
    min_samples: int,
    address: str | None,
    sort: str | None,
    fmt: str,
    out: Path | None,
    emissions_csv: Path | None = None,
) -> None:
    """Pair RUNS (RunRecords from `edgebench bench --out`) with METER_LOG (`edgebench meter log`), offline.

    Each window is mapped to the host clock with --clock-offset, integrated over the meter log, checked (at least
    --min-samples readings, full coverage, no gap) and combined per engine into the ranked energy table. A log of
    several Kill-a-Watts (one XBee receiver) needs --address to pick the one the device was plugged into.
    """
    from edgebench.host.carbon import resolve_grid
    from edgebench.host.pairing import pair as pair_runs
    from edgebench.records import ClockOffset, read_run_records

    factor = resolve_grid(grid=grid, egrid=egrid, country=country, intensity=intensity)
    if emissions_csv is not None:
        from edgebench.host.codecarbon_bridge import check_emissions_csv

        check_emissions_csv(emissions_csv)  # before the work: one line for another file's header
    records = read_run_records(runs)
    if not records:
        raise BadInput(f"{runs} holds no run records: pass the file `edgebench bench --out` wrote")
    if not meter_log.is_file():
        raise BadInput(f"no such meter log: {meter_log}: pass the file `edgebench meter log` wrote")
    if clock_offset is None and any(r.clock != "host:realtime" for r in records):
        note(
            "clock offset 0: assuming the runs and the meter log were timed on the same machine (--clock-offset)"
        )
    clock = ClockOffset(
        offset_ns=parse_clock_offset(clock_offset or "0"),
        uncertainty_ns=abs(parse_clock_offset(clock_uncertainty)),
        method="user-given" if clock_offset is not None else "same clock",
    )
    from edgebench.host.measuredir import metadata_conflicts

    errors, version_warnings = metadata_conflicts(records)
    for message in errors + version_warnings:
        warn(f"{runs}: {message}: the table mixes measurements of different set-ups")
    trace = _load_trace(meter_log, resolution_w, address, records, clock)
    result = pair_runs(records, trace, clock, grid=factor, min_samples=min_samples, pue=pue)
    _report_invalid(result)
    _append_emissions(result, emissions_csv)
    _render(result, fmt, sort, out)


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@grid_options
@pue_option(default_words="the session's")
@sort_option
@format_option
@click.option("--write", is_flag=True, help="Also rewrite DIRECTORY/table.csv, table.json and table.md.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also draw --y against --x, one point per engine, into this .png/.svg/.pdf (needs matplotlib).")
@click.option("--x", "x_col", default="gflops", show_default=True, help="Plot x column (gflops, params, latency...).")
@click.option("--y", "y_col", default="gross_j_sample", show_default=True,
              help="Plot y column (gross_j_sample, net_j_sample, gross_j, net_j, co2...).")
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Also write every report plot (first iterations, power trace, wall vs rails, ranked) as PNG and SVG into this directory.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write one self-contained HTML page (sortable table, plots, session, grid factor, notes).")
@click.option("--per-day", "per_day", type=positive(), metavar="N",
              help="Lifetime projection of the first-ranked engine: images (input samples) per day (with --years).")
@click.option("--years", type=positive(), help="Lifetime projection: years of service (with --per-day).")
@click.option("--embodied", metavar="MASS",
              help="The device's embodied (manufacturing) CO2, e.g. 20kg, amortised over the projected life.")
@emissions_csv_option("every valid window")
def report(
    directory: Path,
    grid: str | None,
    egrid: str | None,
    country: str | None,
    intensity: str | None,
    pue: float | None,
    sort: str | None,
    fmt: str,
    write: bool,
    plot_path: Path | None,
    x_col: str,
    y_col: str,
    plots_dir: Path | None = None,
    html_path: Path | None = None,
    per_day: float | None = None,
    years: float | None = None,
    embodied: str | None = None,
    emissions_csv: Path | None = None,
) -> None:
    """Re-render the ranked table of a measure DIRECTORY (runs.jsonl, meter log, session.json, clock.json).

    The grid factor is the session's unless --grid/--country/--intensity names another. `--plot energy.png`
    also draws a scatter of two columns, e.g. `--x gflops --y net_j` or `--x latency --y co2`. `--per-day N
    --years Y [--embodied 20kg]` projects the first-ranked engine over a deployment's life.
    """
    if (per_day is None) != (years is None) or (embodied is not None and per_day is None):
        raise BadInput("a lifetime projection needs --per-day and --years together (--embodied only with them)")
    from edgebench.host.carbon import resolve_grid
    from edgebench.host.measuredir import MeasureDir, metadata_conflicts

    if emissions_csv is not None:
        from edgebench.host.codecarbon_bridge import check_emissions_csv

        check_emissions_csv(emissions_csv)  # before the work: one line for another file's header
    d = MeasureDir.open(directory)
    session = d.session()
    overridden = any(v is not None for v in (grid, egrid, country, intensity))
    factor = resolve_grid(grid=grid, egrid=egrid, country=country, intensity=intensity) if overridden else None
    records = d.records()
    if session.clock is None and any(r.clock != "host:realtime" for r in records):
        warn(f"{directory} has no clock.json: assuming offset 0 between agent and host clocks")
    errors, version_warnings = metadata_conflicts(records)
    for message in errors + version_warnings:
        warn(f"{directory}: {message}: the table mixes measurements of different set-ups")
    result = d.pair(session=session, records=records, grid=factor, pue=pue)
    _report_invalid(result)
    projection = None
    if per_day is not None and years is not None:
        from edgebench.host.carbon import parse_mass
        from edgebench.host.table import first_ranked

        best = first_ranked(result, sort)
        if best is None:
            raise BadInput(f"{directory} has no engine with a valid window: nothing to project over a lifetime")
        projection = (best, lifetime_of(best, result, per_day, years, parse_mass(embodied) if embodied else None))
    if plot_path is not None:
        from edgebench.host.plot import plot_result

        note(f"wrote {plot_result(result, plot_path, x=x_col, y=y_col)}")
    if plots_dir is not None or html_path is not None:
        from edgebench.host.html import render_figures, write_plot_files, write_report
        from edgebench.host.table import DEFAULT_SORT, rank

        rank(result.engines, sort)  # an unknown --sort is one line before the drawing
        if html_path is not None:
            from edgebench.host.html import check_html_path

            check_html_path(html_path)
        figures: list[RenderedFigure] | MissingDependency | None = None
        if plots_dir is not None:
            from edgebench.host.plot import render_report_figures

            # drawn once, rendered once to SVG and PNG: the files and the page share them
            figures = render_report_figures(result, records, d.plot_trace(session, records), sort=sort or DEFAULT_SORT,
                                            png=True)
            written = write_plot_files(plots_dir, d, result, figures=figures)
            note(f"wrote {len(written)} plots into {plots_dir}")
        elif html_path is not None:
            figures = render_figures(result, records, d.plot_trace(session, records), sort or DEFAULT_SORT)
        if html_path is not None:
            path = write_report(html_path, d, result, session=session, records=records, sort=sort,
                                lifetime=projection, figures=figures)
            note(f"wrote {path}")
    _append_emissions(result, emissions_csv)
    _render(result, fmt, sort, directory if write else None)
    if projection is not None and fmt == "table":
        from edgebench.host.carbon import format_lifetime

        _emit([f"{projection[0].engine} (rank 1) over its life, wall energy:", *format_lifetime(projection[1])])


def lifetime_of(e, result, per_day: float, years: float, embodied_kg: float | None):
    """The lifetime projection of engine result `e`: `per_day` images (gross wall energy per image, not per
    batch execution; the session's grid and PUE)."""
    from edgebench.host.carbon import lifetime

    return lifetime(e.gross_j_per_sample, per_day, years, result.grid, pue=result.pue, embodied_kg=embodied_kg)


@click.command()
@click.option("--energy", help="Energy with units: 0.386J, 3mJ, 5Wh, 1.2kWh.")
@click.option("--power", help="Average power with units (147W, 500mW), with --hours: a training estimate.")
@click.option("--hours", type=non_negative(), help="Hours at --power.")
@grid_options
@pue_option()
@click.option("--equivalents", is_flag=True, help="Add everyday equivalents, each with its factor, source and year.")
@click.option("--per-day", "per_day", type=non_negative(),
              help="Images (input samples) per day, with --years: a lifetime projection of --energy per image.")
@click.option("--years", type=non_negative(), help="Years of service for the lifetime projection.")
@click.option("--embodied", metavar="MASS",
              help="The device's manufacturing footprint (20kg, 44lb), amortised over the lifetime's images.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def carbon(
    energy: str | None,
    power: str | None,
    hours: float | None,
    grid: str | None,
    egrid: str | None,
    country: str | None,
    intensity: str | None,
    pue: float,
    equivalents: bool,
    per_day: float | None,
    years: float | None,
    embodied: str | None,
    as_json: bool,
) -> None:
    """Convert an energy (or power x hours) to kWh and CO2 with one grid factor.

    \b
    edgebench carbon --energy 0.386J --grid RFCW --egrid 2019
    edgebench carbon --power 147W --hours 9.25 --pue 1.58 --intensity 0.954lb/kWh
    edgebench carbon --energy 0.386J --per-day 100000 --years 3 --embodied 20kg --equivalents
    """
    from edgebench.host import carbon as c

    if energy is not None and (power is not None or hours is not None):
        raise BadInput("pass either --energy or --power with --hours, not both")
    if energy is None and (power is None or hours is None):
        raise BadInput("pass --energy (e.g. 0.386J), or --power and --hours (e.g. --power 147W --hours 9.25)")
    factor = c.resolve_grid(grid=grid, egrid=egrid, country=country, intensity=intensity)
    if energy is not None:
        result = c.estimate(c.parse_energy(energy), factor, pue)
    else:
        assert power is not None and hours is not None
        result = c.training_estimate(c.parse_power(power), hours, factor, pue)
    life = None
    if per_day is not None or years is not None or embodied is not None:
        if energy is None or per_day is None or years is None:
            raise BadInput(
                "a lifetime needs --energy (per inference), --per-day and --years (e.g. --per-day 100000 --years 3)"
            )
        embodied_kg = c.parse_mass(embodied) if embodied is not None else None
        life = c.lifetime(c.parse_energy(energy), per_day, years, factor, pue=pue, embodied_kg=embodied_kg)
    if as_json:
        data = result.to_dict()
        if equivalents:
            data["equivalents"] = c.equivalents_data(result.co2_kg)
        if life is not None:
            lifetime = life.to_dict()
            if equivalents:
                lifetime["equivalents"] = c.equivalents_data(life.total_co2_kg)
            data["lifetime"] = lifetime
        click.echo(json.dumps(data))
        return
    lines = c.format_estimate(result, context=equivalents)
    if life is not None:
        lines += c.format_lifetime(life)
        if equivalents:
            lines.append(f"over its life, {life.total_co2_kg:.4g} kg CO2 is about:")
            lines += [f"  {line}" for line in c.equivalents(life.total_co2_kg)]
    _emit(lines)
