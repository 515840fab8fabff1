"""Built-in backbones, generated as ONNX graphs in code (no torch, no downloads), and user ONNX files.

The four classification backbones follow torchvision's architectures exactly (and `mobilenet_v2_x<w>` is
torchvision's MobileNetV2 with width_mult w, for w in 0.35, 0.5, 0.75, 1.3, 1.4), so their parameter counts equal
torchvision's published ones; `superpoint` follows MagicLeap's SuperPoint (1,300,865 parameters). Batch, height
and width are symbolic dimensions named `batch`, `height`, `width`; the builder fixes them per engine. Weights
are He-initialised from a fixed seed: the graphs are for timing and energy, not for accuracy.

This module imports neither onnx nor numpy: the registry is read by the CLI and by `EngineSpec` cheaply.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from edgebench.errors import BadInput, MissingDependency

if TYPE_CHECKING:  # pragma: no cover
    import onnx

# Opset 13 (IR 7): the newest that TensorRT 8.2's ONNX parser (JetPack 4.6, the Jetson Nano's last JetPack) reads;
# ORT runs it everywhere. HardSwish (opset 14) is therefore written as x * HardSigmoid(x), the same function.
OPSET = 13
IR_VERSION = 7
SEED = 20240  # weights are random but reproducible, so a cache key stays stable between runs
INPUT_DIMS = ("batch", "channels", "height", "width")


@dataclass(frozen=True)
class Window:
    """One spatial downsampling step of a network (a strided convolution or pooling), as ONNX computes its output
    side: floor((n + 2 pad - kernel) / stride) + 1, or ceil(...) with `ceil` (MaxPool's ceil_mode)."""

    kernel: int
    stride: int
    pad: int = 0
    ceil: bool = False

    def output_side(self, side: int) -> int:
        span = side + 2 * self.pad - self.kernel
        steps = -(-span // self.stride) if self.ceil else span // self.stride  # Python's // floors negatives too
        out = steps + 1
        if self.ceil and out > 0 and (out - 1) * self.stride >= side + self.pad:
            out -= 1  # the last window would start in the right padding: dropped (PyTorch's and ORT's rule)
        return out


def smallest_side(windows: tuple[Window, ...], multiple: int = 1) -> int:
    """The smallest input side (a multiple of `multiple`) for which every window leaves at least one pixel."""
    side = multiple
    while True:
        current = side
        for window in windows:
            current = window.output_side(current)
            if current < 1:
                break
        else:
            return side
        side += multiple


def _same(kernel: int, stride: int = 2) -> Window:
    # torchvision's convolutions pad (k - 1) // 2: a stride-2 one halves the side, rounding up
    return Window(kernel, stride, (kernel - 1) // 2)


@dataclass(frozen=True)
class BackboneInfo:
    """What the builder needs to know about a built-in backbone before generating it."""

    name: str
    module: str  # module in this package holding `build() -> onnx.ModelProto`
    channels: int  # input channels (NCHW)
    windows: tuple[Window, ...]  # the downsampling path, input to pooled features (what limits the input side)
    multiple: int = 1  # height and width must be multiples of this (SuperPoint's 8x8 cells)
    published_params: int = 0  # the reference figure users compare against (torchvision / MagicLeap)
    published_gmacs_224: float | None = None  # torchvision's "GFLOPS" column (really GMACs) at 224x224

    @property
    def min_side(self) -> int:
        """Smallest height/width that survives the network's downsampling (derived from `windows`)."""
        return smallest_side(self.windows, self.multiple)

    def check_resolution(self, height: int, width: int) -> None:
        """BadInput naming the limit when height x width cannot go through this backbone."""
        if height < self.min_side or width < self.min_side:
            raise BadInput(
                f"resolution {height}x{width} is too small for {self.name}: its downsampling needs at least "
                f"{self.min_side}x{self.min_side}"
            )
        if height % self.multiple or width % self.multiple:
            raise BadInput(
                f"resolution {height}x{width} does not fit {self.name}: height and width must be multiples of "
                f"{self.multiple} (e.g. {height - height % self.multiple or self.multiple}x"
                f"{width - width % self.multiple or self.multiple})"
            )


# the downsampling paths of the generated graphs (classification.py, superpoint.py); a test checks each derived
# minimum against the real graph: shape inference and onnxruntime pass at min_side and fail below it
_RESNET = (Window(7, 2, 3), Window(3, 2, 1), _same(3), _same(3), _same(3))
_MOBILENET_V2 = (_same(3),) * 5  # the stem and the four stride-2 stages of the inverted-residual table
_MOBILENET_V3_SMALL = (_same(3), _same(3), _same(3), _same(5), _same(5))
_SQUEEZENET = (Window(3, 2, 0), *(Window(3, 2, 0, ceil=True),) * 3)  # unpadded stem, three ceil-mode pools
_SUPERPOINT = (Window(2, 2),) * 3  # three 2x2 max-pools: 8x8 cells

# width multipliers of mobilenet_v2 besides 1.0 (the MobileNetV2 paper's 0.35-1.4), as `mobilenet_v2_x<width>`
MOBILENET_V2_WIDTHS = (0.35, 0.5, 0.75, 1.3, 1.4)


def _width_name(width: float) -> str:
    return "mobilenet_v2" if width == 1.0 else f"mobilenet_v2_x{width:g}"


BUILTINS: dict[str, BackboneInfo] = {
    info.name: info
    for info in (
        BackboneInfo("resnet18", "classification", 3, _RESNET, published_params=11_689_512, published_gmacs_224=1.81),
        BackboneInfo(
            "mobilenet_v2", "classification", 3, _MOBILENET_V2, published_params=3_504_872, published_gmacs_224=0.30
        ),
        BackboneInfo(
            "squeezenet1_1", "classification", 3, _SQUEEZENET, published_params=1_235_496, published_gmacs_224=0.35
        ),
        BackboneInfo(
            "mobilenet_v3_small", "classification", 3, _MOBILENET_V3_SMALL, published_params=2_542_856,
            published_gmacs_224=0.06,
        ),
        BackboneInfo("superpoint", "superpoint", 1, _SUPERPOINT, multiple=8, published_params=1_300_865),
        # mobilenet_v2 at other width multipliers (torchvision's width_mult; no published torchvision counts)
        *(
            BackboneInfo(_width_name(width), "classification", 3, _MOBILENET_V2) for width in MOBILENET_V2_WIDTHS
        ),
    )
}
MODEL_FAMILIES: dict[str, tuple[str, ...]] = {
    # built-in backbones of one family, smallest first: `edgebench study model-size --family mobilenet_v2`
    "mobilenet_v2": tuple(_width_name(width) for width in sorted((*MOBILENET_V2_WIDTHS, 1.0))),
}


def _onnx() -> ModuleType:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx is a core dependency
        raise MissingDependency("onnx is not installed: pip install onnx") from exc
    return onnx


_CACHE: dict[str, bytes] = {}


def builtin_model_bytes(name: str) -> bytes:
    """The serialized ONNX model of a built-in backbone (generated once per process; deterministic)."""
    if name not in BUILTINS:
        known = ", ".join(sorted(BUILTINS))
        raise BadInput(f"unknown backbone {name!r}: built-in backbones are {known}; or pass --model PATH.onnx")
    if name not in _CACHE:
        module = importlib.import_module(f"{__name__}.{BUILTINS[name].module}")
        model = module.build(name)
        _CACHE[name] = model.SerializeToString()
    return _CACHE[name]


def builtin_model(name: str) -> onnx.ModelProto:
    """A built-in backbone as an `onnx.ModelProto` with symbolic batch, height and width."""
    onnx = _onnx()
    return onnx.load_from_string(builtin_model_bytes(name))


def user_model_name(path: Path) -> str:
    """A user's ONNX file is a backbone named after its stem (`models/yolo_tiny.onnx` -> `yolo_tiny`)."""
    return Path(path).stem


def load_user_model(path: Path) -> tuple[onnx.ModelProto, bytes]:
    """Read and check a user's ONNX file; BadInput (one line) when missing, not ONNX, or invalid."""
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"ONNX model {path} does not exist: check the --model path")
    data = path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise BadInput(f"{path} is not an ONNX model ({type(exc).__name__}): export it with torch.onnx.export") from exc
    if not model.graph.node:
        raise BadInput(f"{path} is not an ONNX model (no graph nodes): export it with torch.onnx.export")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{path} fails onnx.checker: {first}; re-export the model") from exc
    return model, data
