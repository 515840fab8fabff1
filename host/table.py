"""The ranked per-engine energy table and its exports (terminal, CSV, JSON, Markdown).

What is ranked, by default: wall (gross) energy per sample (one input image), lowest first. Per sample because
engines of different batch sizes do different amounts of work per execution (a batch-4 engine does 4 images per
run); gross because it is what the wall pays and it does not rest on an idle baseline that may be wrong. Energy
per execution (one batch) is shown beside it, and net (above idle) figures too; any column is a sort key.

Engines whose figures are equal within their uncertainty (their difference within SIGNIFICANCE standard
uncertainties) share a rank, shown as `2=`. Engines whose status is not "ok" are listed after the ranked ones,
marked, and never ranked. A net figure below zero beyond its uncertainty is never shown as a number (`<0 !`,
with a warning naming the cause); one within 2 sigma of zero reads `≈0 (± u)`.

Formatters return lines. `write_exports` writes table.csv, table.json and table.md atomically (temp file +
rename) so that `edgebench measure` can call it after every engine and a crash still leaves a whole table.

JSON format history (readers accept every version listed here):
- 1: first version: {"format": "edgebench-table", "version": 1, "grid", "idle", "pue", "meter", "thresholds",
  "sort", "engines": [{"rank", <every EngineResult field>, co2 per million}]}; NaN is written as null.
- 2: when some engine was evaluated (`edgebench eval`), each engine row holds `top1`, `top5`, `accuracy_samples`,
  `accuracy_dataset`, `accuracy_preprocessing` (null where not evaluated) and `pareto_energy` / `pareto_latency`
  (on the front of accuracy vs J/inference, vs latency) instead of the nested `accuracy`; the document gains
  `pareto` (which energy figure the front used). Without accuracy the rows are as in version 1.
- 3: the default sort is `gross_j_sample`; the document gains `ranked` (the ranked figure in words), `ties`,
  `busy_idle` (messages for idle windows that were not idle) and `net_below_idle`; each row gains `tied` (its
  rank is shared), `state` and `reason` (beside the `status` text), `gross_j_per_sample_u`,
  `net_j_per_sample_u`, `co2_g_per_million_samples`, `net_below_idle`, `busy_baseline` and, with accuracy,
  `pareto_energy_possible` / `pareto_latency_possible` (dominated, but not beyond uncertainty).
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
from enum import Enum
from pathlib import Path
from typing import Any

from edgebench.errors import BadInput
from edgebench.files import write_atomic
from edgebench.pareto import ON, POSSIBLE, accuracy_u, comparable, front_membership
from edgebench.records import TABLE_FORMAT, TABLE_VERSION
from edgebench.units import is_zero, plus_minus, ratio, signed_figure, within
from edgebench.units import num as _num

from .pairing import NET_BELOW_IDLE, SIGNIFICANCE, EngineResult, PairingResult, busy_idle_message

FORMATS = ("table", "csv", "json", "md")
DEFAULT_SORT = "gross_j_sample"
SUMMARY_LINES = 5  # engines compared with the first in the footer's summary before "... and N more"


def _resolution_pixels(e: EngineResult) -> float:
    match = re.fullmatch(r"(\d+)x(\d+)", e.resolution)
    return int(match.group(1)) * int(match.group(2)) if match else math.nan


def _net(value: float, e: EngineResult) -> float:
    """A net figure as a sort value: missing when it is below idle beyond its uncertainty (never a result)."""
    return math.nan if e.net_below_idle else value


@dataclass(frozen=True)
class Figure:
    """A figure engines are ranked by: its sort key, its name in words, its value and its uncertainty."""

    key: str
    words: str  # "wall (gross) energy per sample"
    value: Callable[[EngineResult], float]
    u: Callable[[EngineResult], float] | None = None
    energy_per: str = ""  # "sample" or "execution" for an energy figure ("used 1.3 x less energy per sample")


FIGURES: dict[str, Figure] = {
    f.key: f
    for f in (
        Figure("gross_j_sample", "wall (gross) J per sample", lambda e: e.gross_j_per_sample,
               lambda e: e.gross_j_per_sample_u, "sample"),
        Figure("net_j_sample", "net (above idle) J per sample", lambda e: _net(e.net_j_per_sample, e),
               lambda e: e.net_j_per_sample_u, "sample"),
        Figure("gross_j", "wall (gross) J per execution", lambda e: e.gross_j_per_inference,
               lambda e: e.gross_j_per_inference_u, "execution"),
        Figure("net_j", "net (above idle) J per execution", lambda e: _net(e.net_j_per_inference, e),
               lambda e: e.net_j_per_inference_u, "execution"),
        Figure("rail_j", "on-board rails J per execution", lambda e: e.rail_j_per_inference,
               lambda e: e.rail_j_per_inference_u, "execution"),
    )  # fmt: skip
}

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
    "net_w": lambda e: _net(e.net_power_w, e),
    "rail_w": lambda e: e.rail_power_w,
    **{key: f.value for key, f in FIGURES.items()},
    "j_per_sample": lambda e: _net(e.net_j_per_sample, e),  # the name of net_j_sample before format 3
    "params": lambda e: e.params if e.params is not None else math.nan,
    "gflops": lambda e: e.gflops_per_inference,
    "co2": lambda e: e.co2_lb_per_inference,
    "co2_sample": lambda e: e.co2_kg_per_sample,
    "top1": lambda e: e.accuracy.top1 if e.accuracy is not None else math.nan,
    "top5": lambda e: e.accuracy.top5 if e.accuracy is not None and e.accuracy.top5 is not None else math.nan,
}
_FIELDS = {f.name for f in dataclasses.fields(EngineResult)}


def sort_getter(key: str) -> Callable[[EngineResult], Any]:
    """What a sort (or plot) column reads from an EngineResult: a key of SORT_KEYS or any field name."""
    if key in SORT_KEYS:
        return SORT_KEYS[key]
    if key in _FIELDS:
        return lambda e: getattr(e, key)
    known = ", ".join([*SORT_KEYS, "or any column name of the CSV"])
    raise BadInput(f"unknown sort column {key!r}: use one of {known} (prefix - for descending)")


def ranked_words(sort: str) -> str:
    """The ranked figure in words, with its direction: `wall (gross) J per sample, lowest first`."""
    key = sort.lstrip("-")
    words = FIGURES[key].words if key in FIGURES else key
    return f"{words}, {'highest' if sort.startswith('-') else 'lowest'} first"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _uncertainty(key: str, e: EngineResult) -> float:
    figure = FIGURES.get(key)
    u = figure.u(e) if figure is not None and figure.u is not None else 0.0
    return u if math.isfinite(u) else 0.0


def equal_within(key: str, a: EngineResult, b: EngineResult) -> bool:
    """Whether a and b are equal in the figure `key` within SIGNIFICANCE combined standard uncertainties (exactly
    equal for a figure without uncertainty)."""
    getter = sort_getter(key)
    va, vb = getter(a), getter(b)
    if _missing(va) or _missing(vb):
        return False
    if not isinstance(va, (int, float)) or not isinstance(vb, (int, float)):
        return va == vb
    return abs(va - vb) <= SIGNIFICANCE * math.hypot(_uncertainty(key, a), _uncertainty(key, b))


def rank(engines: Sequence[EngineResult], sort: str | None = None) -> list[tuple[int | None, EngineResult]]:
    """(rank, engine) rows: ok engines sorted by `sort` (prefix `-` for descending), values that are missing
    (NaN) after the others; invalid and failed engines after them, unranked (None), in input order.

    Ranks are competition ranks (1, 2, 2, 4): an engine equal within uncertainty to the first engine of the group
    before it shares that engine's rank (`shared_ranks` says which are shared)."""
    key = sort or DEFAULT_SORT
    descending = key.startswith("-")
    bare = key.lstrip("-")
    getter = sort_getter(bare)
    ok = [e for e in engines if e.ok]
    missing = [e for e in ok if _missing(getter(e))]
    present = [e for e in ok if not _missing(getter(e))]
    present.sort(key=getter, reverse=descending)
    ranked: list[tuple[int | None, EngineResult]] = []
    leader: tuple[int, EngineResult] | None = None
    for i, e in enumerate(present, 1):
        if leader is not None and equal_within(bare, leader[1], e):
            ranked.append((leader[0], e))
        else:
            leader = (i, e)
            ranked.append((i, e))
    ranked += [(len(present) + i, e) for i, e in enumerate(missing, 1)]
    return ranked + [(None, e) for e in engines if not e.ok]


