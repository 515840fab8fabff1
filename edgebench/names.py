"""The engine-name contract, `<backbone>_<batch>_<H>_<W>_<precision>[_<extra>]`, read back into its coordinates.

It lives here because both sides read names: `edgebench.engines.spec` makes and checks them on the device, and
the host (which never imports engine code) labels its tables with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Backbone names may contain underscores and digits (mobilenet_v3_small, resnet18), so the numeric fields are
# matched lazily from the left: the first `_<int>_<int>_<int>_<precision>` run that reaches a valid tail wins.
ENGINE_NAME_RE = re.compile(
    r"^(?P<backbone>[A-Za-z0-9][A-Za-z0-9_.\-]*?)_(?P<batch>\d+)_(?P<height>\d+)_(?P<width>\d+)"
    r"_(?P<precision>fp32|fp16|int8|bf16|tf32|fp8)(?:_(?P<extra>[A-Za-z0-9][A-Za-z0-9_.\-]*))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class EngineName:
    """The coordinates an engine name encodes (precision lower-cased)."""

    backbone: str
    batch: int
    height: int
    width: int
    precision: str
    extra: str = ""

    @property
    def resolution(self) -> str:
        """`<H>x<W>`, as the CLI spells it."""
        return f"{self.height}x{self.width}"


def parse_engine_name(name: str) -> EngineName | None:
    """`sp_resnet18_2_120_392_FP16_seq_4` -> EngineName(sp_resnet18, 2, 120, 392, fp16, seq_4); None if no match."""
    match = ENGINE_NAME_RE.match(name.strip())
    if match is None:
        return None
    return EngineName(
        backbone=match.group("backbone"),
        batch=int(match.group("batch")),
        height=int(match.group("height")),
        width=int(match.group("width")),
        precision=match.group("precision").lower(),
        extra=match.group("extra") or "",
    )
