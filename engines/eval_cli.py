"""`edgebench eval` (accuracy of built engines on labelled images) and `edgebench train-probe` (a linear probe
that makes a backbone classify). Apart from build-engines so that a cached build imports none of this."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgebench.errors import BadInput
from edgebench.options import engine_names_option, engines_dir_option, input_resolution_option, positive

if TYPE_CHECKING:
    import onnx

RESIZE_CHOICES = ("area", "bilinear", "crop", "nearest")  # edgebench.engines.datasets.RESIZE_METHODS (tested)


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    import math

    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BadInput(f"{option} takes numbers like 0.485,0.456,0.406 (got {text!r})") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise BadInput(f"{option} takes finite numbers like 0.485,0.456,0.406 (got {text!r})")
    return values


def channel_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--mean, --std, --bgr: how an image's channels are normalised and ordered (eval, train-probe and study)."""
    function = click.option("--bgr", is_flag=True, help="Feed channels in BGR order (default RGB).")(function)
    function = click.option(
        "--std", "std_text", metavar="S[,S,S]", help="Per-channel std after scaling to 0..1 (default ImageNet's)."
    )(function)
    return click.option(
        "--mean", "mean_text", metavar="M[,M,M]", help="Per-channel mean after scaling to 0..1 (default ImageNet's)."
    )(function)


def preprocess_options(function):
    """--method (one resize method) and the channel options: how images become inputs (eval and train-probe; the
    study takes several methods)."""
    function = channel_options(function)
    return click.option(
        "--method", type=click.Choice(RESIZE_CHOICES), default="area", show_default=True,
        help="How images are resized to the engine's HxW.",
    )(function)


def make_preprocess(method: str, mean_text: str | None, std_text: str | None, bgr: bool, method_override: str | None = None):
    from edgebench.engines.datasets import IMAGENET_MEAN, IMAGENET_STD, Preprocess

    return Preprocess(
        method=method_override or method,
        mean=_floats(mean_text, "--mean") or IMAGENET_MEAN,
        std=_floats(std_text, "--std") or IMAGENET_STD,
        channel_order="bgr" if bgr else "rgb",
    )


def _bar(total: int, label: str):
    """A context manager giving update(n): a progress bar on a terminal, nothing otherwise."""
    import contextlib
    import sys

    from edgebench.console import is_interactive

    @contextlib.contextmanager
    def manager():
        if is_interactive():
            with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
                yield bar.update
        else:
            yield lambda n: None

    return manager()


def accuracy_text(accuracy) -> str:
    top5 = f", top-5 {accuracy.top5 * 100:.2f} %" if accuracy.top5 is not None else ""
    return f"top-1 {accuracy.top1 * 100:.2f} %{top5} over {accuracy.samples} images"


@click.command("eval")
@engines_dir_option()
@click.option(
    "--data", "data", required=True, metavar="DATA",
    help="digits[:train|:test] (scikit-learn's), PATH.npz (x, y) or an image folder with class subfolders.",
)
@engine_names_option
@preprocess_options
@click.option(
    "--allow-train-images", is_flag=True,
    help="Score a probe on data that holds its training images anyway (refused otherwise); the result is labelled.",
)
@click.option(
    "--allow-other-preprocessing", is_flag=True,
    help="Score a probe with other preprocessing than it was fitted with (refused otherwise); the result is labelled.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per engine.")
def eval_engines(engines_dir, data, engine_names, method, mean_text, std_text, bgr, allow_train_images,
                 allow_other_preprocessing, as_json):
    """Top-1 (and top-5) accuracy of every engine on a labelled dataset, written into the manifest.

    Each engine runs the whole dataset in batches of its own batch size (fp16 engines get inputs of their own
    type). A probe's engines are checked against what it was fitted on (`train-probe` records it): data holding
    its training images, or other preprocessing, is refused unless allowed. An engine that scores another number
    of classes than the dataset has is skipped with one line. `edgebench measure`, `report` and the tables then
    show accuracy beside energy.
    """
    import dataclasses

    from edgebench.console import note, warn
    from edgebench.engines.datasets import load_dataset
    from edgebench.engines.evaluate import evaluate_manifest

    preprocess = make_preprocess(method, mean_text, std_text, bgr)
    dataset = load_dataset(data)

    def show(entry, accuracy, seconds) -> None:
        if as_json:
            click.echo(json.dumps({"engine": entry.name, **dataclasses.asdict(accuracy)}))
        else:
            click.echo(f"{entry.name}: {accuracy_text(accuracy)}")
        rate = accuracy.samples / seconds if seconds > 0 else float("inf")
        note(f"evaluated {entry.name} in {seconds:.2f} s ({rate:,.0f} images/s)")

    def skip(skipped) -> None:
        warn(skipped.reason)

    results = evaluate_manifest(
        engines_dir, dataset, preprocess, tuple(engine_names), on_engine=show, progress=_bar, on_skip=skip,
        allow_train_images=allow_train_images, allow_other_preprocessing=allow_other_preprocessing,
    )
    if not as_json and results:
        classes = dataset.class_count
        click.echo(f"dataset: {results[-1][1].dataset}; {classes} classes (chance {100 / classes:.1f} %)")
        click.echo(f"preprocessing: {results[-1][1].preprocessing}")
        click.echo(f"accuracy written to {Path(engines_dir) / 'manifest.json'}")