def shared_ranks(rows: Sequence[tuple[int | None, EngineResult]]) -> set[int]:
    """The rank numbers more than one engine holds."""
    seen: dict[int, int] = {}
    for position, _ in rows:
        if position is not None:
            seen[position] = seen.get(position, 0) + 1
    return {p for p, n in seen.items() if n > 1}


def rank_label(position: int | None, shared: set[int]) -> str:
    """`3`, `2=` for a shared rank, `-` for an unranked engine."""
    if position is None:
        return "-"
    return f"{position}=" if position in shared else str(position)


# --- columns (numbers as text: edgebench.units) ---------------------------------------------------------------


def _rails(e: EngineResult) -> str:
    text = plus_minus(e.rail_j_per_inference, e.rail_j_per_inference_u)
    return text + " *" if e.rail_estimate and text != "-" else text


def _pixels_or_none(e: EngineResult) -> float | None:
    value = _resolution_pixels(e)
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class Column:
    """One column of the table: its header (with units), the sort key a click on it uses, the text of a cell,
    the full-precision value behind it (what sorts it), and the group it belongs to (the HTML page can hide
    groups)."""

    header: str
    key: str
    cell: Callable[[EngineResult], str]
    value: Callable[[EngineResult], Any]
    numeric: bool = True
    group: str = "model"


