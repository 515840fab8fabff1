"""The report's plots (matplotlib, the optional `plot` extra, imported only here and drawn without a display).

- `scatter_figure`: any table column against any other, one point per engine (the labs' "FLOPs on the x axis and
  latency on the y axis", or GFLOPs against net J/inference): colour = backbone, marker = precision, y error bars
  = the column's 1-sigma uncertainty where it has one. `report --plot FILE` draws it.
- `warmup_figure`: latency of the first iterations of each engine, warm-up included (lab 2: "plot the first ten
  iterations of inference latency, including the warm-up ones"), beside the median of its measured window.
- `power_figure`: the wall power trace of the session, every engine's windows shaded, the idle baseline drawn.
- `sources_figure`: J/inference per engine from the wall meter (integrated), from mean wall power x mean latency
  (lab 9's "energy draw x inference time" estimate) and from the on-board rails (measured, or the estimate
  sensor's model), side by side (lab 9 part 3.3: the Kill-a-Watt against command-line readings).
- `ranked_figure`: J/inference and CO2 per engine as ranked horizontal bars, in the table's order.

Builders return a matplotlib Figure (so tests read the drawn values back from its artists); `save_figure` writes
PNG, SVG or PDF by suffix; `report_figures` / `write_plots` give every report plot at once. Only valid windows
and ok engines carry numbers; invalid windows are shaded hatched on the power trace so they can be seen.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.errors import BadInput, MissingDependency
from edgebench.files import write_atomic
from edgebench.records import MeterTrace, RunRecord

from .pairing import EngineResult, PairingResult
from .table import default_sort, rank, sort_getter

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_EXTRA = "pip install 'edgebench[plot]'"
SUFFIXES = (".png", ".svg", ".pdf")
FIRST_ITERATIONS = 10  # lab 2: the first ten iterations, warm-up included
MAX_LEGEND_ENGINES = 16  # more engines than this: no per-engine legend entries (colours still differ)
MAX_TRACE_POINTS = 4000  # above this the power trace is drawn as a per-bin min/max envelope

# column -> (axis label with units, uncertainty getter or None)
AXES: dict[str, tuple[str, object]] = {
    "params": ("parameters (millions)", None),
    "gflops": ("GFLOPs per inference", None),
    "latency": ("mean latency (ms)", None),
    "p50": ("median latency (ms)", None),
    "throughput": ("throughput (samples/s)", None),
    "batch": ("batch size", None),
    "resolution": ("input pixels (H x W)", None),
    "wall_w": ("mean wall power (W)", None),
    "net_w": ("net wall power above idle (W)", None),
    "rail_w": ("mean on-board power (W)", None),
    "gross_j": ("J per inference at the wall", lambda e: e.gross_j_per_inference_u),
    "net_j": ("J per inference above idle", lambda e: e.net_j_per_inference_u),
    "rail_j": ("J per inference, on-board rails", lambda e: e.rail_j_per_inference_u),
    "j_per_sample": ("J per sample above idle", None),
    "co2": ("lb CO2 per inference", None),
}
MARKERS = {"fp32": "o", "fp16": "s", "int8": "^", "bf16": "D", "tf32": "v", "fp8": "P"}
SOURCE_COLOURS = {"wall": "#1f77b4", "lab": "#aec7e8", "rails": "#2ca02c", "model": "#ff7f0e"}


def _matplotlib() -> Any:
    """The Figure class, or a one-line MissingDependency (exit 2) saying how to install matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed on a headless device
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependency(f"plots need matplotlib: {PLOT_EXTRA} (or pip install matplotlib)") from None
    return Figure


