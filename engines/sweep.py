"""A sweep: backbones x batch sizes x resolutions x precisions, expanded into EngineSpecs.

TOML form (`edgebench build-engines --sweep sweep.toml`):

    backbones = ["resnet18", "mobilenet_v3_small"]
    batches = [1, 2]
    resolutions = ["120x392", "240x784"]
    precisions = ["fp32", "fp16"]
    extra = ""                      # optional tag appended to every engine name
    [models]                        # optional: your own ONNX files, named by key (paths relative to the file)
    yolo_tiny = "models/yolo_tiny.onnx"
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebench.engines.spec import PRECISIONS, EngineSpec, parse_resolution
from edgebench.errors import BadInput

_KEYS = {"backbones", "batches", "resolutions", "precisions", "models", "extra"}


@dataclass(frozen=True)
class Sweep:
    """The grid to build; `models` maps a backbone name to a user's ONNX file (it joins the backbones)."""

    backbones: tuple[str, ...] = ()
    batches: tuple[int, ...] = (1,)
    resolutions: tuple[tuple[int, int], ...] = ((224, 224),)
    precisions: tuple[str, ...] = ("fp32",)
    models: Mapping[str, Path] = field(default_factory=dict)
    extra: str = ""

    def __post_init__(self) -> None:
        # accept lists and "HxW" strings from callers; store tuples so the record stays immutable
        object.__setattr__(self, "backbones", tuple(self.backbones))
        object.__setattr__(self, "batches", tuple(self.batches))
        object.__setattr__(
            self, "resolutions",
            tuple(parse_resolution(r) if isinstance(r, str) else (int(r[0]), int(r[1])) for r in self.resolutions),
        )
        object.__setattr__(self, "precisions", tuple(p.lower() for p in self.precisions))
        object.__setattr__(self, "models", {name: Path(path) for name, path in dict(self.models).items()})
        for precision in self.precisions:
            if precision not in PRECISIONS:
                raise BadInput(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        if not self.all_backbones():
            raise BadInput("the sweep has no backbone: name one with --backbone or --model PATH.onnx")
        for name in (*self.batches, *(s for r in self.resolutions for s in r)):
            if isinstance(name, bool) or not isinstance(name, int) or name < 1:
                raise BadInput(f"batch sizes and resolutions must be positive integers, got {name!r}")

    def all_backbones(self) -> tuple[str, ...]:
        """Built-in backbones then user models, each once, in the order given."""
        return tuple(dict.fromkeys((*self.backbones, *self.models)))

    def specs(self) -> list[EngineSpec]:
        """Every point of the grid, backbone-major (all variants of one backbone are built together)."""
        return [
            EngineSpec(backbone, batch, height, width, precision, self.extra)
            for backbone, batch, (height, width), precision in itertools.product(
                self.all_backbones(), self.batches, self.resolutions, self.precisions
            )
        ]

    def __len__(self) -> int:
        return len(self.all_backbones()) * len(self.batches) * len(self.resolutions) * len(self.precisions)


DEFAULT_SWEEP = Sweep(
    backbones=("resnet18", "mobilenet_v2", "squeezenet1_1", "mobilenet_v3_small"),
    batches=(1,),
    resolutions=((224, 224),),
    precisions=("fp32", "fp16"),
)


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError as exc:
            from edgebench.errors import MissingDependency

            raise MissingDependency("reading TOML on Python 3.10 needs tomli: pip install tomli") from exc
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise BadInput(f"sweep file {path} does not exist: check the --sweep path") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"sweep file {path} is not valid TOML: {exc}") from exc


def _list(data: dict, key: str, default: Sequence) -> list:
    value = data.get(key, default)
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list):
        raise BadInput(f"sweep key {key!r} must be a list, e.g. {key} = {list(default) or ['...']!r}")
    return list(value)


def load_sweep(path: Path) -> Sweep:
    """A Sweep from a TOML file (format in this module's docstring); model paths are relative to the file."""
    path = Path(path)
    data = _load_toml(path)
    unknown = set(data) - _KEYS
    if unknown:
        raise BadInput(f"sweep file {path} has unknown keys {sorted(unknown)}: allowed keys are {sorted(_KEYS)}")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise BadInput(f"sweep file {path}: [models] must be a table of name = \"path.onnx\"")
    batches = _list(data, "batches", [1])
    for batch in batches:
        if not isinstance(batch, int):
            raise BadInput(f"sweep file {path}: batches must be integers, got {batch!r}")
    return Sweep(
        backbones=tuple(str(b) for b in _list(data, "backbones", [])),
        batches=tuple(batches),
        resolutions=tuple(parse_resolution(str(r)) for r in _list(data, "resolutions", ["224x224"])),
        precisions=tuple(str(p) for p in _list(data, "precisions", ["fp32"])),
        models={str(name): (path.parent / str(p)) for name, p in models.items()},
        extra=str(data.get("extra", "")),
    )
