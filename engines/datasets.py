"""Labelled datasets for `edgebench eval`, `train-probe` and the studies, and the preprocessing applied to them.

A dataset is named by a string:
- `digits`, `digits:train`, `digits:test`: the handwritten digits scikit-learn ships (1,797 grey 8x8 images, 10
  classes, no download), read from its `digits.csv.gz` with numpy (scikit-learn itself is not imported); the
  train/test halves are a fixed stratified 70/30 split (seeded), so a probe fitted on `digits:train` is evaluated
  on images it never saw.
- `PATH.npz`: arrays `x` (or `images`) and `y` (or `labels`), optionally `classes` (one name per class); images
  N x H x W (grey), N x H x W x C or N x C x H x W (C = 1 or 3). uint8 images are 0..255; floating-point images
  must already be 0..1. `PATH.npz:train` / `:test` take the same fixed split.
- `DIR`: a folder of images in class subfolders (torchvision's ImageFolder layout: `DIR/<class>/<image>`),
  classes numbered in sorted order, decoded to RGB with Pillow.

Every loader refuses what it cannot read faithfully with one BadInput line: damaged or foreign files, arrays whose
stored size disagrees with their header, non-finite or out-of-range pixels, empty images, more than MAX_CLASSES
classes, images over MAX_IMAGE_PIXELS. A dataset remembers where it came from (`source`, the sha256 `digest` of
its content, the split `part`), so `eval` can tell whether it holds a probe's training images.

Preprocessing (stated in every Accuracy record): resize to the engine's HxW by one of RESIZE_METHODS, grey
replicated to the model's channels, channel order RGB or BGR, then (x - mean) / std per channel.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

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
DIGITS = "digits"
DIGITS_CSV = ("datasets", "data", "digits.csv.gz")  # inside the installed sklearn package
# Limits stated to the user: class indices are 0..MAX_CLASSES-1 (ImageNet-21k has 21,841 classes); one image at
# most 4096 x 4096 pixels (the largest engine side, edgebench.engines.spec.MAX_SIDE); an .npz array at most
# MAX_ARRAY_BYTES as stored (its images become float32 one batch at a time).
MAX_CLASSES = 100_000
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_ARRAY_BYTES = 4 * 2**30
NPZ_HINT = "write it with numpy.savez(path, x=images, y=labels)"

# A dataset's images: one N x C x H x W array when all share a size, else a sequence of C x H x W arrays.
Images: TypeAlias = "np.ndarray | Sequence[np.ndarray]"
# What turns a slice of images into N x C x H x W float32 model inputs (a Preprocess at one size).
Prepare: TypeAlias = "Callable[[Images], np.ndarray]"


@dataclass(frozen=True)
class Dataset:
    """Labelled images, each C x H x W: uint8 (0..255) or float32 (0..1); one array when all share a size, else
    a list. Preprocessing turns them into float32 inputs one batch at a time."""

    images: np.ndarray | list[np.ndarray]
    labels: np.ndarray  # int64, 0..class_count-1
    class_count: int  # len(class_names) when names were given, else the highest label + 1
    description: str  # in words: what, how many, which split
    source: str = ""  # where the images came from: "digits" or the file's / folder's absolute path
    digest: str = ""  # sha256 of the source's content (the file; a folder's image files in order)
    part: str = ""  # "train" or "test" (the fixed split), "" for every image
    class_names: tuple[str, ...] | None = None  # names when the source gives them

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def name(self) -> str:
        """How the user names this dataset on the command line (`digits:test`, `/data/x.npz:train`)."""
        return f"{self.source}:{self.part}" if self.part else self.source


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
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):
            raise BadInput("--mean and --std take finite numbers, e.g. 0.485,0.456,0.406")
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
        """N x channels x height x width float32 inputs from uint8 (0..255) or float (0..1) images."""
        if isinstance(images, np.ndarray):
            resized = _match_channels(resize(_unit(images), height, width, self.method), channels)
        elif len(images):  # images of different sizes (an image folder): one at a time
            resized = np.stack(
                [_match_channels(resize(_unit(image[None]), height, width, self.method), channels)[0] for image in images]
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


def _unit(images: np.ndarray) -> np.ndarray:
    """0..1 float32 from uint8 (0..255) or float images."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)


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


@functools.lru_cache(maxsize=64)
def _resize_matrix(size_in: int, size_out: int, method: str) -> np.ndarray:
    """size_out x size_in weights: output index i is the weighted sum of input pixels (cached: an image folder
    asks for the same sizes image after image). Read-only, since callers share it."""
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
    matrix.flags.writeable = False
    return matrix


