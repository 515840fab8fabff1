"""Benchmark `edgebench.host.pairing.pair`: a 24 h meter log at 10 readings/s against 1,000 windows.

Target: under 1 s and bounded memory (no per-window copy of the trace). Prints the best of N wall times and the
peak memory Python allocated during one pairing (tracemalloc), besides the trace itself.

    python scripts/bench_pairing.py [--repeat 5] [--windows 1000] [--hours 24] [--hz 10]
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc

import numpy as np

from edgebench.host.carbon import egrid_factor
from edgebench.host.pairing import pair
from edgebench.records import ClockOffset, MeterTrace, RunRecord

EPOCH = 1_700_000_000_000_000_000


def build(hours: float, hz: float, windows: int) -> tuple[MeterTrace, list[RunRecord]]:
    rng = np.random.default_rng(0)
    n = int(hours * 3600 * hz)
    period_ns = int(1e9 / hz)
    # readings arrive with a few ms of jitter, as a serial logger timestamps them
    t_ns = EPOCH + np.arange(n, dtype=np.int64) * period_ns + rng.integers(0, 5_000_000, n)
    t_ns.sort()
    power_w = np.round(5.0 + 2.0 * rng.random(n), 1)
    trace = MeterTrace(t_ns=t_ns, power_w=power_w, meter="synthetic 10 Hz", resolution_w=0.1)
    span_ns = (n - 1) * period_ns
    slot = span_ns // windows
    runs = []
    for i in range(windows):
        start = EPOCH + i * slot + slot // 10
        end = start + slot // 2
        kind = "idle" if i % 50 == 0 else "run"
        runs.append(
            RunRecord(
                engine="idle" if kind == "idle" else f"resnet18_{1 + i % 4}_224_224_fp16",
                backend="onnxruntime",
                clock="agent:realtime",
                window_start_ns=int(start),
                window_end_ns=int(end),
                iterations=0 if kind == "idle" else 1000,
                batch=1 + i % 4,
                latencies_ns=(),
                kind=kind,
                repeat=i,
            )
        )
    return trace, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--hz", type=float, default=10.0)
    args = parser.parse_args()

    trace, runs = build(args.hours, args.hz, args.windows)
    clock = ClockOffset(offset_ns=0, uncertainty_ns=1_000_000)
    grid = egrid_factor()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = pair(runs, trace, clock, grid=grid)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    pair(runs, trace, clock, grid=grid)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    trace_mb = (trace.t_ns.nbytes + trace.power_w.nbytes) / 1e6
    valid = sum(w.valid for w in result.windows)
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"trace: {len(trace.t_ns):,} readings ({trace_mb:.1f} MB); windows: {len(runs):,} ({valid:,} valid)")
    print(f"pair(): best {min(times):.3f} s, median {sorted(times)[len(times) // 2]:.3f} s over {args.repeat} runs")
    print(f"peak memory allocated during pair(): {peak / 1e6:.2f} MB (tracemalloc)")


if __name__ == "__main__":
    main()
