"""`edgebench sensors` (which power sources exist here, which one is used, why the others are not) and
`edgebench rails --from-log FILE` (a recorded tegrastats log as rail samples, total and energy).

Formatters return lines (testable); results go to stdout, notes to stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from edgebench.console import warn
from edgebench.errors import EdgebenchError
from edgebench.options import finite
from edgebench.records import PowerSample
from edgebench.units import count

from ..options import sensor_root_option, tegrastats_option
from .base import PROBE_ORDER, PowerSensor, SensorUnavailable, _open
from .tegrastats import MAX_INTERVAL_MS


@dataclass(frozen=True)
class SourceStatus:
    """What one source said when surveyed: "used", "available" (present, but an earlier one wins) or "skipped"."""

    name: str
    status: str
    detail: str  # the total rule when present, the reason when skipped


@dataclass(frozen=True)
class Survey:
    """Every source's status, the one used, its rails and a live reading (None when no source is present)."""

    sources: tuple[SourceStatus, ...]
    used: str | None
    total_rule: str | None
    estimate: bool
    rails: tuple[str, ...]
    reading: PowerSample | None
    read_error: str | None = None


def survey(
    root: Path = Path("/"),
    tegrastats_cmd: str = "tegrastats",
    vcgencmd_cmd: str = "vcgencmd",
    period_s: float = 0.1,
) -> Survey:
    """Open every source in probe order to report on it; keep the first usable one and take a live reading."""
    sources: list[SourceStatus] = []
    chosen: PowerSensor | None = None
    for name in PROBE_ORDER:
        try:
            sensor = _open(name, Path(root), tegrastats_cmd, vcgencmd_cmd, period_s)
        except SensorUnavailable as exc:
            sources.append(SourceStatus(name, "skipped", exc.reason))
            continue
        if chosen is None:
            chosen = sensor
            sources.append(SourceStatus(name, "used", f"total: {sensor.total_rule}"))
        else:
            sources.append(SourceStatus(name, "available", f"total: {sensor.total_rule}; {chosen.name} comes first"))
            sensor.close()
    if chosen is None:
        return Survey(tuple(sources), None, None, False, (), None)
    try:
        chosen.read()  # counters (RAPL, NVML, estimate) report the mean since the previous read
        time.sleep(period_s)
        reading, error = chosen.read(), None
    except EdgebenchError as exc:
        reading, error = None, str(exc)
    finally:
        chosen.close()
    return Survey(tuple(sources), chosen.name, chosen.total_rule, chosen.estimate, chosen.rails, reading, error)


def format_survey(s: Survey) -> list[str]:
    """The survey as text lines."""
    width = max(len(src.name) for src in s.sources)
    lines = ["Power sources, in probe order:"]
    for src in s.sources:
        lines.append(f"  {src.name:<{width}}  {src.status:<9}  {src.detail}")
    lines.append("")
    if s.used is None:
        lines.append("Used: none (no on-board power here: use a wall meter, see `edgebench meter`)")
        return lines
    kind = " (an estimate, not a measurement)" if s.estimate else ""
    lines.append(f"Used: {s.used}, total = {s.total_rule}{kind}")
    if s.reading is None:
        lines.append(f"Live reading failed: {s.read_error}")
        return lines
    rw = max(len(r) for r in s.reading.rails_mw) if s.reading.rails_mw else 5
    lines.append("Live reading:")
    for rail, mw in s.reading.rails_mw.items():
        lines.append(f"  {rail:<{rw}}  {mw:10.1f} mW")
    lines.append(f"  {'total':<{rw}}  {s.reading.total_mw:10.1f} mW  ({s.total_rule})")
    return lines


def survey_json(s: Survey) -> dict:
    """The survey as JSON-able data."""
    reading = None
    if s.reading is not None:
        reading = {"t_ns": s.reading.t_ns, "rails_mw": dict(s.reading.rails_mw), "total_mw": s.reading.total_mw}
    return {
        "sources": [{"name": x.name, "status": x.status, "detail": x.detail} for x in s.sources],
        "used": s.used,
        "total_rule": s.total_rule,
        "estimate": s.estimate,
        "rails": list(s.rails),
        "reading": reading,
        "read_error": s.read_error,
    }