@click.command("train-probe")
@click.option("--backbone", help="Built-in backbone to cut at its pooled features.")
@click.option("--model", "model_path", type=click.Path(path_type=Path, dir_okay=False), help="Or your own ONNX file.")
@click.option("--data", "data", default="digits:train", show_default=True, metavar="DATA", help="Images to fit on.")
@click.option(
    "--test", "test_data", metavar="DATA",
    help="Held-out images to score (default: the :test split when --data names a :train split).",
)
@input_resolution_option(extra="the probe is fitted at")
@preprocess_options
@click.option("--c", "c_value", type=positive(max=1e6), default=1.0, show_default=True, help="Inverse L2 strength.")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), required=True, help="ONNX file to write.")
def train_probe(backbone, model_path, data, test_data, resolution, method, mean_text, std_text, bgr, c_value, out_path):
    """Make a model that really classifies: a linear probe on a backbone's pooled features, in its ONNX graph.

    Fits a logistic regression (scikit-learn) on the features of the last global average pool, appends it as a
    Gemm, writes --out, and prints its top-1 on the fitting and held-out images. The probe records what it was
    fitted on (dataset, split, preprocessing), which `edgebench eval` checks. Build it with
    `edgebench build-engines --model OUT.onnx` and evaluate with `edgebench eval`.
    """
    from edgebench.engines.datasets import load_dataset
    from edgebench.engines.probe import train_probe as fit
    from edgebench.engines.probe import writable_output
    from edgebench.engines.spec import check_resolution, parse_resolution

    # everything that can be checked without the model or the images is checked first: minutes of work must not
    # end in a usage error
    if (backbone is None) == (model_path is None):
        raise BadInput("give exactly one of --backbone NAME or --model PATH.onnx")
    height, width = parse_resolution(resolution)
    check_resolution(backbone, height, width)
    preprocess = make_preprocess(method, mean_text, std_text, bgr)
    writable_output(out_path)
    model, source = load_source(backbone, model_path)
    train = load_dataset(data)
    if test_data is None and data.endswith(":train"):
        test_data = data[: -len(":train")] + ":test"
    test = load_dataset(test_data) if test_data else None
    result = fit(model, source, train, test, height, width, preprocess, out_path, c_value)
    classes = result.classes
    click.echo(f"probe on {source}: {result.feature_dim} pooled features -> {classes} classes at {height}x{width}")
    click.echo(f"train top-1 {result.train_top1 * 100:.2f} % ({result.train_samples} images, {train.description})")
    if result.test_top1 is not None:
        click.echo(f"test  top-1 {result.test_top1 * 100:.2f} % ({result.test_samples} held-out images); chance {100 / classes:.1f} %")
    click.echo(f"preprocessing: {result.preprocessing}")
    click.echo(f"wrote {out_path}: build it with `edgebench build-engines --model {out_path}`")


def load_source(backbone: str | None, model_path: Path | None) -> tuple[onnx.ModelProto, str]:
    """(onnx model, name) from --backbone or --model (exactly one)."""
    if (backbone is None) == (model_path is None):
        raise BadInput("give exactly one of --backbone NAME or --model PATH.onnx")
    from edgebench.engines import backbones

    if backbone is not None:
        return backbones.builtin_model(backbone), backbone
    assert model_path is not None  # exactly one of the two, checked above
    return backbones.load_user_model(model_path)[0], str(model_path)
