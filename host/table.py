"""The ranked per-engine energy table and its exports (terminal, CSV, JSON, Markdown).

Engines whose status is "ok" are ranked by the sort column (default: net J/inference ascending, or gross when
there is no idle baseline); invalid and failed engines are listed after them, marked, and never ranked.
Formatters return lines. `write_exports` writes table.csv, table.json and table.md atomically (temp file +
rename) so that `edgebench measure` can call it after every engine and a crash still leaves a whole table.

JSON format history (readers accept every version listed here):
- 1: first version: {"format": "edgebench-table", "version": 1, "grid", "idle", "pue", "meter", "thresholds",
  "sort", "engines": [{"rank", <every EngineResult field>, co2 per million}]}; NaN is written as null.
- 2: when some engine was evaluated (`edgebench eval`), each engine row holds `top1`, `top5`, `accuracy_samples`,
  `accuracy_dataset`, `accuracy_preprocessing` (null where not evaluated) and `pareto_energy` / `pareto_latency`
  (on the front of accuracy vs J/inference, vs latency) instead of the nested `accuracy`; the document gains
  `pareto` (which energy figure the front used). Without accuracy the rows are as in version 1.

Accuracy columns (top-1 %, top-5 % when any engine has it, and `front`) appear only when some engine has an
accuracy. `front` marks the Pareto front of the ok engines: `E` on the front of accuracy vs net J/inference
(gross when no idle baseline was measured), `L` of accuracy vs mean latency, `EL` both, `-` neither.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebench.errors import BadInput
from edgebench.files import write_atomic
from edgebench.pareto import pareto_front
from edgebench.units import num as _num
from edgebench.units import plus_minus

from .pairing import EngineResult, PairingResult

TABLE_FORMAT = "edgebench-table"
TABLE_VERSION = 2
FORMATS = ("table", "csv", "json", "md")


def _resolution_pixels(e: EngineResult) -> float:
    match = re.fullmatch(r"(\d+)x(\d+)", e.resolution)
    return int(match.group(1)) * int(match.group(2)) if match else math.nan


# sort key -> what it reads; any EngineResult field name is accepted too
SORT_KEYS: dict[str, Callable[[EngineResult], Any]] = {
    "engine": lambda e: e.engine,
    "backbone": lambda e: e.backbone,
    "batch": lambda e: e.batch,
    "resolution": _resolution_pixels,
    "precision": lambda e: e.precision,
    "latency": lambda e: e.latency_mean_ms,
    "p50": lambda e: e.latency_p50_ms,
    "throughput": lambda e: e.throughput_samples_s,
    "wall_w": lambda e: e.wall_power_w,
    "net_w": lambda e: e.net_power_w,
    "gross_j": lambda e: e.gross_j_per_inference,
    "net_j": lambda e: e.net_j_per_inference,
    "rail_j": lambda e: e.rail_j_per_inference,
    "rail_w": lambda e: e.rail_power_w,
    "params": lambda e: e.params if e.params is not None else math.nan,
    "gflops": lambda e: e.gflops_per_inference,
    "j_per_sample": lambda e: e.net_j_per_sample,
    "co2": lambda e: e.co2_lb_per_inference,
    "top1": lambda e: e.accuracy.top1 if e.accuracy is not None else math.nan,
    "top5": lambda e: e.accuracy.top5 if e.accuracy is not None and e.accuracy.top5 is not None else math.nan,
}
_FIELDS = {f.name for f in dataclasses.fields(EngineResult)}


def default_sort(engines: Sequence[EngineResult]) -> str:
    """net_j when any ranked engine has a net figure (an idle baseline exists), gross_j otherwise."""
    return "net_j" if any(e.ok and math.isfinite(e.net_j_per_inference) for e in engines) else "gross_j"


def sort_getter(key: str) -> Callable[[EngineResult], Any]:
    """What a sort (or plot) column reads from an EngineResult: a key of SORT_KEYS or any field name."""
    if key in SORT_KEYS:
        return SORT_KEYS[key]
    if key in _FIELDS:
        return lambda e: getattr(e, key)
    known = ", ".join([*SORT_KEYS, "or any column name of the CSV"])
    raise BadInput(f"unknown sort column {key!r}: use one of {known} (prefix - for descending)")


def rank(engines: Sequence[EngineResult], sort: str | None = None) -> list[tuple[int | None, EngineResult]]:
    """(rank, engine) rows: ok engines sorted by `sort` (prefix `-` for descending) and numbered from 1, values
    that are missing (NaN) after the others; invalid and failed engines after them, unranked, in input order."""
    key = sort or default_sort(engines)
    descending = key.startswith("-")
    getter = sort_getter(key.lstrip("-"))
    ok = [e for e in engines if e.ok]
    missing = [e for e in ok if isinstance(getter(e), float) and math.isnan(getter(e))]
    present = [e for e in ok if e not in missing]
    present.sort(key=getter, reverse=descending)
    ranked: list[tuple[int | None, EngineResult]] = [(i, e) for i, e in enumerate(present + missing, 1)]
    return ranked + [(None, e) for e in engines if not e.ok]


# --- cells (numbers as text: edgebench.units) -------------------------------------------------------------


def _rails(e: EngineResult) -> str:
    text = plus_minus(e.rail_j_per_inference, e.rail_j_per_inference_u)
    return text + " *" if e.rail_estimate and text != "-" else text


@dataclass(frozen=True)
class Column:
    header: str  # with units
    cell: Callable[[EngineResult], str]
    numeric: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("engine", lambda e: e.engine, numeric=False),
    Column("backbone", lambda e: e.backbone, numeric=False),
    Column("batch", lambda e: str(e.batch)),
    Column("HxW", lambda e: e.resolution or "-"),
    Column("prec", lambda e: e.precision or "-", numeric=False),
    Column("params M", lambda e: f"{e.params / 1e6:.3g}" if e.params is not None else "-"),
    Column("GFLOPs", lambda e: _num(e.gflops_per_inference, ".3g")),
    Column("latency ms", lambda e: _num(e.latency_mean_ms, ".4g")),
    Column("samples/s", lambda e: _num(e.throughput_samples_s, ".4g")),
    Column("wall W", lambda e: _num(e.wall_power_w, ".4g")),
    Column("net W", lambda e: _num(e.net_power_w, ".4g")),
    Column("rail W", lambda e: _num(e.rail_power_w, ".4g") + (" *" if e.rail_estimate and math.isfinite(e.rail_power_w) else "")),
    Column("J/inf wall", lambda e: plus_minus(e.gross_j_per_inference, e.gross_j_per_inference_u)),
    Column("J/inf net", lambda e: plus_minus(e.net_j_per_inference, e.net_j_per_inference_u)),
    Column("J/inf rails", _rails),
    Column("CO2 lb/inf", lambda e: _num(e.co2_lb_per_inference, ".3e")),
    Column("CO2 g/1M inf", lambda e: _num(e.co2_kg_per_inference * 1e9, ".4g")),
    Column("windows", lambda e: f"{e.valid_windows}/{e.windows}" + (f" ({e.retried} retried)" if e.retried else "")),
)


def has_accuracy(engines: Sequence[EngineResult]) -> bool:
    """Whether any engine was evaluated (the accuracy columns are shown only then)."""
    return any(e.accuracy is not None for e in engines)


def energy_cost_field(engines: Sequence[EngineResult]) -> str:
    """The J/inference figure the energy front uses: net when an idle baseline gave one, gross otherwise."""
    return "net_j_per_inference" if default_sort(engines) == "net_j" else "gross_j_per_inference"


@dataclass(frozen=True)
class Fronts:
    """Names of the ok engines on each Pareto front (accuracy vs energy, accuracy vs latency)."""

    energy: frozenset[str]
    latency: frozenset[str]
    energy_field: str

    def mark(self, e: EngineResult) -> str:
        text = ("E" if e.engine in self.energy else "") + ("L" if e.engine in self.latency else "")
        return text or "-"


def fronts(engines: Sequence[EngineResult]) -> Fronts:
    """The Pareto fronts over the ok, evaluated engines (see `edgebench.pareto`)."""
    field_name = energy_cost_field(engines)
    ok = [e for e in engines if e.ok and e.accuracy is not None]
    accuracy = [e.accuracy.top1 for e in ok]  # type: ignore[union-attr]
    on_energy = pareto_front([getattr(e, field_name) for e in ok], accuracy)
    on_latency = pareto_front([e.latency_mean_ms for e in ok], accuracy)
    return Fronts(
        energy=frozenset(e.engine for e, m in zip(ok, on_energy, strict=True) if m),
        latency=frozenset(e.engine for e, m in zip(ok, on_latency, strict=True) if m),
        energy_field=field_name,
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}"


def columns(engines: Sequence[EngineResult]) -> list[Column]:
    """COLUMNS, with top-1, top-5 (when any engine has it) and the front marker when some engine has accuracy."""
    if not has_accuracy(engines):
        return list(COLUMNS)
    found = fronts(engines)
    extra = [Column("top-1 %", lambda e: _pct(e.accuracy.top1 if e.accuracy else None))]
    if any(e.accuracy is not None and e.accuracy.top5 is not None for e in engines):
        extra.append(Column("top-5 %", lambda e: _pct(e.accuracy.top5 if e.accuracy else None)))
    extra.append(Column("front", lambda e: found.mark(e) if e.accuracy is not None and e.ok else "-", numeric=False))
    at = next(i for i, c in enumerate(COLUMNS) if c.header == "GFLOPs") + 1
    return [*COLUMNS[:at], *extra, *COLUMNS[at:]]


def _rows(result: PairingResult, sort: str | None) -> list[tuple[str, list[str], EngineResult]]:
    rows = []
    shown = columns(result.engines)
    for position, e in rank(result.engines, sort):
        rows.append((str(position) if position else "-", [c.cell(e) for c in shown], e))
    return rows


def first_ranked(result: PairingResult, sort: str | None = None) -> EngineResult | None:
    """The engine ranked first that has a CO2 figure (None when no engine has a valid window)."""
    ranked = rank(result.engines, sort or default_sort(result.engines))
    return next((e for _, e in ranked if e.ok and math.isfinite(e.co2_kg_per_inference)), None)


def _footer(result: PairingResult, sort: str) -> list[str]:
    lines = []
    if result.idle is not None:
        i = result.idle
        lines.append(
            f"idle baseline: {i.power_w:.4g} ± {i.power_u_w:.2g} W (sd {i.spread_w:.2g} W over {i.windows} window(s))"
        )
    else:
        lines.append("idle baseline: none measured, so no net figures")
    device = result.device
    what = device.get("board.model") or device.get("cpu.model")
    if what:
        mode = device.get("jetson.nvpmodel")
        lines.append(f"device: {what}" + (f", power mode {mode}" if mode else ""))
    lines.append(f"grid: {result.grid.label}" + (f"; PUE {result.pue:g}" if result.pue != 1.0 else ""))
    if result.meter:
        lines.append(
            f"meter: {result.meter}"
            + (f", resolution {result.resolution_w:g} W" if result.resolution_w else "")
        )
    lines.append(
        f"sorted by {sort}; inference = one engine execution (one batch); ± = 1 sigma (meter resolution, clock, "
        "spread of repeats); CO2 from wall (gross) energy"
    )
    if any(e.rail_estimate for e in result.engines):
        lines.append("* rail figure modelled (estimate), not measured")
    best = first_ranked(result, sort)
    if best is not None:
        from .carbon import context_lines

        lines.append(f"{best.engine} (rank 1), at the wall:")
        lines += context_lines(best.co2_kg_per_inference)  # CO2 per inference already includes the PUE
    if has_accuracy(result.engines):
        found = fronts(result.engines)
        figure = "net" if found.energy_field.startswith("net") else "gross (no idle baseline)"
        evaluated = next(e.accuracy for e in result.engines if e.accuracy is not None)
        lines.append(
            f"front: E = on the Pareto front of top-1 vs {figure} J/inference, L = of top-1 vs mean latency "
            f"(ok engines only); accuracy on {evaluated.dataset}"
        )
    return lines


def format_table(result: PairingResult, sort: str | None = None) -> list[str]:
    """The ranked table as aligned terminal lines, invalid/failed engines last with their reason."""
    sort = sort or default_sort(result.engines)
    shown = columns(result.engines)
    headers = ["rank", *(c.header for c in shown)]
    rows = _rows(result, sort)
    body = [[r, *cells] for r, cells, _ in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(headers)]
    numeric = [True, *(c.numeric for c in shown)]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    for (_, _, e), cells in zip(rows, body, strict=True):
        lines.append(line(cells))
        if not e.ok:
            lines.append(f"      ^ {e.status}")
    if not rows:
        lines.append("(no engines)")
    lines.append("")
    lines.extend(_footer(result, sort))
    return lines


def _record(position: int | None, e: EngineResult, found: Fronts | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"rank": position}
    for f in dataclasses.fields(EngineResult):
        if f.name == "accuracy":
            continue  # flattened below, when the table shows accuracy
        value = getattr(e, f.name)
        data[f.name] = None if isinstance(value, float) and not math.isfinite(value) else value
    for name in ("co2_kg_per_million", "co2_lb_per_million"):
        value = getattr(e, name)
        data[name] = value if math.isfinite(value) else None
    if found is not None:
        a = e.accuracy
        data.update(
            top1=a.top1 if a else None,
            top5=a.top5 if a else None,
            accuracy_samples=a.samples if a else None,
            accuracy_dataset=a.dataset if a else None,
            accuracy_preprocessing=a.preprocessing if a else None,
            pareto_energy=e.engine in found.energy,
            pareto_latency=e.engine in found.latency,
        )
    return data


CSV_COLUMNS: tuple[str, ...] = (
    "rank",
    *(f.name for f in dataclasses.fields(EngineResult) if f.name != "accuracy"),
    "co2_kg_per_million",
    "co2_lb_per_million",
)
ACCURACY_COLUMNS: tuple[str, ...] = (
    "top1", "top5", "accuracy_samples", "accuracy_dataset", "accuracy_preprocessing", "pareto_energy", "pareto_latency",
)


def _fronts_if_any(engines: Sequence[EngineResult]) -> Fronts | None:
    return fronts(engines) if has_accuracy(engines) else None


def format_csv(result: PairingResult, sort: str | None = None) -> list[str]:
    """CSV lines: one row per engine, every figure with its unit in the column name; NaN is empty."""
    buffer = io.StringIO()
    found = _fronts_if_any(result.engines)
    names = CSV_COLUMNS + (ACCURACY_COLUMNS if found is not None else ())
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for position, e in rank(result.engines, sort):
        writer.writerow({k: ("" if v is None else v) for k, v in _record(position, e, found).items()})
    return buffer.getvalue().splitlines()


def table_document(result: PairingResult, sort: str | None = None) -> dict[str, Any]:
    """The JSON document (versioned) of the table."""
    sort = sort or default_sort(result.engines)
    idle = dataclasses.asdict(result.idle) if result.idle else None
    found = _fronts_if_any(result.engines)
    extra: dict[str, Any] = {}
    if found is not None:
        extra["pareto"] = {
            "energy": f"top1 vs {found.energy_field} (ok engines)", "latency": "top1 vs latency_mean_ms (ok engines)",
        }
    return {
        "format": TABLE_FORMAT,
        "version": TABLE_VERSION,
        "sort": sort,
        "grid": result.grid.to_dict(),
        "pue": result.pue,
        "meter": result.meter,
        "resolution_w": result.resolution_w,
        "idle": idle,
        "device": dict(result.device),
        "thresholds": dict(result.thresholds),
        "inference": "one engine execution (one batch); sample = one input of the batch",
        **extra,
        "engines": [_record(position, e, found) for position, e in rank(result.engines, sort)],
    }


def format_json(result: PairingResult, sort: str | None = None) -> list[str]:
    """The versioned JSON document as lines."""
    return json.dumps(table_document(result, sort), indent=2, allow_nan=False).splitlines()


def format_markdown(result: PairingResult, sort: str | None = None) -> list[str]:
    """A GitHub Markdown table with the footer as a list below it."""
    sort = sort or default_sort(result.engines)
    shown = columns(result.engines)
    headers = ["rank", *(c.header for c in shown), "status"]
    align = ["---:", *("---:" if c.numeric else ":---" for c in shown), ":---"]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    for r, cells, e in _rows(result, sort):
        escaped = [c.replace("|", "\\|") for c in (r, *cells, e.status)]
        lines.append("| " + " | ".join(escaped) + " |")
    lines.append("")
    lines.extend(f"- {line}" for line in _footer(result, sort))
    return lines


FORMATTERS: dict[str, Callable[[PairingResult, str | None], list[str]]] = {
    "table": format_table,
    "csv": format_csv,
    "json": format_json,
    "md": format_markdown,
}


def render(result: PairingResult, fmt: str = "table", sort: str | None = None) -> list[str]:
    """Lines of the table in one of FORMATS."""
    if fmt not in FORMATTERS:
        raise BadInput(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return FORMATTERS[fmt](result, sort)


def _atomic_write(path: Path, lines: list[str]) -> None:
    # atomic (a reader sees the old table or the new one); special files refused, symlinks followed
    write_atomic(path, "\n".join(lines) + "\n")


def write_exports(result: PairingResult, out_dir: str | Path, sort: str | None = None) -> list[Path]:
    """Write out_dir/table.csv, table.json and table.md atomically; returns the paths written."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fmt in (("table.csv", "csv"), ("table.json", "json"), ("table.md", "md")):
        path = d / name
        _atomic_write(path, render(result, fmt, sort))
        written.append(path)
    return written
