"""Build a sweep of engines into a directory, skipping what is already built and unchanged.

Every point's cache key is sha256(source model bytes + build options + backend versions); an engine whose key
matches its manifest row and whose artifact is present is "cached" and left alone. Each finished engine is
written to manifest.json at once, so an interrupted sweep resumes where it stopped. A point that fails is
reported and the sweep goes on; the caller decides the exit code from the report.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.engines.backends import DEFAULT_BACKEND, require_backend
from edgebench.engines.manifest import Manifest, ManifestEntry
from edgebench.engines.spec import EngineSpec
from edgebench.engines.sweep import Sweep
from edgebench.errors import BadInput, EdgebenchError
from edgebench.files import write_atomic

if TYPE_CHECKING:
    import onnx

    from edgebench.engines.backends import Backend

BUILT, CACHED, FAILED = "built", "cached", "failed"


@dataclass(frozen=True)
class BuildResult:
    """What happened to one sweep point."""

    name: str
    status: str  # built / cached / failed
    entry: ManifestEntry | None = None
    error: str = ""


@dataclass(frozen=True)
class BuildReport:
    """The outcome of a sweep build, in sweep order."""

    out_dir: Path
    backend: str
    results: tuple[BuildResult, ...] = field(default_factory=tuple)

    def by_status(self, status: str) -> list[BuildResult]:
        return [result for result in self.results if result.status == status]

    @property
    def failed(self) -> list[BuildResult]:
        return self.by_status(FAILED)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def entries(self) -> list[ManifestEntry]:
        """Manifest rows of the engines built or found cached."""
        return [result.entry for result in self.results if result.entry is not None]


def cache_key(source: bytes, spec: EngineSpec, backend: str, options: dict, versions: dict) -> str:
    """sha256 over the source model's identity (its sha256), the engine's name, the backend, its options and
    its package versions."""
    digest = hashlib.sha256()
    digest.update(source)
    digest.update(
        json.dumps({"spec": spec.name, "backend": backend, "options": options, "versions": versions}, sort_keys=True)
        .encode()
    )
    return digest.hexdigest()


SOURCES_MEMO = ".sources.json"  # in the engines directory: built-in code fingerprint -> sha256 of its model bytes


def _builtin_fingerprint(backbone: str) -> str:
    """sha256 of what generates a built-in backbone: the backbones package's source files, its name and the
    versions of numpy (the seeded weights) and onnx (the serialisation). Reading files is cheap; generating the
    graph (and importing onnx) is not, which is what a cached sweep must avoid."""
    from importlib.metadata import PackageNotFoundError, version

    from edgebench.engines import backbones

    digest = hashlib.sha256(backbone.encode())
    package = Path(backbones.__file__).parent
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for dist in ("numpy", "onnx"):
        try:
            digest.update(f"{dist}={version(dist)}".encode())
        except PackageNotFoundError:
            digest.update(f"{dist}=?".encode())
    return digest.hexdigest()


class _Sources:
    """Source models by backbone name: built-ins generated once, user files loaded and checked once.

    `digest(name)` is the sha256 of the model's bytes, computed without generating a built-in when the engines
    directory remembers it for the same generator code (SOURCES_MEMO), and without parsing a user's file, so a
    fully cached sweep imports neither onnx nor the backend's heavy modules.
    """

    def __init__(self, models: dict[str, Path], out_dir: Path | None = None) -> None:
        self.models = models
        self.out_dir = out_dir
        self._loaded: dict[str, tuple[onnx.ModelProto, bytes]] = {}
        self._digests: dict[str, str] = {}
        self._memo: dict[str, str] | None = None

    def check(self) -> None:
        for name in self.models:
            self.get(name)

    def get(self, backbone: str) -> tuple[onnx.ModelProto, bytes]:
        from edgebench.engines import backbones

        if backbone not in self._loaded:
            if backbone in self.models:
                self._loaded[backbone] = backbones.load_user_model(self.models[backbone])
            else:
                self._loaded[backbone] = (backbones.builtin_model(backbone), backbones.builtin_model_bytes(backbone))
        return self._loaded[backbone]

    def _memo_path(self) -> Path | None:
        return self.out_dir / SOURCES_MEMO if self.out_dir is not None else None

    def _read_memo(self) -> dict[str, str]:
        if self._memo is None:
            self._memo = {}
            path = self._memo_path()
            if path is not None and path.is_file():
                try:
                    data = json.loads(path.read_text())
                    if isinstance(data, dict):
                        self._memo = {str(k): str(v) for k, v in data.items()}
                except (OSError, ValueError):
                    pass  # a damaged memo only costs one generation per backbone
        return self._memo

    def _write_memo(self) -> None:
        path = self._memo_path()
        if path is None or not path.parent.is_dir():
            return
        try:
            write_atomic(path, json.dumps(self._read_memo(), indent=1, sort_keys=True) + "\n")  # edgebench/files.py
        except EdgebenchError:
            pass  # the memo is an optimisation: a read-only directory just regenerates next time

    def digest(self, backbone: str) -> str:
        """sha256 (hex) of the source model's bytes."""
        if backbone in self._digests:
            return self._digests[backbone]
        if backbone in self.models:
            path = Path(self.models[backbone])
            try:
                value = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError:
                raise BadInput(f"ONNX model {path} does not exist: check the --model path") from None
            except OSError as exc:
                raise BadInput(f"cannot read ONNX model {path} ({exc.strerror}): check its permissions") from None
        else:
            fingerprint = _builtin_fingerprint(backbone)
            memo = self._read_memo()
            remembered = memo.get(fingerprint)
            if remembered is None:
                value = hashlib.sha256(self.get(backbone)[1]).hexdigest()
                memo[fingerprint] = value
                self._write_memo()
            else:
                value = remembered
        self._digests[backbone] = value
        return value


