"""`edgebench build-engines`: build a sweep of inference engines into a directory with a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgebench.errors import BadInput
from edgebench.options import DEFAULT_ENGINES_DIR, input_resolution_option


def _split(values: tuple[str, ...]) -> list[str]:
    # accept both `--batch 1,2` and `--batch 1 --batch 2`
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _ints(values: list[str], option: str) -> list[int]:
    out = []
    for value in values:
        try:
            out.append(int(value))
        except ValueError:
            raise BadInput(f"{option} takes integers like 1,2 (got {value!r})") from None
    return out


@click.command("build-engines")
@click.option("--backbone", "backbones", multiple=True, help="Built-in backbone (repeatable, or comma-separated).")
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path), help="Your own ONNX file (repeatable).")
@click.option("--batch", "batches", multiple=True, help="Batch sizes, e.g. 1,2.")
@input_resolution_option(multiple=True)
@click.option("--precision", "precisions", multiple=True, help="fp32, fp16 or both: fp32,fp16.")
@click.option("--backend", default="onnxruntime", show_default=True, help="onnxruntime or tensorrt.")
@click.option("--sweep", "sweep_file", type=click.Path(path_type=Path), help="TOML sweep file (options override it).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=DEFAULT_ENGINES_DIR, show_default=True,
              help="Engines directory to build into: manifest.json and the engines (the others' --engines).")
@click.option("--force", is_flag=True, help="Rebuild engines even when cached.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def build_engines(backbones, models, batches, resolutions, precisions, backend, sweep_file, out_dir, force, as_json):
    """Build a sweep of inference engines (default: 4 backbones, batch 1, 224x224, fp32 and fp16).

    Built-in backbones: resnet18, mobilenet_v2 (widths mobilenet_v2_x0.35, _x0.5, _x0.75, _x1.3, _x1.4),
    squeezenet1_1, mobilenet_v3_small, superpoint. Options not
    given come from --sweep, or else from the default sweep. Unchanged engines are not rebuilt. A point that fails is reported and the rest are built; the exit code is
    then 1.
    """
    from edgebench.console import progress, warn
    from edgebench.engines.backbones import BUILTINS, user_model_name
    from edgebench.engines.build import FAILED, build_sweep, report_json, summary_lines
    from edgebench.engines.spec import parse_resolution
    from edgebench.engines.sweep import DEFAULT_SWEEP, Sweep, load_sweep

    base = load_sweep(sweep_file) if sweep_file else DEFAULT_SWEEP
    model_map = dict(base.models) if not (backbones or models) else {}
    for path in models:
        name = user_model_name(path)
        if name in model_map and model_map[name] != path:
            raise BadInput(f"--model {path} and --model {model_map[name]} would both be named {name!r}: rename one file")
        if name in BUILTINS:
            warn(f"--model {path} shadows the built-in backbone {name!r}: its engines are built from your file")
        model_map[name] = path
    sweep = Sweep(
        backbones=tuple(_split(backbones)) if (backbones or models) else base.backbones,
        batches=tuple(_ints(_split(batches), "--batch")) if batches else base.batches,
        resolutions=tuple(parse_resolution(r) for r in _split(resolutions)) if resolutions else base.resolutions,
        precisions=tuple(_split(precisions)) if precisions else base.precisions,
        models=model_map,
        extra=base.extra,
    )

    def report_failure(result) -> None:
        if result.status == FAILED:
            warn(f"{result.name} failed: {result.error}")

    def wrap(specs):
        return _Progress(specs, progress)

    report = build_sweep(sweep, out_dir, backend=backend, force=force, on_result=report_failure, wrap=wrap)
    if as_json:
        click.echo(json.dumps(report_json(report), indent=2))
    else:
        for line in summary_lines(report):
            click.echo(line)
    if not report.ok:
        raise click.exceptions.Exit(1)


class _Progress:
    """Iterate specs under edgebench.console.progress (a bar only on a terminal)."""

    def __init__(self, specs, progress) -> None:
        self.specs = specs
        self.progress = progress

    def __iter__(self):
        with self.progress(self.specs, label="building engines", length=len(self.specs)) as items:
            yield from items
