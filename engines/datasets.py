"""Labelled datasets for `edgebench eval`, `train-probe` and the studies, and the preprocessing applied to them.

A dataset is named by a string:
- `digits`, `digits:train`, `digits:test`: scikit-learn's bundled handwritten digits (1,797 grey 8x8 images, 10
  classes, no download); the train/test halves are a fixed stratified 70/30 split (seeded), so a probe fitted on
  `digits:train` is evaluated on images it never saw.
- `PATH.npz`: arrays `x` (or `images`) and `y` (or `labels`); images N x H x W (grey), N x H x W x C or
  N x C x H x W (C = 1 or 3). uint8 images are scaled to 0..1; floating-point images are taken as 0..1 already.
  `PATH.npz:train` / `:test` take the same fixed split.
- `DIR`: a folder of images in class subfolders (torchvision's ImageFolder layout: `DIR/<class>/<image>`),
  classes numbered in sorted order, decoded to RGB with Pillow.

Preprocessing (stated in every Accuracy record): resize to the engine's HxW by one of RESIZE_METHODS, grey
replicated to the model's channels, channel order RGB or BGR, then (x - mean) / std per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.errors import BadInput, MissingDependency

SPLIT_SEED = 0
TEST_FRACTION = 0.3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
RESIZE_METHODS = {
    "area": "area averaging (each output pixel the mean of the input area it covers)",
    "bilinear": "bilinear interpolation without antialiasing (torch interpolate, align_corners=False)",
    "nearest": "nearest neighbour (subsampling)",
    "crop": "centre crop to HxW, no resampling",
}
STUDY_EXTRA = "pip install 'edgebench[study]'"


@dataclass(frozen=True)
class Dataset:
    """Labelled images, each C x H x W float32 in 0..1 (one array when all share a size, else a list)."""

    images: np.ndarray | list[np.ndarray]
    labels: np.ndarray  # int64, 0..len(classes)-1
    classes: tuple[str, ...]
    description: str  # in words: what, how many, which split

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes an engine input."""

    method: str = "area"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: str = "rgb"

    def __post_init__(self) -> None:
        if self.method not in RESIZE_METHODS:
            raise BadInput(f"unknown resize method {self.method!r}: use one of {', '.join(RESIZE_METHODS)}")
        if self.channel_order not in ("rgb", "bgr"):
            raise BadInput(f"unknown channel order {self.channel_order!r}: use rgb or bgr")
        if len(self.mean) != len(self.std) or len(self.mean) not in (1, 3):
            raise BadInput("--mean and --std take 1 or 3 values each, the same number: e.g. 0.5 or 0.485,0.456,0.406")
        if any(s <= 0 for s in self.std):
            raise BadInput("--std values must be positive, e.g. 0.229,0.224,0.225")

    def describe(self, height: int, width: int, channels: int) -> str:
        """The preprocessing in words, as recorded beside the accuracy."""
        mean = ",".join(f"{m:g}" for m in self.mean)
        std = ",".join(f"{s:g}" for s in self.std)
        return (
            f"{self.method} resize to {height}x{width}; {channels} channel(s), {self.channel_order.upper()}; "
            f"0..1 then (x - [{mean}]) / [{std}]"
        )

    def apply(self, images: np.ndarray | Sequence[np.ndarray], height: int, width: int, channels: int) -> np.ndarray:
        """N x channels x height x width float32 inputs from 0..1 images."""
        if isinstance(images, np.ndarray):
            resized = _match_channels(resize(images, height, width, self.method), channels)
        elif len(images):  # images of different sizes (an image folder): one at a time
            resized = np.stack(
                [_match_channels(resize(image[None], height, width, self.method), channels)[0] for image in images]
            )
        else:
            resized = np.zeros((0, channels, height, width), np.float32)
        if self.channel_order == "bgr" and channels == 3:
            resized = resized[:, ::-1]
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        if mean.size == 1 or channels == mean.size:
            mean = np.broadcast_to(mean, (channels,))
            std = np.broadcast_to(std, (channels,))
        else:
            raise BadInput(f"--mean/--std give {mean.size} values but the model takes {channels} channel(s)")
        return ((resized - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)


def _match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return np.repeat(images, channels, axis=1)
    if have == 3 and channels == 1:  # ITU-R BT.601 luma, what Pillow's convert("L") uses
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        return np.einsum("nchw,c->nhw", images, weights)[:, None]
    raise BadInput(f"images have {have} channels but the model takes {channels}: convert the dataset")


def _resize_matrix(size_in: int, size_out: int, method: str) -> np.ndarray:
    """size_out x size_in weights: output index i is the weighted sum of input pixels."""
    matrix = np.zeros((size_out, size_in), np.float64)
    scale = size_in / size_out
    for i in range(size_out):
        if method == "area":
            lo, hi = i * scale, (i + 1) * scale
            for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), size_in)):
                overlap = min(hi, j + 1) - max(lo, j)
                if overlap > 0:
                    matrix[i, j] = overlap / scale
        elif method == "bilinear":
            src = min(max((i + 0.5) * scale - 0.5, 0.0), size_in - 1)
            j0 = int(np.floor(src))
            j1 = min(j0 + 1, size_in - 1)
            frac = src - j0
            matrix[i, j0] += 1 - frac
            matrix[i, j1] += frac
        elif method == "nearest":
            matrix[i, min(int(np.floor(i * scale)), size_in - 1)] = 1.0
    return matrix