def validate_sweep(sweep: Sweep) -> list[EngineSpec]:
    """Every spec of the sweep, each checked against its backbone; BadInput on the first impossible one."""
    specs = sweep.specs()
    for spec in specs:
        spec.check_backbone(user_models=sweep.models)
    return specs


def build_sweep(
    sweep: Sweep,
    out_dir: Path,
    backend: str = DEFAULT_BACKEND,
    force: bool = False,
    on_result: Callable[[BuildResult], None] | None = None,
    wrap: Callable | None = None,
) -> BuildReport:
    """Build every point of `sweep` into `out_dir` with `backend`; return what happened to each.

    Raises BadInput before building anything when the sweep itself is wrong (unknown backbone, resolution too
    small, unreadable model file, backend missing). `on_result` is called after each point (the CLI reports
    failures with it); `wrap` wraps the spec list (the CLI's progress bar). Points whose cache key matches their
    manifest row are decided first, from file digests alone; models are generated or parsed only when some point
    needs building.
    """
    out_dir = Path(out_dir)
    engine_backend = require_backend(backend)
    specs = validate_sweep(sweep)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"--out {out_dir} is a file: give a directory for the engines")
    sources = _Sources(dict(sweep.models), out_dir if out_dir.is_dir() else None)
    manifest = Manifest.load(out_dir, missing_ok=True)
    versions = engine_backend.versions()
    keys = {spec.name: _key(spec, sources, engine_backend, versions) for spec in specs}
    if force or not all(_is_cached(spec, keys[spec.name], manifest, out_dir) for spec in specs):
        sources.check()  # a user file that no longer parses is refused before anything is built
    results: list[BuildResult] = []
    iterable = wrap(specs) if wrap is not None else specs
    for spec in iterable:
        result = _build_one(spec, keys[spec.name], sources, engine_backend, manifest, versions, out_dir, force)
        results.append(result)
        if on_result is not None:
            on_result(result)
    if sources.out_dir is None and out_dir.is_dir():
        sources.out_dir = out_dir
        sources._write_memo()
    return BuildReport(out_dir=out_dir, backend=backend, results=tuple(results))


def _key(spec: EngineSpec, sources: _Sources, engine_backend: Backend, versions: dict[str, str]) -> str:
    options = engine_backend.build_options(spec)
    return cache_key(sources.digest(spec.backbone).encode(), spec, engine_backend.name, options, versions)