@functools.lru_cache(maxsize=64)
def _selection(size_in: int, size_out: int, method: str) -> np.ndarray | None:
    """The input index of each output pixel when the resize only picks pixels (every weight row a single 1.0:
    nearest, and area or bilinear by some integer upscales), else None. Picking gives exactly the weighted sum's
    values (one product by 1.0, the rest exact zeros), without the float64 matrix products."""
    matrix = _resize_matrix(size_in, size_out, method)
    if not np.all((matrix == 0.0) | (matrix == 1.0)) or not np.all(np.count_nonzero(matrix, axis=1) == 1):
        return None
    return np.argmax(matrix, axis=1)


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
    pick_rows, pick_cols = _selection(h, height, method), _selection(w, width, method)
    if pick_rows is not None and pick_cols is not None:
        return images[:, :, pick_rows][:, :, :, pick_cols].astype(np.float32)
    rows = _resize_matrix(h, height, method)
    cols = _resize_matrix(w, width, method)
    return np.einsum("ih,nchw,jw->ncij", rows, images.astype(np.float64), cols, optimize=True).astype(np.float32)


def _check_pixels(images: np.ndarray, source: str) -> None:
    """BadInput unless uint8, or floating point that is finite and within 0..1 (the stated contract)."""
    if images.dtype == np.uint8:
        return
    if not np.issubdtype(images.dtype, np.floating):
        raise BadInput(f"{source}: images must be uint8 (0..255) or floating point (0..1), got {images.dtype}")
    if images.size == 0:
        return
    finite = np.isfinite(images)
    if not finite.all():
        bad = int(images.size - np.count_nonzero(finite))
        raise BadInput(f"{source}: {bad} pixel(s) are NaN or infinite: fix or drop those images")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        hint = "divide by 255 or save as uint8" if high <= 255.0 and low >= 0.0 else "rescale them to 0..1"
        raise BadInput(f"{source}: floating-point pixels must be 0..1, found {low:g}..{high:g}: {hint}")


def _to_nchw(images: np.ndarray, source: str) -> np.ndarray:
    """N x C x H x W (C = 1 or 3) in the array's own type, checked (see `_check_pixels`)."""
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.transpose(0, 3, 1, 2)
    else:
        raise BadInput(f"{source}: images must be N x H x W, N x H x W x C or N x C x H x W (got shape {images.shape})")
    if images.shape[1] not in (1, 3):
        raise BadInput(f"{source}: images need 1 or 3 channels (got shape {images.shape})")
    if len(images) == 0:
        raise BadInput(f"{source} holds no images: give at least one labelled image")
    if images.shape[2] < 1 or images.shape[3] < 1:
        raise BadInput(f"{source}: images are {images.shape[2]}x{images.shape[3]} pixels: give images of 1x1 or more")
    if images.shape[2] * images.shape[3] > MAX_IMAGE_PIXELS:
        raise BadInput(
            f"{source}: images are {images.shape[2]}x{images.shape[3]}, over the limit of {MAX_IMAGE_PIXELS:,} "
            "pixels (4096x4096): downscale them"
        )
    _check_pixels(images, source)
    return images


def check_labels(labels: np.ndarray, count: int, source: str, names: tuple[str, ...] | None = None) -> tuple[np.ndarray, int]:
    """(int64 labels, class count): one integer class index per image, 0 .. MAX_CLASSES-1 (and below
    len(names) when names are given). Class names are never made up here: a label of 10**9 costs nothing."""
    if labels.ndim != 1 or len(labels) != count or not np.issubdtype(labels.dtype, np.integer):
        raise BadInput(f"{source}: labels must hold one integer class index per image ({count} images)")
    if count and int(labels.min()) < 0:
        raise BadInput(f"{source}: labels are class indices, 0 or more (found {int(labels.min())})")
    top = int(labels.max()) if count else -1
    if names is not None:
        if top >= len(names):
            raise BadInput(f"{source}: label {top} has no class name ({len(names)} names given): give one name per class")
        return labels.astype(np.int64), len(names)
    if top >= MAX_CLASSES:
        raise BadInput(
            f"{source}: label {top} means more than {MAX_CLASSES:,} classes: labels are class indices 0..K-1; renumber them"
        )
    return labels.astype(np.int64), top + 1


def split_indices(labels: np.ndarray, part: str, test_fraction: float = TEST_FRACTION) -> np.ndarray:
    """Indices of the `train` or `test` part of a fixed stratified split (seeded, the same on every machine)."""
    rng = np.random.default_rng(SPLIT_SEED)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    # members of each class in ascending index order, classes in ascending order: one sort, not a scan per class
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    bounds = [*starts.tolist(), len(labels)]
    for k in range(len(values)):
        members = order[bounds[k] : bounds[k + 1]]
        members = members[rng.permutation(len(members))]
        cut = int(round(len(members) * test_fraction))
        test.append(members[:cut])
        train.append(members[cut:])
    chosen = train if part == "train" else test
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)


