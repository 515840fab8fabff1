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
- `ranked_figure`: the ranked figure (wall J per sample by default: whatever the table is sorted by) and CO2 per
  million samples per engine as ranked horizontal bars, in the table's order.

Builders return a matplotlib Figure (so tests read the drawn values back from its artists); `save_figure` writes
PNG, SVG or PDF by suffix; `report_figures` gives every report plot at once and `render_report_figures` renders
each of them once (SVG text for the HTML page, PNG bytes for `--plots`). Only valid windows and ok engines carry
numbers; invalid windows are shaded hatched on the power trace so they can be seen. Text from the data (engine
names) is drawn as plain text: a `$` never starts mathtext, control characters are written out.

The module never imports pyplot or chooses a backend: figures are `matplotlib.figure.Figure`s saved through their
own canvas, so a notebook that imports edgebench keeps its inline backend.
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
from edgebench.records import MeterTrace, RunRecord, latencies_ms
from edgebench.units import visible

from .pairing import EngineResult, PairingResult
from .table import DEFAULT_SORT, FIGURES, front_figure, rank, ranked_words, shared_ranks, sort_getter

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

PLOT_EXTRA = "pip install 'edgebench[plot]'"
SUFFIXES = (".png", ".svg", ".pdf")
FIRST_ITERATIONS = 10  # lab 2: the first ten iterations, warm-up included
MAX_LEGEND_ENGINES = 16  # more engines than this: no per-engine legend entries (colours still differ)
# the bar charts show the first engines in rank order only: past a few dozen bars nobody reads them, and each
# bar's label costs drawing time (measured: 72 engines took most of `report --html --plots`); the table has all
MAX_SOURCE_ENGINES = 24
# zlib level 1: PNG files about 8 % larger than at the default level 6, written in three quarters of the time (the
# encoding was a fifth of `report --html --plots` at 72 engines)
PNG_OPTIONS = {"compress_level": 1}
MAX_RANKED_ENGINES = 40
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
    "gross_j_sample": ("J per sample (image) at the wall", lambda e: e.gross_j_per_sample_u),
    "net_j_sample": ("J per sample (image) above idle", lambda e: e.net_j_per_sample_u),
    "gross_j": ("J per execution (batch) at the wall", lambda e: e.gross_j_per_inference_u),
    "net_j": ("J per execution (batch) above idle", lambda e: e.net_j_per_inference_u),
    "rail_j": ("J per execution (batch), on-board rails", lambda e: e.rail_j_per_inference_u),
    "j_per_sample": ("J per sample (image) above idle", lambda e: e.net_j_per_sample_u),
    "co2": ("lb CO2 per inference", None),
}
# fixed margins instead of tight_layout (which lays every text out once more per figure): labels that reach past
# them are kept by the tight bounding box the figures are saved with (`tight_bbox`)
LAYOUT = {"left": 0.1, "right": 0.97, "bottom": 0.12, "top": 0.9, "wspace": 0.08}
MARKERS = {"fp32": "o", "fp16": "s", "int8": "^", "bf16": "D", "tf32": "v", "fp8": "P"}
SOURCE_COLOURS = {"wall": "#1f77b4", "lab": "#aec7e8", "rails": "#2ca02c", "model": "#ff7f0e"}