def _is_cached(spec: EngineSpec, key: str, manifest: Manifest, out_dir: Path) -> bool:
    if spec.name not in manifest:
        return False
    existing = manifest.get(spec.name)
    return existing.cache_key == key and (out_dir / existing.artifact).is_file()


def _build_one(
    spec: EngineSpec, key: str, sources: _Sources, engine_backend: Backend, manifest: Manifest,
    versions: dict[str, str], out_dir: Path, force: bool,
) -> BuildResult:
    try:
        return _build_or_reuse(spec, key, sources, engine_backend, manifest, versions, out_dir, force)
    except EdgebenchError as exc:
        error = str(exc)
    except Exception as exc:  # a backend's own exception: report this point, keep the sweep going
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    # a row left from an earlier build describes an engine this sweep no longer produces: drop it so nobody
    # measures a stale artifact under the current name
    manifest.remove(spec.name)
    return BuildResult(spec.name, FAILED, error=error)


def _build_or_reuse(
    spec: EngineSpec, key: str, sources: _Sources, engine_backend: Backend, manifest: Manifest,
    versions: dict[str, str], out_dir: Path, force: bool,
) -> BuildResult:
    if not force and _is_cached(spec, key, manifest, out_dir):
        return BuildResult(spec.name, CACHED, manifest.get(spec.name))
    from edgebench.engines.counting import count_cost, fix_input_shape

    model, _ = sources.get(spec.backbone)
    options = engine_backend.build_options(spec)
    artifact_rel = f"{spec.name}{engine_backend.artifact_suffix}"
    started = time.perf_counter()
    fixed = fix_input_shape(model, spec.batch, spec.height, spec.width)
    cost = count_cost(model, spec.batch, spec.height, spec.width)
    engine_backend.build(fixed, spec, out_dir / artifact_rel, out_dir)
    build_time_s = time.perf_counter() - started
    import onnx

    from edgebench.engines.provenance import ProbeFit

    entry = ManifestEntry(
        name=spec.name,
        spec=spec,
        backend=engine_backend.name,
        artifact=artifact_rel,
        cache_key=key,
        params=cost.params,
        macs_per_inference=cost.macs_per_inference,
        macs_per_sample=cost.macs_per_sample,
        flops_per_inference=cost.flops_per_inference,
        flops_per_sample=cost.flops_per_sample,
        build_time_s=round(build_time_s, 3),
        versions={**versions, "onnx": onnx.__version__},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        options=options,
        probe=ProbeFit.from_metadata({prop.key: prop.value for prop in model.metadata_props}),
    )
    manifest.put(entry)
    return BuildResult(spec.name, BUILT, entry)


def summary_lines(report: BuildReport) -> list[str]:
    """The end-of-build table: engine, status, params, GFLOPs per inference, build seconds."""
    header = ("engine", "status", "params", "GFLOPs/inference", "build_s")
    rows = []
    for result in report.results:
        entry = result.entry
        if entry is None:
            rows.append((result.name, result.status, "-", "-", "-"))
        else:
            rows.append(
                (
                    result.name, result.status, f"{entry.params:,}", f"{entry.flops_per_inference / 1e9:.3f}",
                    f"{entry.build_time_s:.2f}",
                )
            )
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    lines = []
    for index, row in enumerate((header, *rows)):
        cells = [str(cell).ljust(widths[i]) if i < 2 else str(cell).rjust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    counts = {status: len(report.by_status(status)) for status in (BUILT, CACHED, FAILED)}
    lines.append(
        f"{counts[BUILT]} built, {counts[CACHED]} cached, {counts[FAILED]} failed -> {report.out_dir / 'manifest.json'}"
    )
    return lines


def report_json(report: BuildReport) -> dict:
    """Machine-readable form of the report (`--json`)."""
    return {
        "out_dir": str(report.out_dir),
        "backend": report.backend,
        "engines": [
            {
                "name": result.name,
                "status": result.status,
                "error": result.error or None,
                "entry": result.entry.to_dict() if result.entry else None,
            }
            for result in report.results
        ],
    }