def digits_csv() -> Path:
    """Where scikit-learn's bundled `digits.csv.gz` lies, found without importing scikit-learn."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location).joinpath(*DIGITS_CSV)
        if path.is_file():
            return path
    if not locations:
        raise MissingDependency(f"the digits dataset comes with scikit-learn: {STUDY_EXTRA}")
    raise MissingDependency(
        f"scikit-learn is installed but its {'/'.join(DIGITS_CSV)} is missing: reinstall scikit-learn ({STUDY_EXTRA})"
    )


def _load_digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """(images N x 1 x 8 x 8 float32 0..1, labels, class names, sha256 of the CSV): the same arrays as
    `sklearn.datasets.load_digits()` (pixel values 0..16, so /16), read with numpy."""
    import gzip

    path = digits_csv()
    raw = path.read_bytes()
    try:
        table = np.loadtxt(io.StringIO(gzip.decompress(raw).decode("ascii")), delimiter=",", ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise MissingDependency(f"{path} is damaged ({exc}): reinstall scikit-learn ({STUDY_EXTRA})") from exc
    if table.shape[1] != 65:
        raise MissingDependency(f"{path} is not the 8x8 digits table (shape {table.shape}): reinstall scikit-learn")
    images = (table[:, :-1].reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    return images, table[:, -1].astype(np.int64), tuple(str(k) for k in range(10)), hashlib.sha256(raw).hexdigest()


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


def _npz_member(archive: zipfile.ZipFile, key: str, path: Path) -> np.ndarray:
    """One array of an .npz, its header checked against the stored size before numpy allocates for it (a damaged
    header claiming terabytes would otherwise be allocated first)."""
    from numpy.lib import format as npy

    info = archive.getinfo(f"{key}.npy")
    with archive.open(info) as handle:
        version = npy.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(handle, max_header_size=10_000)
        else:  # 3.0 only carries structured dtypes with non-latin-1 field names: never images or labels
            raise BadInput(f"{path}: array {key!r} uses .npy format {version[0]}.{version[1]}: {NPZ_HINT}")
        stored = info.file_size - handle.tell()
        claimed = math.prod(shape) * dtype.itemsize
        if dtype.hasobject:
            raise BadInput(f"{path}: array {key!r} holds Python objects, which are not read: {NPZ_HINT}")
        if claimed != stored:
            raise BadInput(f"{path} is damaged: array {key!r} claims {claimed:,} bytes but holds {stored:,}: {NPZ_HINT}")
        if claimed > MAX_ARRAY_BYTES:
            raise BadInput(
                f"{path}: array {key!r} is {claimed / 2**30:.1f} GiB, over the {MAX_ARRAY_BYTES // 2**30} GiB limit: "
                "split the dataset"
            )
        array = np.frombuffer(handle.read(stored), dtype=dtype)
    if len(array) * dtype.itemsize != stored:
        raise BadInput(f"{path} is damaged: array {key!r} ends early: {NPZ_HINT}")
    return array.reshape(shape, order="F" if fortran else "C")


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None, str]:
    """(images, labels, class names or None, sha256 of the file); every way the file can be wrong is BadInput."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path} ({exc.strerror}): check the path and its permissions") from exc
    if not raw:
        raise BadInput(f"{path} is empty (0 bytes): {NPZ_HINT}")
    if raw.startswith(_NPY_MAGIC):
        raise BadInput(f"{path} is one .npy array, not an .npz archive of images and labels: {NPZ_HINT}")
    if not raw.startswith(_ZIP_MAGIC):
        raise BadInput(f"{path} is not an .npz archive (no zip header): {NPZ_HINT}")
    digest = hashlib.sha256(raw).hexdigest()
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            keys = {name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy")}
            x_key = next((k for k in ("x", "images") if k in keys), None)
            y_key = next((k for k in ("y", "labels") if k in keys), None)
            if x_key is None or y_key is None:
                raise BadInput(f"{path} has arrays {sorted(keys)}: save images as `x` and labels as `y` ({NPZ_HINT})")
            images = _npz_member(archive, x_key, path)
            labels = _npz_member(archive, y_key, path)
            names_array = _npz_member(archive, "classes", path) if "classes" in keys else None
    except BadInput:
        raise
    except Exception as exc:  # zipfile, zlib and numpy's format reader raise a dozen types on damaged bytes
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BadInput(f"{path} is damaged ({type(exc).__name__}{': ' + detail if detail else ''}): {NPZ_HINT}") from None
    names = None
    if names_array is not None:
        if names_array.ndim != 1 or not len(names_array) or names_array.dtype.kind not in "USiu":
            raise BadInput(f"{path}: `classes` must be a 1-D array of class names, one per class (got shape {names_array.shape})")
        if len(names_array) > MAX_CLASSES:
            raise BadInput(f"{path}: {len(names_array):,} class names, over the limit of {MAX_CLASSES:,}")
        names = tuple(str(n) for n in names_array.tolist())
    return _to_nchw(images, str(path)), labels, names, digest


def _read_image(path: Path) -> tuple[np.ndarray, bytes]:
    """(C x H x W uint8 RGB, the file's bytes): the size is checked from the header before any pixel is decoded."""
    from PIL import Image

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read image {path} ({exc.strerror}): check its permissions") from exc
    try:
        with warnings.catch_warnings():
            # Pillow warns (then raises) about decompression bombs itself; our own limit is lower and stated
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
                if width < 1 or height < 1 or width * height > MAX_IMAGE_PIXELS:
                    raise BadInput(
                        f"image {path} is {width}x{height}: images must have 1 to {MAX_IMAGE_PIXELS:,} pixels "
                        "(4096x4096); downscale or remove it"
                    )
                array = np.asarray(image.convert("RGB"), np.uint8)
    except BadInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadInput(f"image {path} claims too many pixels ({exc}): downscale or remove it") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... on damaged files
        raise BadInput(f"cannot decode image {path} ({type(exc).__name__}: {exc}): remove or replace it") from None
    return array.transpose(2, 0, 1), raw


def _load_image_folder(root: Path) -> tuple[list[np.ndarray], np.ndarray, tuple[str, ...], str]:
    try:
        import PIL  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(f"reading an image folder needs Pillow: {STUDY_EXTRA}") from exc
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise BadInput(f"{root} has no class subfolders: lay images out as {root}/<class>/<image>.png (ImageFolder)")
    if len(classes) > MAX_CLASSES:
        raise BadInput(f"{root} has {len(classes):,} class folders, over the limit of {MAX_CLASSES:,}")
    digest = hashlib.sha256()
    images, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            array, raw = _read_image(path)
            digest.update(str(path.relative_to(root)).encode("utf-8", "surrogateescape") + b"\0")
            digest.update(hashlib.sha256(raw).digest())
            images.append(array)
            labels.append(index)
    if not images:
        raise BadInput(f"{root} has class folders but no images ({', '.join(IMAGE_SUFFIXES)})")
    return images, np.array(labels, np.int64), classes, digest.hexdigest()


def load_dataset(name: str) -> Dataset:
    """The dataset `name` names (see the module docstring); BadInput saying what to give when it is wrong."""
    base, _, part = str(name).partition(":")
    if part and part not in ("train", "test"):
        raise BadInput(f"dataset {name!r}: the part after ':' must be train or test (a fixed 70/30 split)")
    path = Path(base)
    names: tuple[str, ...] | None
    images: np.ndarray | list[np.ndarray]
    if base == DIGITS and not path.exists():
        images, labels, names, digest = _load_digits()
        what, source = "scikit-learn digits (8x8 grey)", DIGITS
    elif path.is_dir():
        images, labels, names, digest = _load_image_folder(path)
        what, source = f"image folder {path}", str(path.resolve())
    elif path.suffix == ".npz" and path.is_file():
        images, labels, names, digest = _load_npz(path)
        what, source = f"{path.name}", str(path.resolve())
    elif path.suffix == ".npz" and path.exists():
        raise BadInput(f"dataset {name!r} is not a regular file: give an .npz file ({NPZ_HINT})")
    else:
        raise BadInput(
            f"dataset {name!r} not found: give `digits` (scikit-learn's), a .npz file with x and y, or a folder "
            "of images in class subfolders"
        )
    labels, class_count = check_labels(labels, len(images), f"dataset {base}", names)
    total = len(labels)
    if part:
        keep = split_indices(labels, part)
        if not len(keep):
            raise BadInput(f"dataset {name!r}: the {part} split is empty ({total} images): use the whole dataset")
        labels = labels[keep]
        images = images[keep] if isinstance(images, np.ndarray) else [images[i] for i in keep]
        what += f", {part} split ({len(labels)} of {total}, fixed seed {SPLIT_SEED})"
    else:
        what += f", all {total} images"
    if isinstance(images, list) and len({image.shape for image in images}) == 1:
        images = np.stack(images)
    return Dataset(
        images=images, labels=labels, class_count=class_count, description=what, source=source, digest=digest,
        part=part, class_names=names,
    )
