"""Accuracy of built engines on a labelled dataset: what `edgebench eval` writes into the manifest.

Each engine runs the whole dataset in batches of its own (fixed) batch size, the last batch padded by repeating
its final image and the padding's outputs dropped; images are preprocessed a chunk at a time (CHUNK_BYTES of
inputs), so memory does not grow with the dataset. Inputs are cast to the engine's input type (fp16 engines that
take fp16 get fp16). The first output is read as class scores, one row per input (N x K or N x K x 1 x 1); K
must equal the dataset's class count (checked after the first batch; otherwise the engine is skipped). top-1 is
the fraction whose highest score is the label, top-5 (when K exceeds 5) whose label is among the five highest.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgebench.engines.datasets import Dataset, Images, Prepare, Preprocess
from edgebench.engines.manifest import Manifest, ManifestEntry
from edgebench.engines.provenance import Labels, ProbeFit, check_fit, labelled
from edgebench.errors import BadInput, MissingDependency

if TYPE_CHECKING:
    from edgebench.engines.runner import ArrayRunner
from edgebench.records import Accuracy


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows of `scores` have their label among the k highest scores (ties broken by index)."""
    if k == 1:
        return int(np.sum(np.argmax(scores, axis=1) == labels))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return int(np.sum(np.any(top == labels[:, None], axis=1)))


class NotEvaluable(BadInput):
    """This engine cannot score this dataset (other classes, not an image classifier): `evaluate_manifest` skips it
    with one line and goes on with the others."""


CHUNK_BYTES = 64 * 2**20  # preprocessed inputs held at once: one chunk, whatever the dataset's size