def _net_cell(value: Callable[[EngineResult], float], u: Callable[[EngineResult], float]) -> Callable[[EngineResult], str]:
    return lambda e: signed_figure(value(e), u(e), below=e.net_below_idle, sigmas=SIGNIFICANCE)


def _net_power_cell(e: EngineResult) -> str:
    """Net W as the net J columns show it near zero (`≈0 (± u)`, `<0 !`), plainly otherwise. Its uncertainty is
    net J per execution's scaled by executions per second (wall W / wall J per execution: the same windows)."""
    scale = e.wall_power_w / e.gross_j_per_inference if e.gross_j_per_inference > 0 else math.nan
    u = e.net_j_per_inference_u * scale
    if e.net_below_idle or is_zero(e.net_power_w, u) or within(e.net_power_w, u, SIGNIFICANCE):
        return signed_figure(e.net_power_w, u, below=e.net_below_idle, sigmas=SIGNIFICANCE)
    return _num(e.net_power_w, ".4g")


COLUMNS: tuple[Column, ...] = (
    Column("engine", "engine", lambda e: e.engine, lambda e: e.engine, numeric=False, group="engine"),
    Column("backbone", "backbone", lambda e: e.backbone, lambda e: e.backbone, numeric=False),
    Column("batch", "batch", lambda e: str(e.batch), lambda e: e.batch),
    Column("HxW", "resolution", lambda e: e.resolution or "-", _pixels_or_none),
    Column("prec", "precision", lambda e: e.precision or "-", lambda e: e.precision, numeric=False),
    Column("params M", "params", lambda e: f"{e.params / 1e6:.3g}" if e.params is not None else "-",
           lambda e: e.params / 1e6 if e.params is not None else None),
    Column("GFLOPs", "gflops", lambda e: _num(e.gflops_per_inference, ".3g"), lambda e: e.gflops_per_inference),
    Column("latency ms", "latency", lambda e: _num(e.latency_mean_ms, ".4g"), lambda e: e.latency_mean_ms,
           group="speed"),
    Column("samples/s", "throughput", lambda e: _num(e.throughput_samples_s, ".4g"),
           lambda e: e.throughput_samples_s, group="speed"),
    Column("wall W", "wall_w", lambda e: _num(e.wall_power_w, ".4g"), lambda e: e.wall_power_w, group="power"),
    Column("net W", "net_w", _net_power_cell, lambda e: _net(e.net_power_w, e), group="power"),
    Column("rail W", "rail_w",
           lambda e: _num(e.rail_power_w, ".4g") + (" *" if e.rail_estimate and math.isfinite(e.rail_power_w) else ""),
           lambda e: e.rail_power_w, group="power"),
    Column("J/sample wall", "gross_j_sample", lambda e: plus_minus(e.gross_j_per_sample, e.gross_j_per_sample_u),
           lambda e: e.gross_j_per_sample, group="energy"),
    Column("J/sample net", "net_j_sample", _net_cell(lambda e: e.net_j_per_sample, lambda e: e.net_j_per_sample_u),
           lambda e: _net(e.net_j_per_sample, e), group="energy"),
    Column("J/exec wall", "gross_j", lambda e: plus_minus(e.gross_j_per_inference, e.gross_j_per_inference_u),
           lambda e: e.gross_j_per_inference, group="energy per execution"),
    Column("J/exec net", "net_j",
           _net_cell(lambda e: e.net_j_per_inference, lambda e: e.net_j_per_inference_u),
           lambda e: _net(e.net_j_per_inference, e), group="energy per execution"),
    Column("J/exec rails", "rail_j", _rails, lambda e: e.rail_j_per_inference, group="energy per execution"),
    Column("CO2 g/1M samples", "co2_sample", lambda e: _num(e.co2_g_per_million_samples, ".4g"),
           lambda e: e.co2_g_per_million_samples, group="carbon"),
    Column("CO2 lb/exec", "co2", lambda e: _num(e.co2_lb_per_inference, ".3e"), lambda e: e.co2_lb_per_inference,
           group="carbon"),
    Column("windows", "valid_windows",
           lambda e: f"{e.valid_windows}/{e.windows}" + (f" ({e.retried} retried)" if e.retried else ""),
           lambda e: e.valid_windows, group="windows"),
)


