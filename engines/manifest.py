"""manifest.json: one per engines directory, one row per engine, rewritten atomically after every build.

Readers (the agent, `bench`, the collector) find engines only through it, so a directory copied to a device
carries everything needed to run and label its engines.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgebench.engines.provenance import ProbeFit
from edgebench.engines.spec import EngineSpec
from edgebench.errors import BadInput
from edgebench.files import write_atomic
from edgebench.records import Accuracy, ModelFacts

MANIFEST_NAME = "manifest.json"
SCHEMA = 1


@dataclass(frozen=True)
class ManifestEntry:
    """One built engine: what it is, where its artifact lies, what it costs."""

    name: str
    spec: EngineSpec
    backend: str
    artifact: str  # path relative to the engines directory
    cache_key: str  # sha256 of source model bytes + build options + backend version
    params: int
    macs_per_inference: int
    macs_per_sample: int
    flops_per_inference: int
    flops_per_sample: int
    build_time_s: float
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""  # ISO 8601 UTC
    options: dict[str, str | int | float | bool] = field(default_factory=dict)  # build options as recorded
    accuracy: Accuracy | None = None  # set by `edgebench eval`; None until the engine is evaluated
    probe: ProbeFit | None = None  # what the model's linear probe was fitted on (from its ONNX metadata)

    @property
    def batch(self) -> int:
        return self.spec.batch

    def model_facts(self) -> ModelFacts:
        """What a RunRecord carries about the model it timed (size, cost and accuracy beside energy)."""
        return ModelFacts(
            params=self.params,
            macs_per_inference=self.macs_per_inference,
            flops_per_inference=self.flops_per_inference,
            cache_key=self.cache_key,
            accuracy=self.accuracy,
        )

    def to_dict(self) -> dict:
        """JSON-ready form (the spec as its fields)."""
        data = asdict(self)
        data["spec"] = asdict(self.spec)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ManifestEntry:
        """Inverse of `to_dict`."""
        fields = dict(data)
        fields["spec"] = EngineSpec(**fields["spec"])
        if fields.get("accuracy") is not None:
            fields["accuracy"] = Accuracy(**fields["accuracy"])
        if fields.get("probe") is not None:
            fields["probe"] = ProbeFit.from_dict(fields["probe"])
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in fields.items() if key in known})


class Manifest:
    """The engines of one directory, in build order."""

    def __init__(self, directory: Path, entries: list[ManifestEntry] | None = None) -> None:
        self.directory = Path(directory)
        self._entries: dict[str, ManifestEntry] = {entry.name: entry for entry in entries or []}

    @property
    def path(self) -> Path:
        return self.directory / MANIFEST_NAME

    @property
    def entries(self) -> list[ManifestEntry]:
        return list(self._entries.values())

    @classmethod
    def load(cls, directory: Path, missing_ok: bool = False) -> Manifest:
        """Read `directory/manifest.json`; BadInput when absent (unless `missing_ok`) or unreadable."""
        directory = Path(directory)
        path = directory / MANIFEST_NAME
        if not path.is_file():
            if missing_ok:
                return cls(directory)
            raise BadInput(f"no {MANIFEST_NAME} in {directory}: build engines first with `edgebench build-engines --out {directory}`")
        try:
            data = json.loads(path.read_text())
            entries = [ManifestEntry.from_dict(row) for row in data["engines"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{path} is not an edgebench manifest ({exc}): rebuild with `edgebench build-engines --force`") from exc
        return cls(directory, entries)

    def get(self, name: str) -> ManifestEntry:
        """The entry named `name`; BadInput listing the nearest names when absent."""
        if name in self._entries:
            return self._entries[name]
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"{len(self._entries)} engines are listed"
        raise BadInput(f"no engine {name!r} in {self.path}: {hint} (see `edgebench build-engines --out {self.directory}`)")

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def put(self, entry: ManifestEntry) -> None:
        """Add or replace an entry and write the file at once (a crash later loses nothing)."""
        self._entries[entry.name] = entry
        self.save()

    def remove(self, name: str) -> None:
        """Drop an entry (its artifact is left on disk) and write the file at once; no-op when absent."""
        if self._entries.pop(name, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the manifest atomically: temp file in the same directory, fsync, rename."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {"schema": SCHEMA, "engines": [entry.to_dict() for entry in self._entries.values()]}
        write_atomic(self.path, json.dumps(payload, indent=2, sort_keys=False) + "\n")  # edgebench/files.py
