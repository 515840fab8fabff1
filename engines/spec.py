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

from edgebench.errors import BadInput
from edgebench.names import EngineName, parse_engine_name

PRECISIONS = ("fp32", "fp16")

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
        from edgebench.engines.backbones import BUILTINS

        if self.backbone in user_models:
            return
        info = BUILTINS.get(self.backbone)
        if info is None:
            known = ", ".join(sorted(BUILTINS))
            raise BadInput(
                f"unknown backbone {self.backbone!r}: built-in backbones are {known}; "
                "or pass your own file with --model PATH.onnx"
            )
        info.check_resolution(self.height, self.width)


def parse_resolution(text: str) -> tuple[int, int]:
    """`"120x392"` -> (120, 392); BadInput on anything else (including zero or negative sides)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise BadInput(f"resolution {text!r} is not HxW: write it like 224x224 or 120x392")
    height, width = int(match.group(1)), int(match.group(2))
    if height < 1 or width < 1:
        raise BadInput(f"resolution {text!r} is impossible: height and width must be at least 1, e.g. 224x224")
    return height, width
