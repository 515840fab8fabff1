"""`edgebench study`: the input-size and model-size studies of lab 2, and re-drawing a study's plots."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgebench.engines.eval_cli import channel_options
from edgebench.engines.spec import MAX_BATCH
from edgebench.errors import BadInput
from edgebench.options import Decorator, input_resolution_option, positive, sensor_option
from edgebench.protocol import MAX_WINDOW_S


def _split(values) -> list[str]:
    return [item.strip() for value in values for item in str(value).split(",") if item.strip()]


def _common(function: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Decorator] = [
        click.option("--data", default="digits", show_default=True, metavar="DATA",
                     help="Labelled images: digits, PATH.npz or an image folder; its :train split fits probes, "
                     "its :test split is evaluated."),
        click.option("--method", "methods", multiple=True,
                     help="Resize methods, comma-separated: area, bilinear, nearest, crop (input-size default area,bilinear; "
                     "model-size default area)."),
        click.option("--batch", type=click.IntRange(min=1, max=MAX_BATCH), default=1, show_default=True),
        click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True),
        click.option("--duration", type=positive(max=MAX_WINDOW_S), default=1.0, show_default=True,
                     help="Seconds timed per window (without --meter)."),
        click.option("--repeat", type=click.IntRange(min=1, max=100), default=1, show_default=True,
                     help="Timing windows per engine (with --meter: `edgebench measure --repeat`); the energy's "
                     "uncertainty is their spread."),
        sensor_option(extra="for energy without --meter (auto falls back to the estimate)"),
        click.option("--meter", metavar="PORT", help="Measure wall energy with `edgebench measure --meter PORT`."),
        click.option("--measure-arg", "measure_args", multiple=True, metavar="ARG",
                     help="Extra argument passed to `edgebench measure` (repeatable), e.g. --measure-arg=--idle=5."),
        click.option("--probe/--no-probe", default=None,
                     help="Fit a linear probe (default for built-in backbones; off for --model files)."),
        channel_options,
        click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("study-out"),
                     show_default=True, help="Directory for engines, models, tables and plots."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _config(data, methods, batch, precision, duration, repeat, sensor, meter, measure_args, probe, mean_text, std_text,
            bgr, out):
    from edgebench.agent.study import StudyConfig
    from edgebench.engines.datasets import RESIZE_METHODS
    from edgebench.engines.eval_cli import _floats

    names = tuple(_split(methods)) or ("area", "bilinear")
    unknown = [m for m in names if m not in RESIZE_METHODS]
    if unknown:
        raise BadInput(f"unknown resize method {unknown[0]!r}: use {', '.join(RESIZE_METHODS)}")
    return StudyConfig(
        out=out, data=data, methods=tuple(dict.fromkeys(names)), batch=batch, precision=precision,
        duration_s=duration, repeat=repeat, sensor=sensor, meter=meter, meter_args=tuple(measure_args), probe=probe,
        mean=_floats(mean_text, "--mean"), std=_floats(std_text, "--std"), channel_order="bgr" if bgr else "rgb",
    )


def _show(points, out: Path) -> None:
    from edgebench.agent.study import energy_source_of, format_rows

    for line in format_rows(points, energy_source_of(out)):
        click.echo(line)
    click.echo(f"results: {out}/study.csv, study.json, study.md; plots in {out}/plots/")


@click.group()
def study() -> None:
    """Lab 2's studies: accuracy, FLOPs, latency and energy across input sizes or model sizes.

    Every row's energy is the same figure, gross (wall) J per sample (per input image), from the wall meter
    (--meter), the on-board sensor or the estimate, stated once below the table. Running the same study again
    resumes: probes, accuracies and timings already done are kept (OUT/study-state.json).
    """


@study.command("input-size")
@click.option("--backbone", help="Built-in backbone (a probe is fitted on --data's train split).")
@click.option("--model", "model_path", type=click.Path(path_type=Path, dir_okay=False), help="Or your ONNX file.")
@input_resolution_option(multiple=True, required=True, extra="three or more")
@click.option("--refit", is_flag=True, help="Fit a probe at each resolution and method (retrain per size).")
@_common
def input_size(backbone, model_path, resolutions, refit, **common):
    """One base model at three or more input resolutions, test images resized by two or more methods.

    The base model is fitted (or given) at the largest resolution; every resolution gets its engine; each
    engine is evaluated once per method and timed once (preprocessing is outside the timed region).
    """
    from edgebench.agent.study import input_size_study
    from edgebench.engines.spec import parse_resolution

    if (backbone is None) == (model_path is None):
        raise BadInput("give exactly one of --backbone NAME or --model PATH.onnx")
    config = dataclasses.replace(_config(**common), refit=refit)
    points = input_size_study(config, backbone, model_path, [parse_resolution(r) for r in _split(resolutions)])
    _show(points, config.out)


@study.command("model-size")
@click.option("--backbone", "backbones", multiple=True, help="Built-in backbones, comma-separated.")
@click.option("--family", help="All widths of a built-in family, smallest first (mobilenet_v2: 0.35 ... 1.4).")
@click.option("--model", "model_paths", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Your ONNX files (repeatable).")
@input_resolution_option(extra="of every model")
@_common
def model_size(backbones, family, model_paths, resolution, **common):
    """Two or more models of one family (built-in widths, backbones or your files) on the same axes."""
    from edgebench.agent.study import model_size_study
    from edgebench.engines.backbones import MODEL_FAMILIES
    from edgebench.engines.spec import parse_resolution

    names = _split(backbones)
    if family:
        if family not in MODEL_FAMILIES:
            raise BadInput(f"unknown family {family!r}: use one of {', '.join(MODEL_FAMILIES)} or list --backbone")
        names = [*names, *MODEL_FAMILIES[family]]
    if not common["methods"]:
        common["methods"] = ("area",)  # methods are not this study's axis: one unless asked
    config = _config(**common)
    points = model_size_study(config, list(dict.fromkeys(names)), list(model_paths), parse_resolution(resolution))
    _show(points, config.out)


@study.command("plot")
@click.argument("directory", type=click.Path(path_type=Path, exists=True))
def plot(directory):
    """Draw (again) the plots of a study directory from its study.json."""
    from edgebench.agent.study import read_study
    from edgebench.agent.study_plots import plot_study

    kind, points = read_study(directory)
    for path in plot_study(points, kind, Path(directory) / "plots"):
        click.echo(str(path))
