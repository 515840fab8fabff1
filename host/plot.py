"""Scatter plots of the ranked table: any column against any other, one point per engine (the labs' "FLOPs on the
x axis and latency on the y axis", or GFLOPs against net J/inference). matplotlib is the optional `plot` extra,
imported only here.

Points are coloured by backbone and shaped by precision; y error bars are the 1-sigma uncertainties where the
column has one (J/inference wall, net, rails). Only engines whose windows are valid are drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

from edgebench.errors import BadInput, MissingDependency

from .pairing import EngineResult, PairingResult
from .table import sort_getter

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


def _value(e: EngineResult, column: str) -> float:
    value = sort_getter(column)(e)
    if column == "params" and value is not None and math.isfinite(value):
        return value / 1e6
    return float(value) if value is not None else math.nan


def plot_result(result: PairingResult, path: str | Path, *, x: str = "gflops", y: str = "net_j") -> Path:
    """Draw `y` against `x` for every valid engine into `path` (PNG, SVG or PDF by suffix); returns the path."""
    for name, column in (("--x", x), ("--y", y)):
        if column not in AXES:
            raise BadInput(f"{name} {column!r} cannot be plotted: use one of {', '.join(AXES)}")
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed on a headless device
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency(
            "plots need matplotlib: pip install 'edgebench[plot]' (or pip install matplotlib)"
        ) from None
    engines = [e for e in result.engines if e.ok]
    points = [(e, _value(e, x), _value(e, y)) for e in engines]
    points = [(e, a, b) for e, a, b in points if math.isfinite(a) and math.isfinite(b)]
    if not points:
        raise BadInput(f"no engine has both {x} and {y}: pick other columns (net_j needs an idle baseline)")
    backbones = sorted({e.backbone for e, _, _ in points})
    colours = {b: plt.get_cmap("tab10")(i % 10) for i, b in enumerate(backbones)}
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    y_label, y_u = AXES[y]
    for e, a, b in points:
        err = y_u(e) if callable(y_u) else None
        ax.errorbar(
            a, b, yerr=err if err is not None and math.isfinite(err) else None, fmt=MARKERS.get(e.precision, "o"),
            color=colours[e.backbone], capsize=3, markersize=7,
        )
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
    ax.set_title(f"{result.meter or 'meter'} · {result.grid.label}", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    try:
        fig.savefig(out)
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot write plot {out} ({exc}): give a writable .png, .svg or .pdf path") from None
    finally:
        plt.close(fig)
    return out