def scores_of(
    runner: ArrayRunner,
    images: Images,
    prepare: Prepare,
    on_batch: Callable[[int], None] | None = None,
    check_classes: Callable[[int], None] | None = None,
    chunk: int | None = None,
) -> np.ndarray:
    """Class scores (N x K, float64) of `images` through `runner`, in batches of its size; `prepare(images)` makes
    N x C x H x W inputs of a slice, `chunk` images at a time (a multiple of the batch). `check_classes(K)` is
    called after the first batch, before the rest of the dataset is preprocessed and run."""
    batch = runner.batch
    chunk = max(batch, (chunk or batch) // batch * batch)
    rows: list[np.ndarray] = []
    for chunk_start in range(0, len(images), chunk):
        inputs = prepare(images[chunk_start : chunk_start + chunk])
        for start in range(0, len(inputs), batch):
            part = inputs[start : start + batch]
            real = len(part)
            if real < batch:
                part = np.concatenate([part, np.repeat(part[-1:], batch - real, axis=0)])
            out = np.asarray(runner.infer([part])[0])
            if out.ndim < 2 or out.shape[0] != batch or any(d != 1 for d in out.shape[2:]):
                raise NotEvaluable(
                    f"{runner.engine} outputs {'x'.join(map(str, out.shape))}, not class scores (N x K): skipped"
                )
            if not rows and check_classes is not None:
                check_classes(out.shape[1])
            rows.append(out.astype(np.float64).reshape(batch, -1)[:real])
            if on_batch is not None:
                on_batch(real)
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def check_fit_of(entry: ManifestEntry, data: Dataset, preprocess: Preprocess, allow_train_images: bool = False,
                 allow_other_preprocessing: bool = False, fit: ProbeFit | None = None) -> Labels:
    """Labels for scoring `entry` on `data` (see `edgebench.engines.provenance.check_fit`); BadInput when refused."""
    return check_fit(
        entry.name, fit or entry.probe, data.name, data.source, data.digest, data.part, preprocess,
        allow_train_images, allow_other_preprocessing,
    )


def evaluate_entry(
    engines_dir: Path,
    entry: ManifestEntry,
    data: Dataset,
    preprocess: Preprocess,
    on_batch: Callable[[int], None] | None = None,
    allow_train_images: bool = False,
    allow_other_preprocessing: bool = False,
) -> Accuracy:
    """Run `data` through one engine and return its Accuracy (computed here, never assumed).

    Refused (BadInput) when the engine's probe was fitted on these images or with other preprocessing, unless
    allowed (then the Accuracy is labelled); NotEvaluable when the engine scores another number of classes than
    the dataset has, or does not classify images."""
    from edgebench.engines.backends import open_runner

    if len(data) == 0:
        raise BadInput(f"dataset {data.description} is empty: give labelled images")
    labels = check_fit_of(entry, data, preprocess, allow_train_images, allow_other_preprocessing)
    try:
        runner = open_runner(engines_dir, entry)
    except MissingDependency as exc:  # an engine of another backend in the folder (a TensorRT plan off its GPU)
        raise NotEvaluable(f"{entry.name} cannot run here ({exc}): skipped") from None
    try:
        if entry.probe is None:
            # built before the manifest carried the probe's record: the artifact's own metadata may hold it
            fit = ProbeFit.from_metadata(getattr(runner, "metadata", {}))
            if fit is not None:
                labels = check_fit_of(entry, data, preprocess, allow_train_images, allow_other_preprocessing, fit)
        shapes = getattr(runner, "input_shapes", [])
        if len(shapes) != 1 or len(shapes[0]) != 4:
            raise NotEvaluable(f"{entry.name} does not take one N x C x H x W image input: skipped (eval feeds images)")
        _, channels, height, width = shapes[0]
        if len(preprocess.mean) not in (1, channels):
            raise NotEvaluable(
                f"{entry.name} takes {channels}-channel images but --mean/--std give {len(preprocess.mean)} values: "
                "skipped (give one value per channel, or one for all)"
            )

        def check_classes(classes: int) -> None:
            if classes != data.class_count:
                raise NotEvaluable(
                    f"{entry.name} scores {classes} classes but the dataset has {data.class_count}: skipped (fit a "
                    "head for this dataset with `edgebench train-probe`)"
                )

        def prepare(images: Images) -> np.ndarray:
            return preprocess.apply(images, height, width, channels)

        chunk = max(1, CHUNK_BYTES // (4 * channels * height * width))
        scores = scores_of(runner, data.images, prepare, on_batch, check_classes, chunk)
    finally:
        runner.close()
    classes = scores.shape[1]
    n = len(data)
    top1 = topk_correct(scores, data.labels, 1) / n
    # top-5 says something only when there are more than five classes
    top5 = topk_correct(scores, data.labels, 5) / n if classes > 5 else None
    return Accuracy(
        top1=top1, top5=top5, samples=n, dataset=labelled(data.description, labels.dataset),
        preprocessing=labelled(preprocess.describe(height, width, channels), labels.preprocessing),
    )


@dataclass(frozen=True)
class Skipped:
    """An engine `evaluate_manifest` left out, and why (one line)."""

    engine: str
    reason: str


def evaluate_manifest(
    engines_dir: Path,
    data: Dataset,
    preprocess: Preprocess,
    names: tuple[str, ...] = (),
    on_engine: Callable[[ManifestEntry, Accuracy, float], None] | None = None,
    progress: Callable | None = None,
    on_skip: Callable[[Skipped], None] | None = None,
    allow_train_images: bool = False,
    allow_other_preprocessing: bool = False,
) -> list[tuple[ManifestEntry, Accuracy]]:
    """Evaluate the named engines (default all) of a directory and write each Accuracy into its manifest row at
    once, so an interrupted run keeps what it finished. Every recorded probe fit is checked before any engine
    runs (BadInput naming the right split); an engine that cannot score the dataset is skipped (`on_skip`), and
    BadInput is raised when none could. `on_engine(entry, accuracy, seconds)` follows each engine;
    `progress(total, label)` returns a context manager giving an `update(n)` callable (the CLI's bar)."""
    manifest = Manifest.load(engines_dir)
    entries = [manifest.get(name) for name in names] if names else manifest.entries
    if not entries:
        raise BadInput(f"the manifest in {engines_dir} lists no engines: build some with `edgebench build-engines`")
    for entry in entries:  # refuse before minutes of work, not after
        check_fit_of(entry, data, preprocess, allow_train_images, allow_other_preprocessing)
    done = []
    skipped: list[Skipped] = []
    for entry in entries:
        started = time.perf_counter()
        try:
            if progress is not None:
                with progress(len(data), entry.name) as update:
                    accuracy = evaluate_entry(engines_dir, entry, data, preprocess, update, allow_train_images,
                                              allow_other_preprocessing)
            else:
                accuracy = evaluate_entry(engines_dir, entry, data, preprocess, None, allow_train_images,
                                          allow_other_preprocessing)
        except NotEvaluable as exc:
            skipped.append(Skipped(entry.name, str(exc)))
            if on_skip is not None:
                on_skip(skipped[-1])
            continue
        seconds = time.perf_counter() - started
        manifest.put(dataclasses.replace(entry, accuracy=accuracy))
        done.append((entry, accuracy))
        if on_engine is not None:
            on_engine(entry, accuracy, seconds)
    if not done:
        reasons = "; ".join(s.reason for s in skipped[:2]) + ("; ..." if len(skipped) > 2 else "")
        raise BadInput(f"no engine in {engines_dir} can score {data.description}: {reasons}")
    return done