def has_accuracy(engines: Sequence[EngineResult]) -> bool:
    """Whether any engine was evaluated (the accuracy columns are shown only then)."""
    return any(e.accuracy is not None for e in engines)


def front_figure(sort: str | None = None) -> Figure:
    """The energy figure the accuracy-vs-energy front uses: the ranked one when it is an energy figure, else
    wall J per sample."""
    key = (sort or DEFAULT_SORT).lstrip("-")
    return FIGURES[key] if key in FIGURES and FIGURES[key].energy_per else FIGURES[DEFAULT_SORT]


@dataclass(frozen=True)
class Fronts:
    """The Pareto fronts of the ok, evaluated engines, computed within each group evaluated on the same dataset
    and preprocessing: engines on each front, and those possibly on it (dominated, not beyond uncertainty)."""

    energy: frozenset[str]
    latency: frozenset[str]
    energy_field: str  # the sort key of the energy figure
    energy_possible: frozenset[str] = frozenset()
    latency_possible: frozenset[str] = frozenset()
    groups: int = 1  # how many (dataset, preprocessing) groups the fronts were computed in

    def mark(self, e: EngineResult) -> str:
        """`E` on the energy front, `E?` possibly on it; `L`, `L?` the same for latency; `-` on neither."""
        parts = []
        for name, on, possible in (("E", self.energy, self.energy_possible), ("L", self.latency, self.latency_possible)):
            if e.engine in on:
                parts.append(name)
            elif e.engine in possible:
                parts.append(name + "?")
        return "".join(parts) or "-"


def fronts(engines: Sequence[EngineResult], sort: str | None = None) -> Fronts:
    """The fronts of accuracy vs the ranked energy figure and vs mean latency (`edgebench.pareto`)."""
    figure = front_figure(sort)
    ok = [e for e in engines if e.ok and e.accuracy is not None]
    groups: dict[tuple[str, str], list[EngineResult]] = {}
    for e in ok:
        assert e.accuracy is not None
        groups.setdefault(comparable(e.accuracy.dataset, e.accuracy.preprocessing), []).append(e)
    found: dict[str, set[str]] = {"energy": set(), "energy?": set(), "latency": set(), "latency?": set()}
    for members in groups.values():
        acc = [e.accuracy.top1 for e in members if e.accuracy is not None]
        acc_u = [accuracy_u(e.accuracy.top1, e.accuracy.samples) for e in members if e.accuracy is not None]
        for name, cost, cost_u in (
            ("energy", [figure.value(e) for e in members], [_uncertainty(figure.key, e) for e in members]),
            ("latency", [e.latency_mean_ms for e in members], None),
        ):
            for e, where in zip(members, front_membership(cost, acc, cost_u, acc_u, SIGNIFICANCE), strict=True):
                if where == ON:
                    found[name].add(e.engine)
                elif where == POSSIBLE:
                    found[name + "?"].add(e.engine)
    return Fronts(
        energy=frozenset(found["energy"]),
        latency=frozenset(found["latency"]),
        energy_field=figure.key,
        energy_possible=frozenset(found["energy?"]),
        latency_possible=frozenset(found["latency?"]),
        groups=max(1, len(groups)),
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}"


NARROW_OMITS = ("backbone",)  # the engine's name already says it: left out of the terminal and Markdown tables


