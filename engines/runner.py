"""The seam between engines and the timing harness: a Runner executes one inference of a built engine.

Backends (onnxruntime, tensorrt) implement `Runner`; the agent's harness times `run_once()` and nothing else, so
what a timed iteration contains is exactly what `timed_region` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from edgebench.records import Metadata

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class RunOptions:
    """Settings that shape timing; recorded in every RunRecord's `settings`."""

    intra_op_threads: int | None = None  # None: the backend's default (ORT: one per physical core)
    inter_op_threads: int | None = None
    include_copies: bool = False  # time host->device and device->host copies inside each iteration
    spin_wait: bool | None = None  # TensorRT/ORT spin-wait; raises CPU use and power, so it is recorded
    device_id: int = 0
    io_binding: bool = False  # ORT: feed inputs through an IOBinding bound once (run_with_iobinding) instead of run()


@runtime_checkable
class Runner(Protocol):
    """One loaded engine, inputs already prepared, ready to be timed."""

    engine: str  # engine name
    backend: str  # "onnxruntime", "tensorrt"
    batch: int
    timed_region: str  # in words: what one run_once() contains (e.g. "session.run with inputs bound, no copies")
    settings: Metadata  # the effective settings (threads, providers, precision) as the backend reports them

    def run_once(self) -> None:
        """Run one inference on the prepared inputs and wait until its results are ready."""

    def close(self) -> None:
        """Release the engine and its buffers."""


class ArrayRunner(Runner, Protocol):
    """A Runner that also takes whole input arrays, as `edgebench eval` feeds a dataset through it; every
    backend's runner is one (`open_runner` returns it)."""

    input_shapes: list[tuple[int, ...]]  # one shape per engine input: what infer() takes

    def infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs for the given inputs (one array per engine input, in order); not timed."""


# Optional: a runner that can be stopped from another thread also has `interrupt() -> None`, which makes a
# run_once() in progress raise (onnxruntime: RunOptions.terminate); the harness's time limits and Ctrl-C use it.
