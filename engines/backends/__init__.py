"""Backends turn a specialised ONNX model into an engine artifact and open runners on it.

Each backend module is imported only when asked for, so `tensorrt` (absent on most machines) costs nothing until
used. `available()` says plainly what is missing and how to get it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edgebench.errors import BadInput, MissingDependency

if TYPE_CHECKING:  # pragma: no cover
    import onnx

    from edgebench.engines.manifest import ManifestEntry
    from edgebench.engines.runner import ArrayRunner, RunOptions
    from edgebench.engines.spec import EngineSpec

DEFAULT_BACKEND = "onnxruntime"

# name -> module in this package (imported lazily)
BACKENDS: dict[str, str] = {
    "onnxruntime": "ort",
    "tensorrt": "trt",
}


@dataclass(frozen=True)
class Availability:
    """Whether a backend can be used here; `reason` says why not and how to fix it."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


class Backend(Protocol):
    """What the builder and the agent need from a backend."""

    name: str
    artifact_suffix: str  # ".onnx", ".plan"

    def available(self) -> Availability:
        """Probe the backend's packages (and hardware) without side effects."""

    def versions(self) -> dict[str, str]:
        """Versions of the packages that shape the artifact; part of the cache key and the manifest."""

    def build_options(self, spec: EngineSpec) -> dict[str, str | int | float | bool]:
        """The options a build of `spec` uses (recorded, and hashed into the cache key)."""

    def build(self, model: onnx.ModelProto, spec: EngineSpec, artifact: Path, engines_dir: Path) -> None:
        """Write the engine for `spec` from `model` (input shape already fixed) to `artifact`."""

    def open_runner(self, engines_dir: Path, entry: ManifestEntry, options: RunOptions) -> ArrayRunner:
        """Load the engine and prepare its inputs; the returned Runner is ready to time."""


def module_found(name: str) -> bool:
    """Whether the top-level module `name` can be imported here, found by `importlib.util.find_spec` without
    importing it (a backend's availability is probed this way first: imports cost hundreds of milliseconds)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken namespace or a module whose __spec__ is None
        return False


def backend_names() -> list[str]:
    """Every backend edgebench knows, available here or not."""
    return sorted(BACKENDS)


def get_backend(name: str) -> Backend:
    """The backend called `name` (BadInput listing the known ones when unknown)."""
    if name not in BACKENDS:
        raise BadInput(f"unknown backend {name!r}: use one of {', '.join(backend_names())}")
    module = importlib.import_module(f"{__name__}.{BACKENDS[name]}")
    return module.BACKEND


def require_backend(name: str) -> Backend:
    """`get_backend`, then MissingDependency with the probe's reason when it cannot run here."""
    backend = get_backend(name)
    availability = backend.available()
    if not availability:
        raise MissingDependency(availability.reason)
    return backend


def available() -> dict[str, Availability]:
    """Every backend's probe result, by name."""
    return {name: get_backend(name).available() for name in backend_names()}


def open_runner(engines_dir: Path, entry: ManifestEntry, options: RunOptions | None = None) -> ArrayRunner:
    """Open a runner on one manifest entry with the backend that built it."""
    from edgebench.engines.runner import RunOptions

    backend = require_backend(entry.backend)
    artifact = Path(engines_dir) / entry.artifact
    if not artifact.is_file():
        raise BadInput(
            f"engine artifact {artifact} is missing: rebuild with `edgebench build-engines --out {engines_dir}`"
        )
    return backend.open_runner(Path(engines_dir), entry, options or RunOptions())