def columns(engines: Sequence[EngineResult], sort: str | None = None, *, wide: bool = False) -> list[Column]:
    """The table's columns: COLUMNS (less NARROW_OMITS unless `wide`), with top-1, top-5 (when any engine has
    it) and the front marker when some engine has accuracy."""
    base = [c for c in COLUMNS if wide or c.key not in NARROW_OMITS]
    if not has_accuracy(engines):
        return base
    found = fronts(engines, sort)
    extra = [Column("top-1 %", "top1", lambda e: _pct(e.accuracy.top1 if e.accuracy else None),
                    lambda e: e.accuracy.top1 if e.accuracy else None, group="accuracy")]
    if any(e.accuracy is not None and e.accuracy.top5 is not None for e in engines):
        extra.append(Column("top-5 %", "top5", lambda e: _pct(e.accuracy.top5 if e.accuracy else None),
                            lambda e: e.accuracy.top5 if e.accuracy else None, group="accuracy"))
    extra.append(Column("front", "front", lambda e: found.mark(e) if e.accuracy is not None and e.ok else "-",
                        lambda e: found.mark(e) if e.accuracy is not None and e.ok else None, numeric=False,
                        group="accuracy"))
    at = next(i for i, c in enumerate(base) if c.key == "gflops") + 1
    return [*base[:at], *extra, *base[at:]]


def _rows(result: PairingResult, sort: str) -> list[tuple[str, list[str], EngineResult]]:
    shown = columns(result.engines, sort)
    ranked = rank(result.engines, sort)
    shared = shared_ranks(ranked)
    return [(rank_label(position, shared), [c.cell(e) for c in shown], e) for position, e in ranked]


def first_ranked(result: PairingResult, sort: str | None = None) -> EngineResult | None:
    """The engine ranked first that has a CO2 figure (None when no engine has a valid window)."""
    ranked = rank(result.engines, sort or DEFAULT_SORT)
    return next((e for _, e in ranked if e.ok and math.isfinite(e.co2_kg_per_inference)), None)


# --- what the footer says -------------------------------------------------------------------------------------


def idle_lines(result: PairingResult) -> list[str]:
    """The idle baseline in words, and each idle window that was not idle."""
    i = result.idle
    if i is None:
        return ["idle baseline: none measured, so no net figures"]
    how = ""
    if i.interpolated:
        drift = f"; drift {i.drift_w:+.3g} W first to last" if math.isfinite(i.drift_w) else ""
        how = f"; interpolated in time between them for each window{drift}"
    lines = [f"idle baseline: {i.power_w:.4g} ± {i.power_u_w:.2g} W ({i.spread_text}{how})"]
    busy = result.busy_idle_windows
    if busy:
        words = "; ".join(busy_idle_message(n, w) for n, w in busy)
        lines.append(f"! {words}: net figures rest on it and are suspect; keep the device idle during the baseline")
    return lines


def below_idle_lines(result: PairingResult) -> list[str]:
    """One line naming the engines whose net figure is below zero beyond its uncertainty, and the cause."""
    below = [e.engine for e in result.engines if e.ok and e.net_below_idle]
    if not below:
        return []
    return [f"! net below zero (<0 !) for {', '.join(below)}: {NET_BELOW_IDLE}"]


def result_warnings(result: PairingResult) -> list[str]:
    """What a command says on stderr about a result it prints: idle windows that were not idle and engines whose
    net figure is below zero beyond its uncertainty (each once, with the cause and what to do)."""
    out = [f"{busy_idle_message(n, w)}: net figures rest on it; keep the device idle during the baseline, or rank "
           "by gross (the default)" for n, w in result.busy_idle_windows]
    below = [e.engine for e in result.engines if e.ok and e.net_below_idle]
    if below:
        out.append(f"net energy below zero beyond {SIGNIFICANCE:g} sigma for {len(below)} engine"
                   f"{'s' if len(below) != 1 else ''} ({', '.join(below[:4])}{' ...' if len(below) > 4 else ''}): "
                   f"{NET_BELOW_IDLE}")
    return out