def _matplotlib() -> type[Figure]:
    """The Figure class, or a one-line MissingDependency (exit 2) saying how to install matplotlib. No backend is
    chosen: a Figure saves through its own canvas, and the caller's backend (a notebook's inline one) stays."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependency(f"plots need matplotlib: {PLOT_EXTRA} (or pip install matplotlib)") from None
    return Figure


IDLE_COLOUR = "#7f7f7f"  # idle windows and the baseline: a grey no engine is given


def _colours(names: Sequence[str]) -> dict[str, Any]:
    """A colour per name from tab10/tab20, leaving out the greys (idle's colour)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(names) <= 9 else "tab20"]
    palette = [cmap(i) for i in range(cmap.N)]
    palette = [c for c in palette if not (abs(c[0] - c[1]) < 0.02 and abs(c[1] - c[2]) < 0.02)]  # drop greys
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def label(text: str) -> str:
    """Text from the data as a plot label: plain text (a `$` is a dollar sign, never mathtext), control and
    bidirectional-override characters written out."""
    return visible(str(text)).replace("$", r"\$")


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


def svg_document(fig: Figure, salt: str, bbox: Bbox | str = "tight") -> str:
    """`fig` as a whole SVG file's text (XML prologue included); text stays text, no date, ids salted. `bbox`:
    the saved area (`tight_bbox`, computed once for several formats), or "tight"."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata=_no_date(".svg"), bbox_inches=bbox)
    return buffer.getvalue()


def tight_bbox(fig: Figure) -> Bbox:
    """The area `bbox_inches="tight"` would save (everything drawn, padded 0.1 in), computed once: each savefig
    with "tight" draws the whole figure an extra time to find it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return fig.get_tightbbox(FigureCanvasAgg(fig).get_renderer()).padded(0.1)


def inline_svg(document: str) -> str:
    """An SVG document as an `<svg>` element (no XML prologue) for inlining into HTML."""
    return document[document.index("<svg") :]


def _no_date(suffix: str) -> dict[str, Any]:
    # a date in the file makes every re-render differ; PNG takes no date key
    return {"Date": None} if suffix in (".svg", ".pdf") else {}


# --- scatter of two table columns -----------------------------------------------------------------------------


def _value(e: EngineResult, column: str) -> float:
    value = sort_getter(column)(e)
    if column == "params" and value is not None and math.isfinite(value):
        return value / 1e6
    return float(value) if value is not None else math.nan


MAX_SCATTER_LABELS = 12  # more points than this: only the best few (lowest y) are labelled


def _place_labels(ax: Axes, points: Sequence[tuple[str, float, float]], fontsize: float = 7) -> None:
    """Label points without piling labels up: each label tries a few offsets around its point and takes the first
    whose box (estimated in display pixels) overlaps no label placed before it; a label that fits nowhere is
    left out (the table names every point)."""
    fig = ax.figure
    ax.autoscale_view()
    to_px = ax.transData.transform
    char_w, line_h = fontsize * 0.6 * fig.dpi / 72, fontsize * 1.3 * fig.dpi / 72
    offsets = [(5, 4), (5, -10), (-5, 4), (-5, -10), (5, 14), (5, -20)]
    placed: list[tuple[float, float, float, float]] = []
    for name, x, y in points:
        px, py = to_px((x, y))
        width = len(name) * char_w
        for dx, dy in offsets:
            left = px + dx if dx > 0 else px + dx - width
            box = (left, py + dy, left + width, py + dy + line_h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                placed.append(box)
                ax.annotate(label(name), (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                            ha="left" if dx > 0 else "right", gid=visible(f"label:{name}"))
                break


def scatter_figure(result: PairingResult, *, x: str = "gflops", y: str = DEFAULT_SORT) -> Figure:
    """`y` against `x` (keys of AXES), one point per ok engine; the legend outside the axes, labels placed so they
    do not overlap (only the best MAX_SCATTER_LABELS by `y` when there are more points)."""
    for name, column in (("--x", x), ("--y", y)):
        if column not in AXES:
            raise BadInput(f"{name} {column!r} cannot be plotted: use one of {', '.join(AXES)}")
    figure_class = _matplotlib()
    engines = [e for e in result.engines if e.ok]
    points = [(e, _value(e, x), _value(e, y)) for e in engines]
    points = [(e, a, b) for e, a, b in points if math.isfinite(a) and math.isfinite(b)]
    if not points:
        raise BadInput(f"no engine has both {x} and {y}: pick other columns (net figures need an idle baseline)")
    backbones = sorted({e.backbone for e, _, _ in points})
    colours = _colours(backbones)
    fig = figure_class(figsize=(9, 5.5), dpi=120)
    ax = fig.subplots()
    y_label, y_u = AXES[y]
    groups: dict[tuple[str, str], list[tuple[EngineResult, float, float]]] = {}
    for e, a, b in points:
        groups.setdefault((e.backbone, e.precision), []).append((e, a, b))
        (marker,) = ax.plot([a], [b], MARKERS.get(e.precision, "o"), color=colours[e.backbone], markersize=7)
        marker.set_gid(visible(f"point:{e.engine}"))
    for (backbone, _), members in groups.items():  # one errorbar call per group: 72 calls cost most of the plot
        errors = [y_u(e) if callable(y_u) else math.nan for e, _, _ in members]
        if any(math.isfinite(u) for u in errors):
            ax.errorbar([a for _, a, _ in members], [b for _, _, b in members],
                        yerr=[u if math.isfinite(u) else 0.0 for u in errors], fmt="none", ecolor=colours[backbone],
                        capsize=3)
    labelled = sorted(points, key=lambda p: p[2])[:MAX_SCATTER_LABELS]
    _place_labels(ax, [(e.engine, a, b) for e, a, b in labelled])
    for backbone in backbones:
        ax.plot([], [], "o", color=colours[backbone], label=label(backbone))
    for precision in sorted({e.precision for e, _, _ in points}):
        ax.plot([], [], MARKERS.get(precision, "o"), color="grey", label=label(precision))
    ax.set_xlabel(AXES[x][0])
    ax.set_ylabel(y_label)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    more = len(points) - len(labelled)
    ax.set_title(label(_subtitle(result)) + (f" · best {len(labelled)} labelled, {more} more in the table" if more else ""),
                 fontsize=8)
    fig.subplots_adjust(**LAYOUT)
    return fig


def plot_result(result: PairingResult, path: str | Path, *, x: str = "gflops", y: str = DEFAULT_SORT) -> Path:
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


def warmup_figure(
    records: Sequence[RunRecord], *, first: int = FIRST_ITERATIONS, engines: Sequence[str] | None = None
) -> Figure:
    """Latency (ms) of the first `first` iterations of each engine's first window, warm-up included: hollow
    markers for warm-up iterations (discarded), filled for measured ones, a dashed line at the median of the
    measured window. `engines`: only these, in this order (the report draws the first MAX_LEGEND_ENGINES ranked:
    past a dozen or so lines nobody can tell them apart)."""
    if first < 1:
        raise BadInput(f"first {first}: plot at least 1 iteration")
    windows = first_windows(records)
    if engines is not None:
        windows = {name: windows[name] for name in engines if name in windows}
    if not windows:
        raise BadInput("no engine window has latencies to plot: pass a directory where engines ran")
    figure_class = _matplotlib()
    colours = _colours(list(windows))
    fig = figure_class(figsize=(10, 5), dpi=100)
    ax = fig.subplots()
    spread = []
    for engine, r in windows.items():
        sequence_ms = latencies_ms([*r.warmup_latencies_ns, *r.latencies_ns][:first])
        x = np.arange(1, len(sequence_ms) + 1)
        warm = min(len(r.warmup_latencies_ns), len(sequence_ms))
        colour = colours[engine]
        name = label(engine) if len(windows) <= MAX_LEGEND_ENGINES else None
        (line,) = ax.plot(x, sequence_ms, "-", color=colour, alpha=0.6, label=name)
        line.set_gid(visible(f"latency:{engine}"))
        ax.plot(x[:warm], sequence_ms[:warm], "o", mfc="white", color=colour, markersize=6)
        ax.plot(x[warm:], sequence_ms[warm:], "o", color=colour, markersize=6)
        median_ms = float(np.median(np.asarray(r.latencies_ns, dtype=np.float64))) / 1e6  # a statistic: ns, once
        ax.axhline(median_ms, color=colour, linestyle="--", linewidth=0.8, gid=visible(f"median:{engine}"))
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
    from matplotlib.ticker import MaxNLocator

    locator = ax.xaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
        locator.set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.subplots_adjust(**LAYOUT)
    return fig


# --- the wall power trace -------------------------------------------------------------------------------------


def trace_envelope(
    t_ns: np.ndarray, power_w: np.ndarray, max_points: int = MAX_TRACE_POINTS
) -> tuple[np.ndarray, np.ndarray]:
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
    (hatched where invalid), idle windows in grey (cross-hatched when the device was busy during them), the idle
    baseline as a dashed line (through the idle windows when it is interpolated in time) with its 1-sigma band."""
    if len(trace.t_ns) == 0:
        raise BadInput("the meter log holds no readings: nothing to plot; check the meter's log file")
    figure_class = _matplotlib()
    t0 = int(trace.t_ns[0])
    fig = figure_class(figsize=(10, 4.5), dpi=100)
    ax = fig.subplots()
    t, p = trace_envelope(trace.t_ns, trace.power_w)
    (line,) = ax.plot((t - t0) / 1e9, p, color="black", linewidth=0.8, label=label(f"wall power ({trace.meter})"))
    line.set_gid("wall-power")
    engines = list(dict.fromkeys(w.engine for w in result.windows if w.kind == "run"))
    colours = _colours(engines)
    labelled: set[str] = set()
    for w in result.windows:
        if w.failed or w.end_host_ns <= w.start_host_ns:
            continue  # a window that never ran has no span to shade
        key = "idle" if w.kind == "idle" else w.engine
        name = None if key in labelled else ("idle window" if key == "idle" else label(w.engine))
        if key != "idle" and len(engines) > MAX_LEGEND_ENGINES:
            name = None  # a legend of 72 engines hides the plot: the table says which window is whose
        labelled.add(key)
        hatch = "xx" if w.not_idle else (None if w.valid else "//")
        span = ax.axvspan(
            (w.start_host_ns - t0) / 1e9, (w.end_host_ns - t0) / 1e9,
            color=IDLE_COLOUR if key == "idle" else colours[key], alpha=0.25, linewidth=0, hatch=hatch, label=name,
        )
        span.set_gid(visible(f"window:{w.kind}:{w.engine}:{w.repeat}:{w.attempt}"))
    idle = result.idle
    if idle is not None:
        knots = sorted((w.mid_host_ns, w.mean_power_w, w.mean_power_u_w) for w in result.windows
                       if w.kind == "idle" and w.valid)
        words = f"idle baseline {idle.power_w:.3g} ± {idle.power_u_w:.2g} W"
        if idle.interpolated and len(knots) > 1:
            xs = [(int(trace.t_ns[0]) - t0) / 1e9] + [(k[0] - t0) / 1e9 for k in knots] + [(int(trace.t_ns[-1]) - t0) / 1e9]
            ys = [knots[0][1]] + [k[1] for k in knots] + [knots[-1][1]]
            us = [knots[0][2]] + [k[2] for k in knots] + [knots[-1][2]]
            ax.plot(xs, ys, color="dimgrey", linestyle="--", linewidth=1.2, gid="idle-baseline",
                    label=f"idle baseline, interpolated between {len(knots)} idle windows")
            ax.fill_between(xs, [y - u for y, u in zip(ys, us, strict=True)], [y + u for y, u in zip(ys, us, strict=True)],
                            color="dimgrey", alpha=0.15, linewidth=0)
        else:
            ax.axhline(idle.power_w, color="dimgrey", linestyle="--", linewidth=1.2, label=words, gid="idle-baseline")
            if idle.power_u_w > 0:
                ax.axhspan(idle.power_w - idle.power_u_w, idle.power_w + idle.power_u_w, color="dimgrey", alpha=0.15)
    handles, _ = ax.get_legend_handles_labels()
    from matplotlib.patches import Patch

    if any(not w.valid and not w.failed for w in result.windows):
        handles.append(Patch(facecolor="none", hatch="//", edgecolor="grey", label="invalid window"))
    if result.busy_idle_windows:
        handles.append(Patch(facecolor="none", hatch="xx", edgecolor=IDLE_COLOUR, label="idle window, device busy"))
    ax.set_xlabel("time since the first meter reading (s)")
    ax.set_ylabel("wall power (W)")
    ax.set_title(label(f"wall power over the session · {_subtitle(result)}"), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.subplots_adjust(**LAYOUT)
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


def _per(sort: str | None) -> str:
    """"sample" when the ranked energy figure is per sample, else "execution": what the energy plots show."""
    return front_figure(sort).energy_per


def source_bars(result: PairingResult, sort: str | None = None) -> list[SourceBar]:
    """The bars of the sources plot, ok engines in the table's order; NaN figures are left out. Per sample when
    the table ranks a per-sample figure (each engine's figures divided by its batch), else per execution."""
    per_sample = _per(sort) == "sample"
    bars = []
    for _, e in rank([e for e in result.engines if e.ok], sort)[:MAX_SOURCE_ENGINES]:
        d = e.batch if per_sample and e.batch else 1
        candidates = [
            SourceBar(e.engine, "wall", e.gross_j_per_inference / d, e.gross_j_per_inference_u / d),
            SourceBar(e.engine, "lab", lab_estimate_j(e) / d, math.nan),
            SourceBar(e.engine, "model" if e.rail_estimate else "rails", e.rail_j_per_inference / d,
                      e.rail_j_per_inference_u / d),
        ]
        bars += [b for b in candidates if _finite(b.j_per_inference)]
    return bars


def sources_figure(result: PairingResult, sort: str | None = None) -> Figure:
    """Grouped bars, one group per ok engine: J per sample (or per execution, as the table ranks) from the wall
    meter, lab 9's power x latency estimate, and the on-board rails (or the estimate sensor's model), with 1-sigma
    error bars where there is one."""
    bars = source_bars(result, sort)
    if not bars:
        raise BadInput("no engine has a valid window: nothing to compare; measure again with longer windows")
    figure_class = _matplotlib()
    engines = list(dict.fromkeys(b.engine for b in bars))
    sources = [s for s in SOURCE_LABELS if any(b.source == s for b in bars)]
    unit, scale = energy_unit([b.j_per_inference for b in bars])
    width = 0.8 / len(sources)
    fig = figure_class(figsize=(min(30.0, max(6.0, 0.5 * len(engines) + 5)), 5), dpi=100)
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
            patch.set_gid(visible(f"bar:{source}:{name}"))
    ax.set_xticks(range(len(engines)), [label(e) for e in engines], rotation=30 if len(engines) <= 12 else 90,
                  ha="right" if len(engines) <= 12 else "center", fontsize=7)
    shown = len(engines)
    total = sum(1 for e in result.engines if e.ok)
    ax.set_xlabel("engine (table order)" + (f"; the first {shown} of {total}, the table has all" if total > shown else ""))
    ax.set_ylabel(f"energy per {_per(sort)} ({unit})")
    ax.set_title(label(f"wall meter vs estimate vs on-board rails · {_subtitle(result)}"), fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.subplots_adjust(**LAYOUT)
    return fig


# --- the ranked figure and CO2 --------------------------------------------------------------------------------


def ranked_values(result: PairingResult, sort: str | None = None) -> tuple[list[EngineResult], list[float], list[float]]:
    """The ok engines in rank order, their ranked figure and its uncertainty (nan where it has none)."""
    key = (sort or DEFAULT_SORT).lstrip("-")
    getter = sort_getter(key)
    figure = FIGURES.get(key)
    ranked = [e for _, e in rank([e for e in result.engines if e.ok], sort)][:MAX_RANKED_ENGINES]
    values = [float(getter(e)) if isinstance(getter(e), (int, float)) else math.nan for e in ranked]
    us = [figure.u(e) if figure is not None and figure.u is not None else math.nan for e in ranked]
    return ranked, values, us


def ranked_figure(result: PairingResult, sort: str | None = None) -> Figure:
    """Two panels of horizontal bars sharing the engine axis, in the table's rank order (best at the top): the
    figure the table is ranked by (wall J per sample by default; 1-sigma error bars) and g CO2 per million samples
    (from wall energy x PUE, as in the table)."""
    sort = sort or DEFAULT_SORT
    ranked, values_raw, us = ranked_values(result, sort)
    if not ranked:
        raise BadInput("no engine has a valid window: nothing to rank; measure again with longer windows")
    figure_class = _matplotlib()
    key = sort.lstrip("-")
    figure = FIGURES.get(key)
    co2_g_per_million = [e.co2_g_per_million_samples for e in ranked]
    every = rank([e for e in result.engines if e.ok], sort)
    total = len(every)
    shared = shared_ranks(every)
    positions = every[: len(ranked)]
    names = [e.engine for e in ranked]
    y = np.arange(len(ranked))
    fig = figure_class(figsize=(11, max(2.5, 0.3 * len(ranked) + 1.5)), dpi=100)
    left, right = fig.subplots(1, 2, sharey=True)
    if figure is not None:
        unit, scale = energy_unit(values_raw)
        xlabel = f"{figure.words.replace('J per', 'energy per')} ({unit})"
    else:
        unit, scale = "", 1.0
        xlabel = AXES[key][0] if key in AXES else key
    values = [v * scale if _finite(v) else 0.0 for v in values_raw]
    errors = [u * scale if _finite(u) else 0.0 for u in us]
    bars = left.barh(y, values, xerr=errors if any(errors) else None, capsize=2, color="#1f77b4")
    for patch, name in zip(bars.patches, names, strict=True):
        patch.set_gid(visible(f"ranked:{name}"))
    right.barh(y, [v if _finite(v) else 0.0 for v in co2_g_per_million], color="#8c564b")
    left.set_yticks(y, [label(f"{p}{'=' if p in shared else ''}. {name}") for (p, _), name in zip(positions, names, strict=True)],
                    fontsize=7)
    left.invert_yaxis()  # rank 1 at the top
    left.set_xlabel(xlabel)
    left.set_ylabel("engine, by rank" + (f" (the first {len(ranked)} of {total})" if total > len(ranked) else ""))
    right.set_xlabel(f"CO2 per million samples (g; {result.grid.region or 'grid'} factor, PUE {result.pue:g})")
    for ax in (left, right):
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(label(f"ranked by {ranked_words(sort)} · {_subtitle(result)}"), fontsize=9)
    height = fig.get_figheight()  # a tall figure keeps the same room in inches for its title and axis labels
    fig.subplots_adjust(**{**LAYOUT, "top": 1 - 0.45 / height, "bottom": 0.55 / height})
    return fig


# --- every report plot at once --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFigure:
    """One plot of the report: a file stem, a caption, and the figure."""

    name: str
    caption: str
    figure: Figure


def report_figures(
    result: PairingResult, records: Sequence[RunRecord], trace: MeterTrace, *, sort: str | None = None
) -> list[ReportFigure]:
    """The report's plots that the data allows (a directory with no timed window has no latency plot, one with
    no valid window no bars), in reading order; the energy plots follow the figure the table is ranked by."""
    sort = sort or DEFAULT_SORT
    per = _per(sort)
    out = []
    timed = first_windows(records)
    if timed:
        order = [e.engine for _, e in rank(result.engines, sort) if e.engine in timed]
        order += [name for name in timed if name not in order]
        shown = order[:MAX_LEGEND_ENGINES]
        some = f" (the first {len(shown)} of {len(order)} in the table's order)" if len(order) > len(shown) else ""
        out.append(ReportFigure(
            "latency-first-iterations",
            f"Latency of the first {FIRST_ITERATIONS} iterations of each engine{some}, warm-up included (hollow: "
            "warm-up, discarded from every figure); dashed: the median of the measured window.",
            warmup_figure(records, engines=shown),
        ))
    if len(trace.t_ns):
        out.append(ReportFigure(
            "wall-power",
            "Wall power over the session; shaded: each engine's measured windows (hatched: invalid), grey: idle "
            "windows (cross-hatched: the device was busy); dashed: the idle baseline with its 1-sigma band.",
            power_figure(trace, result),
        ))
    if any(e.ok for e in result.engines):
        out.append(ReportFigure(
            "energy-sources",
            f"J per {per} for each engine: the wall meter integrated over the windows, lab 9's wall power x latency "
            "estimate, and the on-board rails (hatched: modelled by the estimate sensor, not measured).",
            sources_figure(result, sort),
        ))
        out.append(ReportFigure(
            "ranked-energy-co2",
            f"Ranked by {ranked_words(sort)} (1-sigma error bars; n= marks a shared rank) and CO2 per million "
            "samples per engine, in the table's rank order.",
            ranked_figure(result, sort),
        ))
    y = front_figure(sort).key
    if any(e.ok and _finite(e.gflops_per_inference) and _finite(sort_getter(y)(e)) for e in result.engines):
        out.append(ReportFigure(
            "gflops-energy",
            f"{FIGURES[y].words} against GFLOPs per inference (from the engines' manifest), one point per engine: "
            "colour = backbone, marker = precision, error bars = 1 sigma.",
            scatter_figure(result, x="gflops", y=y),
        ))
    return out


def close(figures: Sequence[ReportFigure]) -> None:
    """Let go of the figures' memory (they are not held by pyplot, so dropping them is enough; kept explicit)."""
    for f in figures:
        f.figure.clear()


@dataclass(frozen=True)
class RenderedFigure:
    """One report plot rendered once: the SVG file's text (written as <name>.svg, inlined by the HTML page) and,
    when asked for, PNG bytes (<name>.png)."""

    name: str
    caption: str
    svg_document: str
    png: bytes | None = None

    @property
    def svg(self) -> str:
        """The `<svg>` element, for inlining."""
        return inline_svg(self.svg_document)


def render_report_figures(
    result: PairingResult,
    records: Sequence[RunRecord],
    trace: MeterTrace,
    *,
    sort: str | None = None,
    png: bool = False,
) -> list[RenderedFigure]:
    """Every report plot built once and rendered once to SVG (and PNG when `png`), the figures then let go."""
    rendered = []
    for f in report_figures(result, records, trace, sort=sort):
        bbox = tight_bbox(f.figure)
        svg = svg_document(f.figure, f.name, bbox)
        data = None
        if png:
            buffer = io.BytesIO()
            f.figure.savefig(buffer, format="png", bbox_inches=bbox, pil_kwargs=PNG_OPTIONS)
            data = buffer.getvalue()
        f.figure.clear()
        rendered.append(RenderedFigure(f.name, f.caption, svg, data))
    return rendered


def _plots_dir(out_dir: str | Path) -> Path:
    directory = Path(out_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create {directory} ({exc.strerror}): give a directory you can write to") from None
    return directory


def write_rendered(
    out_dir: str | Path, figures: Sequence[RenderedFigure], suffixes: Sequence[str] = (".png", ".svg")
) -> list[Path]:
    """Rendered plots into `out_dir` as <name>.svg and, where rendered, <name>.png; returns the paths."""
    directory = _plots_dir(out_dir)
    written = []
    for f in figures:
        outputs = [(".png", f.png)] if f.png is not None and ".png" in suffixes else []
        if ".svg" in suffixes:
            outputs.append((".svg", f.svg_document.encode("utf-8")))
        for suffix, data in outputs:
            path = directory / f"{f.name}{suffix}"
            try:
                path.write_bytes(data)
            except OSError as exc:
                raise BadInput(f"cannot write plot {path} ({exc.strerror}): give a directory you can write to") from None
            written.append(path)
    return written


def write_plots(
    out_dir: str | Path,
    result: PairingResult,
    records: Sequence[RunRecord],
    trace: MeterTrace,
    *,
    sort: str | None = None,
    suffixes: Sequence[str] = (".png", ".svg"),
) -> list[Path]:
    """Every report plot into `out_dir` as <name>.png and <name>.svg (`suffixes`: which of the two); returns the
    paths written."""
    unknown = set(suffixes) - {".png", ".svg"}
    if unknown:
        raise BadInput(f"cannot write plots as {', '.join(sorted(unknown))}: use .png or .svg")
    _plots_dir(out_dir)
    rendered = render_report_figures(result, records, trace, sort=sort, png=".png" in suffixes)
    return write_rendered(out_dir, rendered, suffixes)