def _colours(names: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def energy_unit(values: Sequence[float]) -> tuple[str, float]:
    """("J", 1), ("mJ", 1e3) or ("µJ", 1e6): the unit that keeps the largest value at or above 0.1, so the tick
    labels of a tiny engine read 2.6 mJ rather than 0.0026 J."""
    top = max((abs(v) for v in values if _finite(v)), default=1.0)
    for unit, scale in (("J", 1.0), ("mJ", 1e3)):
        if top * scale >= 0.1:
            return unit, scale
    return "µJ", 1e6


def _subtitle(result: PairingResult) -> str:
    return f"{result.meter or 'meter'} · {result.grid.label}"


# --- saving ---------------------------------------------------------------------------------------------------


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` (PNG, SVG or PDF by suffix); returns the path. SVG text stays text."""
    import matplotlib

    out = Path(path)
    if out.suffix.lower() not in SUFFIXES:
        raise BadInput(f"cannot write plot {out}: give a .png, .svg or .pdf path")
    # a fixed salt per file name: stable ids, distinct between the SVGs one HTML page inlines
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": out.stem}):
        buffer = io.BytesIO()  # drawn in memory, then written by edgebench/files.py (no FIFO or device clobbered)
        try:
            fig.savefig(buffer, format=out.suffix.lower()[1:], metadata=_no_date(out.suffix.lower()), bbox_inches="tight")
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot write plot {out} ({exc}): give a writable .png, .svg or .pdf path") from None
    write_atomic(out, buffer.getvalue(), what="plot")
    return out


def svg_text(fig: Figure, salt: str) -> str:
    """`fig` as an `<svg>` element (no XML prologue) for inlining into HTML."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata=_no_date(".svg"), bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _no_date(suffix: str) -> dict[str, Any]:
    # a date in the file makes every re-render differ; PNG takes no date key
    return {"Date": None} if suffix in (".svg", ".pdf") else {}


# --- scatter of two table columns -----------------------------------------------------------------------------


def _value(e: EngineResult, column: str) -> float:
    value = sort_getter(column)(e)
    if column == "params" and value is not None and math.isfinite(value):
        return value / 1e6
    return float(value) if value is not None else math.nan


def scatter_figure(result: PairingResult, *, x: str = "gflops", y: str = "net_j") -> Figure:
    """`y` against `x` (keys of AXES), one point per ok engine."""
    for name, column in (("--x", x), ("--y", y)):
        if column not in AXES:
            raise BadInput(f"{name} {column!r} cannot be plotted: use one of {', '.join(AXES)}")
    figure_class = _matplotlib()
    engines = [e for e in result.engines if e.ok]
    points = [(e, _value(e, x), _value(e, y)) for e in engines]
    points = [(e, a, b) for e, a, b in points if math.isfinite(a) and math.isfinite(b)]
    if not points:
        raise BadInput(f"no engine has both {x} and {y}: pick other columns (net_j needs an idle baseline)")
    backbones = sorted({e.backbone for e, _, _ in points})
    colours = _colours(backbones)
    fig = figure_class(figsize=(8, 5.5), dpi=120)
    ax = fig.subplots()
    y_label, y_u = AXES[y]
    for e, a, b in points:
        err = y_u(e) if callable(y_u) else None
        drawn = ax.errorbar(
            a, b, yerr=err if err is not None and math.isfinite(err) else None, fmt=MARKERS.get(e.precision, "o"),
            color=colours[e.backbone], capsize=3, markersize=7,
        )
        drawn.lines[0].set_gid(f"point:{e.engine}")
        # fp16 labels below their point, others above: an engine's two precisions often sit close together
        below = e.precision == "fp16"
        ax.annotate(e.engine, (a, b), textcoords="offset points", xytext=(5, -10 if below else 4), fontsize=7)
    for backbone in backbones:
        ax.plot([], [], "o", color=colours[backbone], label=backbone)
    for precision in sorted({e.precision for e, _, _ in points}):
        ax.plot([], [], MARKERS.get(precision, "o"), color="grey", label=precision)
    ax.set_xlabel(AXES[x][0])
    ax.set_ylabel(y_label)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(_subtitle(result), fontsize=8)
    fig.tight_layout()
    return fig


def plot_result(result: PairingResult, path: str | Path, *, x: str = "gflops", y: str = "net_j") -> Path:
    """Draw `y` against `x` for every valid engine into `path` (PNG, SVG or PDF by suffix); returns the path."""
    return save_figure(scatter_figure(result, x=x, y=y), path)


# --- latency of the first iterations --------------------------------------------------------------------------


def first_windows(records: Sequence[RunRecord]) -> dict[str, RunRecord]:
    """Each engine's first window that has timings (file order): the one whose warm-up started cold."""
    first: dict[str, RunRecord] = {}
    for r in records:
        if r.kind == "run" and r.latencies_ns and r.engine not in first:
            first[r.engine] = r
    return first


def warmup_figure(records: Sequence[RunRecord], *, first: int = FIRST_ITERATIONS) -> Figure:
    """Latency (ms) of the first `first` iterations of each engine's first window, warm-up included: hollow
    markers for warm-up iterations (discarded), filled for measured ones, a dashed line at the median of the
    measured window."""
    if first < 1:
        raise BadInput(f"first {first}: plot at least 1 iteration")
    windows = first_windows(records)
    if not windows:
        raise BadInput("no engine window has latencies to plot: pass a directory where engines ran")
    figure_class = _matplotlib()
    colours = _colours(list(windows))
    fig = figure_class(figsize=(8, 5), dpi=100)
    ax = fig.subplots()
    spread = []
    for engine, r in windows.items():
        sequence_ms = np.array([*r.warmup_latencies_ns, *r.latencies_ns][:first], dtype=np.float64) / 1e6
        x = np.arange(1, len(sequence_ms) + 1)
        warm = min(len(r.warmup_latencies_ns), len(sequence_ms))
        colour = colours[engine]
        label = engine if len(windows) <= MAX_LEGEND_ENGINES else None
        (line,) = ax.plot(x, sequence_ms, "-", color=colour, alpha=0.6, label=label)
        line.set_gid(f"latency:{engine}")
        ax.plot(x[:warm], sequence_ms[:warm], "o", mfc="white", color=colour, markersize=6)
        ax.plot(x[warm:], sequence_ms[warm:], "o", color=colour, markersize=6)
        median_ms = float(np.median(np.asarray(r.latencies_ns, dtype=np.float64))) / 1e6
        ax.axhline(median_ms, color=colour, linestyle="--", linewidth=0.8, gid=f"median:{engine}")
        spread += [float(sequence_ms.min()), float(sequence_ms.max()), median_ms]
    positive = [v for v in spread if v > 0]
    if positive and max(positive) / min(positive) > 20:  # a cold first iteration 100x slower flattens the rest
        ax.set_yscale("log")
    ax.plot([], [], "o", mfc="white", color="grey", label="warm-up iteration (discarded)")
    ax.plot([], [], "o", color="grey", label="measured iteration")
    ax.plot([], [], "--", color="grey", label="median of the measured window")
    ax.set_xlabel("iteration (1 = first after loading)")
    ax.set_ylabel("latency per inference (ms)")
    ax.set_title(f"first {first} iterations of each engine's first window, warm-up included", fontsize=9)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


# --- the wall power trace -------------------------------------------------------------------------------------


def trace_envelope(t_ns: np.ndarray, power_w: np.ndarray, max_points: int = MAX_TRACE_POINTS):
    """(t_ns, power_w) with at most `max_points` points: the trace itself when short enough, otherwise each of
    max_points // 2 bins drawn by its minimum and its maximum (in time order), so spikes stay visible."""
    n = len(t_ns)
    if n <= max_points:
        return np.asarray(t_ns), np.asarray(power_w, dtype=np.float64)
    bins = max(1, max_points // 2)
    edges = np.linspace(0, n, bins + 1).astype(np.int64)
    out_t: list[int] = []
    out_p: list[float] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        chunk = power_w[a:b]
        i, j = a + int(np.argmin(chunk)), a + int(np.argmax(chunk))
        for k in sorted({i, j}):
            out_t.append(int(t_ns[k]))
            out_p.append(float(power_w[k]))
    return np.array(out_t, dtype=np.int64), np.array(out_p, dtype=np.float64)


def power_figure(trace: MeterTrace, result: PairingResult) -> Figure:
    """Wall power (W) against time since the first reading (s); each engine's windows shaded in its colour
    (hatched where invalid), idle windows in grey, the idle baseline as a dashed line with its 1-sigma band."""
    if len(trace.t_ns) == 0:
        raise BadInput("the meter log holds no readings: nothing to plot; check the meter's log file")
    figure_class = _matplotlib()
    t0 = int(trace.t_ns[0])
    fig = figure_class(figsize=(10, 4.5), dpi=100)
    ax = fig.subplots()
    t, p = trace_envelope(trace.t_ns, trace.power_w)
    (line,) = ax.plot((t - t0) / 1e9, p, color="black", linewidth=0.8, label=f"wall power ({trace.meter})")
    line.set_gid("wall-power")
    engines = list(dict.fromkeys(w.engine for w in result.windows if w.kind == "run"))
    colours = _colours(engines)
    labelled: set[str] = set()
    for w in result.windows:
        if w.status.startswith("failed") or w.end_host_ns <= w.start_host_ns:
            continue  # a window that never ran has no span to shade
        key = "idle" if w.kind == "idle" else w.engine
        label = None if key in labelled else ("idle window" if key == "idle" else w.engine)
        if key != "idle" and len(engines) > MAX_LEGEND_ENGINES:
            label = None  # a legend of 72 engines hides the plot: the table says which window is whose
        labelled.add(key)
        span = ax.axvspan(
            (w.start_host_ns - t0) / 1e9, (w.end_host_ns - t0) / 1e9,
            color="grey" if key == "idle" else colours[key], alpha=0.25, linewidth=0,
            hatch=None if w.valid else "//", label=label,
        )
        span.set_gid(f"window:{w.kind}:{w.engine}:{w.repeat}:{w.attempt}")
    if result.idle is not None:
        idle = result.idle
        ax.axhline(idle.power_w, color="dimgrey", linestyle="--", linewidth=1.2,
                   label=f"idle baseline {idle.power_w:.3g} ± {idle.power_u_w:.2g} W", gid="idle-baseline")
        if idle.power_u_w > 0:
            ax.axhspan(idle.power_w - idle.power_u_w, idle.power_w + idle.power_u_w, color="dimgrey", alpha=0.15)
    handles, _ = ax.get_legend_handles_labels()
    if any(not w.valid and not w.status.startswith("failed") for w in result.windows):
        from matplotlib.patches import Patch

        handles.append(Patch(facecolor="none", hatch="//", edgecolor="grey", label="invalid window"))
    ax.set_xlabel("time since the first meter reading (s)")
    ax.set_ylabel("wall power (W)")
    ax.set_title(f"wall power over the session · {_subtitle(result)}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


# --- wall vs lab estimate vs rails ------------------------------------------------------------------------------


def lab_estimate_j(e: EngineResult) -> float:
    """Lab 9's estimate of J/inference: mean wall power x mean latency (the time between iterations, input
    preparation, is left out, so it sits at or below the integrated wall figure)."""
    return e.wall_power_w * e.latency_mean_ms / 1e3


@dataclass(frozen=True)
class SourceBar:
    """One bar of the sources plot: an engine's J/inference from one source, with its 1-sigma uncertainty."""

    engine: str
    source: str  # "wall", "lab", "rails" or "model" (keys of SOURCE_LABELS)
    j_per_inference: float
    u: float


SOURCE_LABELS = {
    "wall": "wall meter, integrated over the window",
    "lab": "wall power x latency (lab 9 estimate)",
    "rails": "on-board rails (measured)",
    "model": "on-board model (estimate sensor)",
}


def source_bars(result: PairingResult, sort: str | None = None) -> list[SourceBar]:
    """The bars of the sources plot, ok engines in the table's order; NaN figures are left out."""
    bars = []
    for _, e in rank([e for e in result.engines if e.ok], sort):
        candidates = [
            SourceBar(e.engine, "wall", e.gross_j_per_inference, e.gross_j_per_inference_u),
            SourceBar(e.engine, "lab", lab_estimate_j(e), math.nan),
            SourceBar(e.engine, "model" if e.rail_estimate else "rails", e.rail_j_per_inference,
                      e.rail_j_per_inference_u),
        ]
        bars += [b for b in candidates if _finite(b.j_per_inference)]
    return bars


def sources_figure(result: PairingResult, sort: str | None = None) -> Figure:
    """Grouped bars, one group per ok engine: J/inference from the wall meter, lab 9's power x latency estimate,
    and the on-board rails (or the estimate sensor's model), with 1-sigma error bars where there is one."""
    bars = source_bars(result, sort)
    if not bars:
        raise BadInput("no engine has a valid window: nothing to compare; measure again with longer windows")
    figure_class = _matplotlib()
    engines = list(dict.fromkeys(b.engine for b in bars))
    sources = [s for s in SOURCE_LABELS if any(b.source == s for b in bars)]
    unit, scale = energy_unit([b.j_per_inference for b in bars])
    width = 0.8 / len(sources)
    fig = figure_class(figsize=(min(30.0, max(6.0, 1.2 * len(engines) + 3)), 5), dpi=100)
    ax = fig.subplots()
    for k, source in enumerate(sources):
        mine = {b.engine: b for b in bars if b.source == source}
        xs = [i + (k - (len(sources) - 1) / 2) * width for i, name in enumerate(engines) if name in mine]
        heights = [mine[name].j_per_inference * scale for name in engines if name in mine]
        errors = [mine[name].u * scale if _finite(mine[name].u) else 0.0 for name in engines if name in mine]
        container = ax.bar(
            xs, heights, width, yerr=errors if any(errors) else None, capsize=2, label=SOURCE_LABELS[source],
            color=SOURCE_COLOURS[source], hatch="//" if source == "model" else None, edgecolor="white",
        )
        for patch, name in zip(container.patches, [n for n in engines if n in mine], strict=True):
            patch.set_gid(f"bar:{source}:{name}")
    ax.set_xticks(range(len(engines)), engines, rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("engine (table order)")
    ax.set_ylabel(f"energy per inference ({unit})")
    ax.set_title(f"wall meter vs estimate vs on-board rails · {_subtitle(result)}", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- ranked J/inference and CO2 -------------------------------------------------------------------------------


def ranked_figure(result: PairingResult, sort: str | None = None) -> Figure:
    """Two panels of horizontal bars sharing the engine axis, in the table's rank order (best at the top):
    J/inference (net when an idle baseline gave one, else gross; 1-sigma error bars) and g CO2 per million
    inferences (from wall energy x PUE, as in the table)."""
    ranked = [e for _, e in rank([e for e in result.engines if e.ok], sort)]
    if not ranked:
        raise BadInput("no engine has a valid window: nothing to rank; measure again with longer windows")
    figure_class = _matplotlib()
    net = default_sort(result.engines) == "net_j"
    energy = [(e.net_j_per_inference, e.net_j_per_inference_u) if net
              else (e.gross_j_per_inference, e.gross_j_per_inference_u) for e in ranked]
    co2_g_per_million = [e.co2_kg_per_inference * 1e9 for e in ranked]
    names = [e.engine for e in ranked]
    y = np.arange(len(ranked))
    fig = figure_class(figsize=(11, max(2.5, 0.45 * len(ranked) + 1.5)), dpi=100)
    left, right = fig.subplots(1, 2, sharey=True)
    unit, scale = energy_unit([v for v, _ in energy])
    values = [v * scale if _finite(v) else 0.0 for v, _ in energy]
    errors = [u * scale if _finite(u) else 0.0 for _, u in energy]
    left.barh(y, values, xerr=errors if any(errors) else None, capsize=2, color="#1f77b4")
    right.barh(y, [v if _finite(v) else 0.0 for v in co2_g_per_million], color="#8c564b")
    left.set_yticks(y, [f"{i}. {name}" for i, name in enumerate(names, 1)], fontsize=7)
    left.invert_yaxis()  # rank 1 at the top
    left.set_xlabel(f"{'net (above idle)' if net else 'gross (wall)'} energy per inference ({unit})")
    left.set_ylabel("engine, by rank")
    right.set_xlabel(f"CO2 per million inferences (g; {result.grid.region or 'grid'} factor, PUE {result.pue:g})")
    for ax in (left, right):
        ax.grid(True, axis="x", alpha=0.3)
    sort_name = sort or default_sort(result.engines)
    fig.suptitle(f"ranked by {sort_name} · {_subtitle(result)}", fontsize=9)
    fig.tight_layout()
    return fig


# --- every report plot at once --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFigure:
    """One plot of the report: a file stem, a caption, and the figure."""

    name: str
    caption: str
    figure: Any  # matplotlib Figure


def report_figures(
    result: PairingResult, records: Sequence[RunRecord], trace: MeterTrace, *, sort: str | None = None
) -> list[ReportFigure]:
    """The report's plots that the data allows (a directory with no timed window has no latency plot, one with
    no valid window no bars), in reading order."""
    out = []
    if first_windows(records):
        out.append(ReportFigure(
            "latency-first-iterations",
            f"Latency of the first {FIRST_ITERATIONS} iterations of each engine, warm-up included (hollow: warm-up, "
            "discarded from every figure); dashed: the median of the measured window.",
            warmup_figure(records),
        ))
    if len(trace.t_ns):
        out.append(ReportFigure(
            "wall-power",
            "Wall power over the session; shaded: each engine's measured windows (hatched: invalid), grey: idle "
            "windows; dashed: the idle baseline with its 1-sigma band.",
            power_figure(trace, result),
        ))
    if any(e.ok for e in result.engines):
        out.append(ReportFigure(
            "energy-sources",
            "J/inference per engine: the wall meter integrated over the windows, lab 9's wall power x latency "
            "estimate, and the on-board rails (hatched: modelled by the estimate sensor, not measured).",
            sources_figure(result, sort),
        ))
        out.append(ReportFigure(
            "ranked-energy-co2",
            "J/inference (1-sigma error bars) and CO2 per million inferences per engine, in the table's rank order.",
            ranked_figure(result, sort),
        ))
    y = default_sort(result.engines)
    if any(e.ok and _finite(e.gflops_per_inference) and _finite(sort_getter(y)(e)) for e in result.engines):
        out.append(ReportFigure(
            "gflops-energy",
            f"{'Net' if y == 'net_j' else 'Gross'} J/inference against GFLOPs per inference (from the engines' "
            "manifest), one point per engine: colour = backbone, marker = precision, error bars = 1 sigma.",
            scatter_figure(result, x="gflops", y=y),
        ))
    return out


def close(figures: Sequence[ReportFigure]) -> None:
    """Let go of the figures' memory (they are not held by pyplot, so dropping them is enough; kept explicit)."""
    for f in figures:
        f.figure.clear()


def write_plots(
    out_dir: str | Path,
    result: PairingResult,
    records: Sequence[RunRecord],
    trace: MeterTrace,
    *,
    sort: str | None = None,
    suffixes: Sequence[str] = (".png", ".svg"),
) -> list[Path]:
    """Every report plot into `out_dir` as <name>.png and <name>.svg; returns the paths written."""
    directory = Path(out_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create {directory} ({exc.strerror}): give a directory you can write to") from None
    written = []
    figures = report_figures(result, records, trace, sort=sort)
    for f in figures:
        for suffix in suffixes:
            written.append(save_figure(f.figure, directory / f"{f.name}{suffix}"))
    close(figures)
    return written