def grouped_warnings(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Warnings as (engine, message) pairs, grouped by their kind (the text before the first colon) with a count
    of engines and the range of the first percentage they quote: `unstable timings: 24 engines, 10-55 %`."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for engine, message in dict.fromkeys(pairs):
        kind = message.split(":", 1)[0].strip()
        groups.setdefault(kind, []).append((engine, message))
    lines = []
    for kind, items in groups.items():
        engines = list(dict.fromkeys(e for e, _ in items))
        if len(items) == 1:
            lines.append(f"{engines[0]}: {items[0][1]}")
            continue
        numbers = [float(m.group(1)) for _, text in items if (m := re.search(r"(\d+(?:\.\d+)?) ?%", text))]
        spread = f", {min(numbers):.0f}-{max(numbers):.0f} %" if numbers and min(numbers) != max(numbers) else (
            f", {numbers[0]:.0f} %" if numbers else "")
        shown = ", ".join(engines[:6]) + (f" and {len(engines) - 6} more" if len(engines) > 6 else "")
        lines.append(f"{kind}: {len(engines)} engine{'s' if len(engines) != 1 else ''}{spread} ({shown}); "
                     f"for example: {items[0][1]}")
    return lines


def summary_lines(result: PairingResult, sort: str, limit: int = SUMMARY_LINES) -> list[str]:
    """hyperfine-style: how many times less energy (or less of the ranked figure) the first engine used than each
    of the next ones, with the ratio's uncertainty; engines equal within uncertainty are said to be."""
    key = sort.lstrip("-")
    descending = sort.startswith("-")
    ranked = [(p, e) for p, e in rank(result.engines, sort) if p is not None and not _missing(sort_getter(key)(e))]
    if len(ranked) < 2 or not isinstance(sort_getter(key)(ranked[0][1]), (int, float)):
        return []
    getter = sort_getter(key)
    first = ranked[0][1]
    figure = FIGURES.get(key)
    if figure is not None and figure.energy_per:
        less = f"x {'more' if descending else 'less'} energy per {figure.energy_per} than"
    else:
        less = f"x {'higher' if descending else 'lower'} {key} than"
    lines = [f"summary ({ranked_words(sort)}):", f"  {first.engine} {'used' if figure else 'had'}"]
    for _, e in ranked[1 : limit + 1]:
        a, b = getter(first), getter(e)
        ua, ub = _uncertainty(key, first), _uncertainty(key, e)
        r, u = ratio(b, ub, a, ua) if descending else ratio(a, ua, b, ub)
        if not math.isfinite(r):
            continue
        figure_text = plus_minus(r, u) if u > 0 else f"{r:.2f}"
        if equal_within(key, first, e):
            lines.append(f"    the same as {e.engine} within uncertainty ({figure_text} x)")
        else:
            lines.append(f"    {figure_text} {less} {e.engine}")
    if len(ranked) > limit + 1:
        lines.append(f"    ... and {len(ranked) - limit - 1} more (see the table)")
    return lines if len(lines) > 2 else []


def _footer(result: PairingResult, sort: str) -> list[str]:
    lines = idle_lines(result)
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
        f"ranked by {ranked_words(sort)}; `2=`: equal within {SIGNIFICANCE:g} sigma of the engine ranked above; "
        "sample = one input image, exec = one execution (one batch); ± = 1 sigma (meter resolution, clock, spread "
        "of repeats); CO2 from wall (gross) energy"
    )
    lines += below_idle_lines(result)
    if any(e.rail_estimate for e in result.engines):
        lines.append("* rail figure modelled (estimate), not measured")
    lines += summary_lines(result, sort)
    best = first_ranked(result, sort)
    if best is not None:
        from .carbon import context_lines

        lines.append(f"{best.engine} (rank 1), at the wall, per million samples (images):")
        lines += context_lines(best.co2_kg_per_sample, unit="samples")  # CO2 per sample already includes the PUE
    if has_accuracy(result.engines):
        found = fronts(result.engines, sort)
        evaluated = sorted({f"{e.accuracy.dataset}" for e in result.engines if e.accuracy is not None})
        grouped = f"; fronts within each of {found.groups} dataset/preprocessing groups" if found.groups > 1 else ""
        lines.append(
            f"front: E = on the Pareto front of top-1 vs {FIGURES[found.energy_field].words}, L = of top-1 vs mean "
            f"latency; E?/L? = possibly on it (beaten, but not beyond {SIGNIFICANCE:g} sigma on both axes); ok "
            f"engines only{grouped}; accuracy on {', '.join(evaluated)}"
        )
    return lines