def resize(images: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
    """N x C x h x w -> N x C x height x width with `method` (see RESIZE_METHODS)."""
    if method not in RESIZE_METHODS:
        raise BadInput(f"unknown resize method {method!r}: use one of {', '.join(RESIZE_METHODS)}")
    n, c, h, w = images.shape
    if (h, w) == (height, width):
        return images.astype(np.float32, copy=False)
    if method == "crop":
        if height > h or width > w:
            raise BadInput(
                f"cannot centre-crop {h}x{w} images to {height}x{width}: crop only shrinks; use --method area or bilinear"
            )
        top, left = (h - height) // 2, (w - width) // 2
        return images[:, :, top : top + height, left : left + width].astype(np.float32)
    rows = _resize_matrix(h, height, method)
    cols = _resize_matrix(w, width, method)
    return np.einsum("ih,nchw,jw->ncij", rows, images.astype(np.float64), cols, optimize=True).astype(np.float32)


def _to_nchw(images: np.ndarray, source: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.transpose(0, 3, 1, 2)
    else:
        raise BadInput(f"{source}: images must be N x H x W, N x H x W x C or N x C x H x W (got {images.shape})")
    if images.shape[1] not in (1, 3):
        raise BadInput(f"{source}: images need 1 or 3 channels (got shape {images.shape})")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise BadInput(f"{source}: images must be uint8 (0..255) or floating point (0..1), got {images.dtype}")
    return images.astype(np.float32)


def split_indices(labels: np.ndarray, part: str, test_fraction: float = TEST_FRACTION) -> np.ndarray:
    """Indices of the `train` or `test` part of a fixed stratified split (seeded, the same on every machine)."""
    rng = np.random.default_rng(SPLIT_SEED)
    train: list[int] = []
    test: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        cut = int(round(len(members) * test_fraction))
        test.extend(members[:cut].tolist())
        train.extend(members[cut:].tolist())
    chosen = train if part == "train" else test
    return np.array(sorted(chosen), np.int64)


def _load_digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise MissingDependency(f"the digits dataset comes with scikit-learn: {STUDY_EXTRA}") from exc
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # pixel values 0..16
    return images, digits.target.astype(np.int64), tuple(str(name) for name in digits.target_names)


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            x_key = next((k for k in ("x", "images") if k in keys), None)
            y_key = next((k for k in ("y", "labels") if k in keys), None)
            if x_key is None or y_key is None:
                raise BadInput(f"{path} has arrays {sorted(keys)}: save images as `x` and labels as `y` (np.savez)")
            images, labels = data[x_key], data[y_key]
            names = tuple(str(n) for n in data["classes"]) if "classes" in keys else None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path} is not a readable .npz file ({exc}): write it with numpy.savez(path, x=..., y=...)") from exc
    images = _to_nchw(images, str(path))
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise BadInput(f"{path}: `y` must hold one integer label per image ({len(images)} images)")
    if len(labels) and labels.min() < 0:
        raise BadInput(f"{path}: labels must be 0 or more (class indices)")
    count = int(labels.max()) + 1 if len(labels) else 0
    return images, labels.astype(np.int64), names or tuple(str(i) for i in range(count))


def _load_image_folder(root: Path) -> tuple[list[np.ndarray], np.ndarray, tuple[str, ...]]:
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependency(f"reading an image folder needs Pillow: {STUDY_EXTRA}") from exc
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise BadInput(f"{root} has no class subfolders: lay images out as {root}/<class>/<image>.png (ImageFolder)")
    images, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            try:
                with Image.open(path) as image:
                    array = np.asarray(image.convert("RGB"), np.float32) / 255.0
            except OSError as exc:
                raise BadInput(f"cannot decode image {path} ({exc}): remove or replace it") from exc
            images.append(array.transpose(2, 0, 1))
            labels.append(index)
    if not images:
        raise BadInput(f"{root} has class folders but no images ({', '.join(IMAGE_SUFFIXES)})")
    return images, np.array(labels, np.int64), classes


def load_dataset(name: str) -> Dataset:
    """The dataset `name` names (see the module docstring); BadInput saying what to give when it is wrong."""
    base, _, part = str(name).partition(":")
    if part and part not in ("train", "test"):
        raise BadInput(f"dataset {name!r}: the part after ':' must be train or test (a fixed 70/30 split)")
    path = Path(base)
    if base == "digits" and not path.exists():
        images, labels, classes = _load_digits()
        what = "scikit-learn digits (8x8 grey)"
    elif path.is_dir():
        images, labels, classes = _load_image_folder(path)
        what = f"image folder {path}"
    elif path.suffix == ".npz" and path.is_file():
        images, labels, classes = _load_npz(path)
        what = f"{path.name}"
    else:
        raise BadInput(
            f"dataset {name!r} not found: give `digits` (scikit-learn's), a .npz file with x and y, or a folder "
            "of images in class subfolders"
        )
    total = len(labels)
    if part:
        keep = split_indices(labels, part)
        labels = labels[keep]
        images = images[keep] if isinstance(images, np.ndarray) else [images[i] for i in keep]
        what += f", {part} split ({len(labels)} of {total}, fixed seed {SPLIT_SEED})"
    else:
        what += f", all {total} images"
    if isinstance(images, list) and len({image.shape for image in images}) == 1:
        images = np.stack(images)
    return Dataset(images=images, labels=labels, classes=classes, description=what)
