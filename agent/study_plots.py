"""The studies' plots: lab 2's three (FLOPs vs accuracy, latency vs accuracy, FLOPs vs latency, one series per
resize method) and the Pareto fronts (accuracy vs gross energy per sample, accuracy vs latency; one front per
group of rows evaluated on the same dataset with the same preprocessing), as PNG files.

matplotlib is optional (`pip install 'edgebench[plot]'`) and imported only here, with the Agg backend so it
draws without a display.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from edgebench.errors import MissingDependency
from edgebench.files import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from edgebench.agent.study import StudyPoint

PLOT_EXTRA = "pip install 'edgebench[plot]'"
MARKERS = ("o", "s", "^", "D", "v", "P")


def _pyplot() -> ModuleType:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingDependency(f"the study plots need matplotlib: {PLOT_EXTRA}, then `edgebench study plot DIR`") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


AXES = {
    "gflops": ("GFLOPs per inference", lambda p: p.gflops_per_inference),
    "latency": ("mean latency per inference (ms)", lambda p: p.latency_mean_ms),
    "top1": ("top-1 accuracy (%)", lambda p: p.top1 * 100),
    "energy": ("energy per sample, gross (mJ)", lambda p: p.energy_j_per_sample * 1e3),
}
LAB_PLOTS = (("gflops", "top1"), ("latency", "top1"), ("gflops", "latency"))


def _label(p: StudyPoint, study: str) -> str:
    return f"{p.height}x{p.width}" if study == "input-size" else p.model.removesuffix("-probe")


def _series(points: Sequence[StudyPoint]) -> dict[str, list[StudyPoint]]:
    out: dict[str, list[StudyPoint]] = {}
    for p in points:
        out.setdefault(p.method, []).append(p)
    return out


def lab_figure(points: Sequence[StudyPoint], study: str, x_key: str, y_key: str) -> Figure:
    """One of the lab's plots: `y_key` against `x_key` (keys of AXES), one line per resize method."""
    plt = _pyplot()
    x_label, x_of = AXES[x_key]
    y_label, y_of = AXES[y_key]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=80)
    for k, (method, members) in enumerate(_series(points).items()):
        members = sorted((p for p in members if math.isfinite(x_of(p)) and math.isfinite(y_of(p))), key=x_of)
        xs, ys = [x_of(p) for p in members], [y_of(p) for p in members]
        ax.plot(xs, ys, marker=MARKERS[k % len(MARKERS)], label=f"{method} resize", alpha=0.85)
        if k == 0:
            for p, x, y in zip(members, xs, ys, strict=True):
                ax.annotate(_label(p, study), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(f"{study} study: {y_key.replace('top1', 'accuracy')} vs {x_key.replace('gflops', 'FLOPs')}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pareto_figure(points: Sequence[StudyPoint], study: str, cost_key: str) -> Figure:
    """Accuracy against `cost_key` ("energy" or "latency"), every point, and the Pareto front of each group of
    comparable rows (same dataset and preprocessing: one per resize method in an input-size study) as a step line."""
    from edgebench.agent.study import comparable

    plt = _pyplot()
    flag = "pareto_energy" if cost_key == "energy" else "pareto_latency"
    x_label, x_of = AXES[cost_key]
    shown = [p for p in points if math.isfinite(x_of(p))]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=80)
    for k, (method, members) in enumerate(_series(shown).items()):
        ax.scatter([x_of(p) for p in members], [p.top1 * 100 for p in members], marker=MARKERS[k % len(MARKERS)],
                   label=f"{method} resize", alpha=0.6)
    groups: dict[tuple[str, str], list] = {}
    for p in shown:
        if getattr(p, flag):
            groups.setdefault(comparable(p), []).append(p)
    for k, front in enumerate(groups.values()):
        front = sorted(front, key=x_of)
        methods = sorted({p.method for p in front})
        label = "Pareto front" if len(groups) == 1 else f"Pareto front, {', '.join(methods)} resize"
        ax.step([x_of(p) for p in front], [p.top1 * 100 for p in front], where="post", color="black",
                linestyle=("-", "--", ":", "-.")[k % 4], linewidth=1.2, label=label)
        for p in front:
            ax.annotate(f"{_label(p, study)} {p.method}", (x_of(p), p.top1 * 100), textcoords="offset points",
                        xytext=(4, -10), fontsize=7)
    ax.set_xlabel(x_label)
    ax.set_ylabel(AXES["top1"][0])
    ax.set_title(f"{study} study: Pareto front, accuracy vs {cost_key}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_study(points: Sequence[StudyPoint], study: str, directory: Path) -> list[Path]:
    """Write the lab's three plots and the Pareto plots (those with a finite cost) of a study; returns the files."""
    plt = _pyplot()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures = [(f"{x}_vs_{y}.png", lab_figure(points, study, x, y)) for x, y in LAB_PLOTS]
    for cost_key in ("energy", "latency"):
        if any(math.isfinite(AXES[cost_key][1](p)) for p in points):
            figures.append((f"pareto_{cost_key}.png", pareto_figure(points, study, cost_key)))
    written = []
    for name, fig in figures:
        buffer = io.BytesIO()  # drawn in memory, written by edgebench/files.py (no FIFO or device clobbered)
        fig.savefig(buffer, format="png")
        write_atomic(directory / name, buffer.getvalue())
        plt.close(fig)
        written.append(directory / name)
    return written
