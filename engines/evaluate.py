"""Accuracy of built engines on a labelled dataset: what `edgebench eval` writes into the manifest.

Each engine runs the whole dataset in batches of its own (fixed) batch size, the last batch padded by repeating
its final image and the padding's outputs dropped. Inputs are cast to the engine's input type (fp16 engines that
take fp16 get fp16). The first output is read as class scores, one row per input (N x K or N x K x 1 x 1);
top-1 is the fraction whose highest score is the label, top-5 (when K and the dataset's class count both exceed 5)
whose label is among the five highest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgebench.engines.datasets import Dataset, Preprocess
from edgebench.engines.manifest import Manifest, ManifestEntry
from edgebench.errors import BadInput
from edgebench.records import Accuracy


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows of `scores` have their label among the k highest scores (ties broken by index)."""
    if k == 1:
        return int(np.sum(np.argmax(scores, axis=1) == labels))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return int(np.sum(np.any(top == labels[:, None], axis=1)))


def scores_of(runner, inputs: np.ndarray, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Class scores (N x K, float64) of `inputs` (N x C x H x W) through `runner`, in batches of its size."""
    batch = runner.batch
    rows: list[np.ndarray] = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start : start + batch]
        real = len(chunk)
        if real < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
        out = runner.infer([chunk])[0]
        rows.append(np.asarray(out, np.float64).reshape(batch, -1)[:real])
        if on_batch is not None:
            on_batch(real)
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def evaluate_entry(
    engines_dir: Path,
    entry: ManifestEntry,
    data: Dataset,
    preprocess: Preprocess,
    on_batch: Callable[[int], None] | None = None,
) -> Accuracy:
    """Run `data` through one engine and return its Accuracy (computed here, never assumed)."""
    from edgebench.engines.backends import open_runner

    if len(data) == 0:
        raise BadInput(f"dataset {data.description} is empty: give labelled images")
    runner = open_runner(engines_dir, entry)
    try:
        shapes = getattr(runner, "input_shapes", [])
        if len(shapes) != 1 or len(shapes[0]) != 4:
            raise BadInput(f"engine {entry.name} does not take one N x C x H x W image input: eval feeds images only")
        _, channels, height, width = shapes[0]
        inputs = preprocess.apply(data.images, height, width, channels)
        scores = scores_of(runner, inputs, on_batch)
    finally:
        runner.close()
    classes = scores.shape[1]
    if int(data.labels.max()) >= classes:
        raise BadInput(
            f"engine {entry.name} scores {classes} classes but the dataset has labels up to {int(data.labels.max())}: "
            "fit a head for this dataset first (`edgebench train-probe`)"
        )
    if classes != len(data.classes):
        from edgebench.console import warn

        warn(
            f"{entry.name} scores {classes} classes but the dataset has {len(data.classes)}: output index k is read "
            "as the dataset's k-th class (sorted folder names); if they are not the same classes, fit a head with "
            "`edgebench train-probe`"
        )
    n = len(data)
    top1 = topk_correct(scores, data.labels, 1) / n
    # top-5 says something only when both the model and the dataset have more than five classes
    top5 = topk_correct(scores, data.labels, 5) / n if min(classes, len(data.classes)) > 5 else None
    return Accuracy(
        top1=top1, top5=top5, samples=n, dataset=data.description,
        preprocessing=preprocess.describe(height, width, channels),
    )


def evaluate_manifest(
    engines_dir: Path,
    data: Dataset,
    preprocess: Preprocess,
    names: tuple[str, ...] = (),
    on_engine: Callable[[ManifestEntry, Accuracy], None] | None = None,
    progress: Callable | None = None,
) -> list[tuple[ManifestEntry, Accuracy]]:
    """Evaluate the named engines (default all) of a directory and write each Accuracy into its manifest row at
    once, so an interrupted run keeps what it finished. `progress(total)` returns a context manager giving an
    `update(n)` callable (the CLI's bar)."""
    manifest = Manifest.load(engines_dir)
    entries = [manifest.get(name) for name in names] if names else manifest.entries
    if not entries:
        raise BadInput(f"the manifest in {engines_dir} lists no engines: build some with `edgebench build-engines`")
    done = []
    for entry in entries:
        if progress is not None:
            with progress(len(data), entry.name) as update:
                accuracy = evaluate_entry(engines_dir, entry, data, preprocess, update)
        else:
            accuracy = evaluate_entry(engines_dir, entry, data, preprocess)
        manifest.put(dataclasses.replace(entry, accuracy=accuracy))
        done.append((entry, accuracy))
        if on_engine is not None:
            on_engine(entry, accuracy)
    return done