def format_table(result: PairingResult, sort: str | None = None) -> list[str]:
    """The ranked table as aligned terminal lines, invalid/failed engines last with their reason."""
    sort = sort or DEFAULT_SORT
    shown = columns(result.engines, sort)
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


def _plain_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _record(position: int | None, tied: bool, e: EngineResult, found: Fronts | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"rank": position, "tied": tied, "status": e.status}
    for f in dataclasses.fields(EngineResult):
        if f.name == "accuracy":
            continue  # flattened below, when the table shows accuracy
        data[f.name] = _plain_value(getattr(e, f.name))
    for name in ("co2_kg_per_million", "co2_lb_per_million", "co2_g_per_million_samples"):
        data[name] = _plain_value(getattr(e, name))
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
            pareto_energy_possible=e.engine in found.energy_possible,
            pareto_latency_possible=e.engine in found.latency_possible,
        )
    return data


CSV_COLUMNS: tuple[str, ...] = (
    "rank",
    "tied",
    "status",
    *(f.name for f in dataclasses.fields(EngineResult) if f.name != "accuracy"),
    "co2_kg_per_million",
    "co2_lb_per_million",
    "co2_g_per_million_samples",
)
ACCURACY_COLUMNS: tuple[str, ...] = (
    "top1", "top5", "accuracy_samples", "accuracy_dataset", "accuracy_preprocessing", "pareto_energy", "pareto_latency",
    "pareto_energy_possible", "pareto_latency_possible",
)


def _fronts_if_any(engines: Sequence[EngineResult], sort: str | None) -> Fronts | None:
    return fronts(engines, sort) if has_accuracy(engines) else None


def _ranked_records(result: PairingResult, sort: str, found: Fronts | None) -> list[dict[str, Any]]:
    ranked = rank(result.engines, sort)
    shared = shared_ranks(ranked)
    return [_record(position, position in shared, e, found) for position, e in ranked]


def format_csv(result: PairingResult, sort: str | None = None) -> list[str]:
    """CSV lines: one row per engine, every figure with its unit in the column name; NaN is empty."""
    sort = sort or DEFAULT_SORT
    buffer = io.StringIO()
    found = _fronts_if_any(result.engines, sort)
    names = CSV_COLUMNS + (ACCURACY_COLUMNS if found is not None else ())
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in _ranked_records(result, sort, found):
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue().splitlines()


def table_document(result: PairingResult, sort: str | None = None) -> dict[str, Any]:
    """The JSON document (versioned) of the table."""
    sort = sort or DEFAULT_SORT
    idle = {k: _plain_value(v) for k, v in dataclasses.asdict(result.idle).items()} if result.idle else None
    found = _fronts_if_any(result.engines, sort)
    extra: dict[str, Any] = {}
    if found is not None:
        extra["pareto"] = {
            "energy": f"top1 vs {found.energy_field} (ok engines, within each dataset/preprocessing group)",
            "latency": "top1 vs latency_mean_ms (ok engines, within each dataset/preprocessing group)",
            "margin": f"possible: dominated, but not beyond {SIGNIFICANCE:g} sigma on both axes",
        }
    return {
        "format": TABLE_FORMAT,
        "version": TABLE_VERSION,
        "sort": sort,
        "ranked": ranked_words(sort),
        "ties": f"engines equal within {SIGNIFICANCE:g} combined standard uncertainties share a rank",
        "grid": result.grid.to_dict(),
        "pue": result.pue,
        "meter": result.meter,
        "resolution_w": result.resolution_w,
        "idle": idle,
        "busy_idle": [busy_idle_message(n, w) for n, w in result.busy_idle_windows],
        "net_below_idle": [e.engine for e in result.engines if e.ok and e.net_below_idle],
        "device": dict(result.device),
        "thresholds": dict(result.thresholds),
        "inference": "one engine execution (one batch); sample = one input of the batch",
        **extra,
        "engines": _ranked_records(result, sort, found),
    }


def format_json(result: PairingResult, sort: str | None = None) -> list[str]:
    """The versioned JSON document as lines."""
    return json.dumps(table_document(result, sort), indent=2, allow_nan=False).splitlines()


def format_markdown(result: PairingResult, sort: str | None = None) -> list[str]:
    """A GitHub Markdown table with the footer as a list below it."""
    sort = sort or DEFAULT_SORT
    shown = columns(result.engines, sort)
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
    rank(result.engines, sort)  # an unknown sort column is BadInput before anything is drawn
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