@click.command()
@sensor_root_option("--sysfs-root")
@tegrastats_option
@click.option("--vcgencmd", "vcgencmd_cmd", default="vcgencmd", show_default=True, help="vcgencmd command (Pi 5).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def sensors(sysfs_root: Path, tegrastats_cmd: str, vcgencmd_cmd: str, as_json: bool) -> None:
    """Which on-board power sources exist here, which one is used, why the others are not, and a reading."""
    result = survey(sysfs_root, tegrastats_cmd, vcgencmd_cmd)
    if as_json:
        click.echo(json.dumps(survey_json(result), indent=2, allow_nan=False))
        return
    for line in format_survey(result):
        click.echo(line)


# --- rails --from-log --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEnergy:
    """Energy over a whole log: the total and each rail, from the shared integrator."""

    duration_s: float
    energy_j: float
    mean_power_w: float
    rails_j: dict[str, float]


def log_energy(samples: Sequence[PowerSample], rails: Sequence[str]) -> LogEnergy | None:
    """Energy from the first to the last sample (None with fewer than two distinct times)."""
    import numpy as np

    from edgebench.energy import integrate_window

    start, end = samples[0].t_ns, samples[-1].t_ns
    if end <= start:
        return None
    t = np.array([s.t_ns for s in samples], dtype=np.int64)
    total = integrate_window(t, np.array([s.total_mw / 1000.0 for s in samples]), start, end)  # mW -> W
    per_rail = {}
    for rail in rails:
        # a rail missing from some lines (a log spanning a reboot into another nvpmodel) counts where it exists
        have = [s for s in samples if rail in s.rails_mw]
        rt = np.array([s.t_ns for s in have], dtype=np.int64)
        p_w = np.array([s.rails_mw[rail] / 1000.0 for s in have])
        per_rail[rail] = integrate_window(rt, p_w, start, end).energy_j if len(have) >= 2 else 0.0
    return LogEnergy((end - start) / 1e9, total.energy_j, total.mean_power_w, per_rail)


def _rails_of(samples: Sequence[PowerSample]) -> list[str]:
    return list(dict.fromkeys(r for s in samples for r in s.rails_mw))


def format_rails_table(samples: Sequence[PowerSample], rule: str, source: str, energy: LogEnergy | None) -> list[str]:
    """Per-sample rails (mW), the total, which rail or rule gave it, and the energy, as aligned text lines."""
    rails = _rails_of(samples)
    cols = ["t_s", *[f"{r}_mw" for r in rails], "total_mw"]
    widths = [max(len(c), 10) for c in cols]
    t0 = samples[0].t_ns
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    for s in samples:
        values = [f"{(s.t_ns - t0) / 1e9:.3f}", *[f"{s.rails_mw[r]:.1f}" if r in s.rails_mw else "-" for r in rails]]
        values.append(f"{s.total_mw:.1f}")
        lines.append("  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True)))
    lines.append("")
    lines.append(f"Total: {rule}; times: {source}; {len(samples)} samples")
    if energy is None:
        lines.append("Energy: needs at least two samples at different times")
    else:
        lines.append(
            f"Energy over {energy.duration_s:.3f} s: {energy.energy_j:.3f} J, mean {energy.mean_power_w:.3f} W "
            f"(trapezoid over the current values, never tegrastats' averages)"
        )
        lines.append("Per rail: " + ", ".join(f"{r} {j:.3f} J" for r, j in energy.rails_j.items()))
    return lines


def format_rails_csv(samples: Sequence[PowerSample]) -> list[str]:
    """One CSV row per sample: t_ns, each rail in mW, total_mw."""
    rails = _rails_of(samples)
    lines = [",".join(["t_ns", *[f"{r}_mw" for r in rails], "total_mw"])]
    for s in samples:
        cells = [repr(s.rails_mw[r]) if r in s.rails_mw else "" for r in rails]  # empty: rail not in that line
        lines.append(",".join([str(s.t_ns), *cells, repr(s.total_mw)]))
    return lines


def rails_json(samples: Sequence[PowerSample], rule: str, source: str, path: Path, energy: LogEnergy | None) -> dict:
    """The log as JSON-able data."""
    return {
        "file": str(path),
        "time_source": source,
        "total_rule": rule,
        "rails": _rails_of(samples),
        "samples": [{"t_ns": s.t_ns, "rails_mw": dict(s.rails_mw), "total_mw": s.total_mw} for s in samples],
        "energy": None
        if energy is None
        else {
            "duration_s": energy.duration_s,
            "energy_j": energy.energy_j,
            "mean_power_w": energy.mean_power_w,
            "rails_j": energy.rails_j,
        },
    }


@click.command()
@click.option(
    "--from-log", "log_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
    help="A file written by `tegrastats --logfile` (or its stdout saved).",
)
@click.option(
    "--interval-ms", type=finite(min=0, max=MAX_INTERVAL_MS, min_open=True),
    help="The tegrastats --interval of the log; needed when lines carry no timestamp or repeat a second.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def rails(log_file: Path, interval_ms: float | None, as_json: bool, fmt: str) -> None:
    """Parse a recorded tegrastats log into rail samples, the total (and which rail gave it), and the energy."""
    from .tegrastats import read_log

    log = read_log(log_file, interval_ms)
    if log.bad_lines:
        warn(
            f"{log.path}: skipped {count(log.bad_lines, 'bad line')}, the first at line {log.first_bad_line} "
            f"({log.first_bad}): check that the file is tegrastats output"
        )
    samples = log.samples
    energy = log_energy(samples, _rails_of(samples))
    if as_json or fmt == "json":
        data = rails_json(samples, log.total_rule, log.time_source, log.path, energy)
        data["bad_lines"] = log.bad_lines
        data["first_bad_line"] = log.first_bad_line or None
        click.echo(json.dumps(data, indent=2, allow_nan=False))
        return
    lines = format_rails_csv(samples) if fmt == "csv" else format_rails_table(
        samples, log.total_rule, log.time_source, energy
    )
    for line in lines:
        click.echo(line)
