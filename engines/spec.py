"""What one engine is: a backbone at one batch size, one input resolution and one precision.

The engine's name carries all of it, `<backbone>_<batch>_<H>_<W>_<precision>[_<extra>]`
(e.g. `mobilenet_v3_small_1_224_224_fp16`), and `EngineSpec.parse(name)` gives the coordinates back, so tables,
run records and file names can be traced to their sweep point without a lookup.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgebench.errors import BadInput
from edgebench.names import EngineName, parse_engine_name

if TYPE_CHECKING:
    import onnx

PRECISIONS = ("fp32", "fp16")
# The largest input side edgebench builds, fits or studies: a 4K frame (3840x2160) fits. One 4096x4096 image is
# 192 MiB as float32 RGB and a backbone's first feature maps several GiB, so larger sides are a typo, not a plan.
MAX_SIDE = 4096
MAX_BATCH = 1024  # images per execution: more is a typo on an edge device (and a tensor of many GiB)

_BACKBONE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_EXTRA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class EngineSpec(EngineName):
    """One sweep point: backbone x batch x height x width x precision (+ a free-form `extra` tag), checked.

    The fields are the name contract's (`edgebench.names.EngineName`); a spec also guarantees its name is one
    this builder can make and read back unambiguously.
    """

    def __post_init__(self) -> None:
        if not _BACKBONE_RE.match(self.backbone or ""):
            raise BadInput(
                f"backbone name {self.backbone!r} is not usable in an engine name: use letters, digits, '_', '.', '-'"
            )
        for field_name in ("batch", "height", "width"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BadInput(f"{field_name} must be a positive integer, got {value!r}: e.g. batch 1, resolution 224x224")
        if self.batch > MAX_BATCH:
            digits = str(self.batch)
            shown = digits if len(digits) <= 12 else f"{digits[:6]}... ({len(digits)} digits)"
            raise BadInput(f"batch {shown} is more than {MAX_BATCH} images: use a batch of 1 to {MAX_BATCH}")
        if self.precision not in PRECISIONS:
            raise BadInput(f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.extra and not _EXTRA_RE.match(self.extra):
            raise BadInput(f"extra tag {self.extra!r} is not usable in an engine name: use letters, digits, '_', '.', '-'")
        # A backbone that itself looks like `x_1_2_3_fp32` would make the name ambiguous: refuse it up front.
        parsed = parse_engine_name(self.name)
        if parsed is None or parsed.backbone != self.backbone:
            raise BadInput(
                f"backbone name {self.backbone!r} makes the engine name ambiguous: "
                "rename it so it does not contain _<batch>_<H>_<W>_<precision>"
            )

    @property
    def name(self) -> str:
        """`<backbone>_<batch>_<H>_<W>_<precision>[_<extra>]`."""
        base = f"{self.backbone}_{self.batch}_{self.height}_{self.width}_{self.precision}"
        return f"{base}_{self.extra}" if self.extra else base

    @classmethod
    def parse(cls, name: str) -> EngineSpec:
        """The spec an engine name was made from (precision matched case-insensitively: `FP16` reads as fp16)."""
        parsed = parse_engine_name(name)
        if parsed is None:
            raise BadInput(
                f"{name!r} is not an engine name: expected <backbone>_<batch>_<H>_<W>_<fp32|fp16>[_<extra>], "
                "e.g. resnet18_1_224_224_fp16"
            )
        return cls(**dataclasses.asdict(parsed))

    def check_backbone(self, user_models: Collection[str] = ()) -> None:
        """Raise BadInput when the backbone is unknown or the resolution is too small for it.

        `user_models` are the names of the user's ONNX files in the sweep; their shape limits are checked when the
        model is specialised, since only the graph knows them.
        """
        check_resolution(None if self.backbone in user_models else self.backbone, self.height, self.width)


def check_resolution(backbone: str | None, height: int, width: int, model: onnx.ModelProto | None = None) -> None:
    """The one resolution check of build-engines, train-probe and the studies: BadInput (one line, naming the limit)
    when height x width exceeds MAX_SIDE, is below a built-in `backbone`'s minimum (derived from its downsampling
    path, see `BackboneInfo.min_side`) or does not fit a given ONNX `model` (shape inference; only the graph knows a
    user's model's limits). `backbone` None with no `model` checks the maximum only (a user's file not parsed yet).
    """
    _check_sides(height, width)
    if model is not None:
        from edgebench.engines.counting import check_input_fits

        check_input_fits(model, height, width)
        return
    if backbone is None:
        return
    from edgebench.engines.backbones import BUILTINS

    info = BUILTINS.get(backbone)
    if info is None:
        known = ", ".join(sorted(BUILTINS))
        raise BadInput(
            f"unknown backbone {backbone!r}: built-in backbones are {known}; or pass your own file with --model PATH.onnx"
        )
    info.check_resolution(height, width)


def _check_sides(height: int, width: int, text: str | None = None) -> None:
    shown = text if text is not None else f"{height}x{width}"
    if height < 1 or width < 1:
        raise BadInput(f"resolution {shown!r} is impossible: height and width must be at least 1, e.g. 224x224")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise BadInput(
            f"resolution {shown!r} is too large: height and width are at most {MAX_SIDE} (a 4K frame fits), "
            "e.g. 224x224 or 2160x3840"
        )


def parse_resolution(text: str) -> tuple[int, int]:
    """`"120x392"` -> (120, 392); BadInput on anything else (including zero or negative sides)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if match is None:
        raise BadInput(f"resolution {text!r} is not HxW: write it like 224x224 or 120x392")
    # a side of more than 9 digits is beyond any limit; int() of thousands of digits would raise ValueError
    height, width = (int(g) if len(g.lstrip("0")) <= 9 else MAX_SIDE + 1 for g in match.groups())
    _check_sides(height, width, str(text).strip())
    return height, width
