"""What a linear probe was fitted on, so that its accuracy can be trusted.

`edgebench train-probe` records a `ProbeFit` in the probe's ONNX metadata (key FIT_KEY, JSON); `build-engines`
copies it into every manifest row built from that file; `edgebench eval` reads it back and refuses to score a
dataset that holds the probe's training images (the same source content and an overlapping split) or to feed it
inputs preprocessed otherwise than it was fitted on, unless the user overrides, in which case the Accuracy is
labelled. The source is identified by content (sha256 of the .npz, of the digits CSV, of a folder's image files),
so a renamed copy of the file is still recognised; a re-export of the same images into a new file is not.

This module imports neither numpy nor onnx: the manifest reads it on every cached build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from edgebench.errors import BadInput

if TYPE_CHECKING:
    from edgebench.engines.datasets import Preprocess

FIT_KEY = "edgebench.probe.fit"
ALLOW_TRAIN_IMAGES = "--allow-train-images"
ALLOW_OTHER_PREPROCESSING = "--allow-other-preprocessing"


@dataclass(frozen=True)
class ProbeFit:
    """The images and the preprocessing a probe was fitted with."""

    dataset: str  # as the user named it: "digits:train", "/data/set.npz:train"
    source: str  # "digits" or the absolute path of the file or folder
    digest: str  # sha256 of the source's content (edgebench.engines.datasets.Dataset.digest)
    part: str  # "train", "test", or "" (every image)
    images: int  # how many images it was fitted on
    description: str  # the dataset in words
    method: str  # resize method
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str  # "rgb" or "bgr"
    height: int
    width: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeFit:
        """Inverse of `asdict`; ValueError naming the field when a value has the wrong type."""
        if not isinstance(data, Mapping):
            raise ValueError("the probe's fit record is not an object")
        fields: dict[str, Any] = {}
        for name, kind in (
            ("dataset", str), ("source", str), ("digest", str), ("part", str), ("images", int),
            ("description", str), ("method", str), ("channel_order", str), ("height", int), ("width", int),
        ):
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"probe fit field {name!r} is {value!r}")
            fields[name] = value
        for name in ("mean", "std"):
            value = data.get(name)
            if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            ):
                raise ValueError(f"probe fit field {name!r} is {value!r}")
            fields[name] = tuple(float(v) for v in value)
        return cls(**fields)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ProbeFit | None:
        """The record in an ONNX model's metadata (`metadata_props` as a mapping), or None when it has none (a
        model not fitted by edgebench, or fitted before the record existed) or the record is unreadable."""
        text = metadata.get(FIT_KEY)
        if not text:
            return None
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, TypeError):
            return None

    def same_source(self, source: str, digest: str) -> bool:
        return (self.digest == digest) if (self.digest and digest) else (self.source == source)

    def overlaps(self, source: str, digest: str, part: str) -> bool:
        """Whether a dataset (source, digest, part) holds images this probe was fitted on: the same content and
        not the other half of the fixed split."""
        if not self.same_source(source, digest):
            return False
        return not (self.part and part and self.part != part)

    def held_out(self, base: str) -> str | None:
        """The split of `base` (how the user named the source) that this probe never saw, or None."""
        if self.part == "train":
            return f"{base}:test"
        if self.part == "test":
            return f"{base}:train"
        return None

    def differences(self, method: str, mean: tuple[float, ...], std: tuple[float, ...], channel_order: str) -> list[str]:
        """What in the given preprocessing differs from the fit's (resize method, normalisation, channel order),
        in words; empty when they agree. The resolution is the engine's and may differ (the input-size study)."""
        found = []
        if method != self.method:
            found.append(f"resize {method}, fitted with {self.method}")
        if not _close(mean, self.mean) or not _close(std, self.std):
            found.append(f"mean/std {_floats(mean)} / {_floats(std)}, fitted with {_floats(self.mean)} / {_floats(self.std)}")
        if channel_order != self.channel_order:
            found.append(f"{channel_order.upper()}, fitted with {self.channel_order.upper()}")
        return found


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    if len(a) != len(b):
        # one value stands for every channel: (0.5,) is the same as (0.5, 0.5, 0.5)
        short, long = (a, b) if len(a) < len(b) else (b, a)
        return len(short) == 1 and all(abs(v - short[0]) <= 1e-9 for v in long)
    return all(abs(x - y) <= 1e-9 for x, y in zip(a, b, strict=True))


def _floats(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


@dataclass(frozen=True)
class Labels:
    """What an Accuracy must say about how it was obtained (empty strings when nothing is amiss)."""

    dataset: str = ""
    preprocessing: str = ""


def check_fit(
    engine: str,
    fit: ProbeFit | None,
    dataset_name: str,
    source: str,
    digest: str,
    part: str,
    preprocess: Preprocess,
    allow_train_images: bool = False,
    allow_other_preprocessing: bool = False,
) -> Labels:
    """Labels for scoring `engine` (whose probe `fit` may be None) on a dataset with `preprocess`; BadInput naming
    the right split or preprocessing when it must be refused (no override given)."""
    if fit is None:
        return Labels()
    base = dataset_name.partition(":")[0]
    dataset_label = ""
    if fit.overlaps(source, digest, part):
        if not allow_train_images:
            right = fit.held_out(base)
            fix = (
                f"evaluate on {right}" if right else
                f"fit the probe on {base}:train (edgebench train-probe --data {base}:train) and evaluate on {base}:test"
            )
            raise BadInput(
                f"{engine}'s probe was fitted on {fit.dataset} ({fit.images} images); --data {dataset_name} holds "
                f"those images, so its accuracy would be inflated: {fix}, or pass {ALLOW_TRAIN_IMAGES} to score "
                "anyway (the result is labelled)"
            )
        dataset_label = f"holds the probe's {fit.images} training images ({fit.dataset}; {ALLOW_TRAIN_IMAGES})"
    differences = fit.differences(preprocess.method, tuple(preprocess.mean), tuple(preprocess.std), preprocess.channel_order)
    preprocessing_label = ""
    if differences:
        if not allow_other_preprocessing:
            raise BadInput(
                f"{engine}'s probe was fitted with other preprocessing ({'; '.join(differences)}): give "
                f"{_options(fit)}, or pass {ALLOW_OTHER_PREPROCESSING} to score anyway (the result is labelled)"
            )
        preprocessing_label = f"differs from the probe's fit: {'; '.join(differences)} ({ALLOW_OTHER_PREPROCESSING})"
    return Labels(dataset_label, preprocessing_label)


def _options(fit: ProbeFit) -> str:
    options = f"--method {fit.method} --mean {_floats(fit.mean)} --std {_floats(fit.std)}"
    return options + (" --bgr" if fit.channel_order == "bgr" else "")


LABEL_PREFIXES = ("holds the probe's", "differs from the probe's fit")


def labelled(text: str, label: str) -> str:
    """`text` with `label` appended in brackets (the form every reader of Accuracy shows as is)."""
    return f"{text} [{label}]" if label else text


def label_of(text: str) -> str:
    """The label `labelled` appended to an Accuracy's dataset or preprocessing, or "" when it has none."""
    for prefix in LABEL_PREFIXES:
        at = text.rfind(f" [{prefix}")
        if at >= 0 and text.endswith("]"):
            return text[at + 2 : -1]
    return ""
