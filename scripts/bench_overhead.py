"""How much does the timing harness add per inference? run_engine vs a bare `session.run` loop, in one process.

Both sides use the very same InferenceSession, inputs and thread settings (the runner's own session), so the
only difference is the harness: two perf_counter_ns reads and a list store per iteration, and the duration check.
Rounds are interleaved A/B/A/B so that drift (thermal, other load) hits both sides alike; the figure is the
median over rounds of each side's wall time per inference, and the overhead's spread is the min ... max of the
per-round paired ratios.

    python scripts/bench_overhead.py                     # resnet18, batch 1, 224x224 fp32, 2 threads
    python scripts/bench_overhead.py --rounds 8 --seconds 3 --threads 2 --json

Target: the harness adds less than 2 %. Record the result in docs/bench.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def build_engine(engines_dir: Path, resolution: int):
    from edgebench.engines.build import build_sweep
    from edgebench.engines.manifest import Manifest
    from edgebench.engines.sweep import Sweep

    sweep = Sweep(backbones=("resnet18",), batches=(1,), resolutions=((resolution, resolution),), precisions=("fp32",))
    report = build_sweep(sweep, engines_dir)
    if not report.ok:
        raise SystemExit(f"building resnet18 failed: {report.failed}")
    return Manifest.load(engines_dir).get(f"resnet18_1_{resolution}_{resolution}_fp32")


def bare_loop(session, output_names, inputs, iterations: int) -> float:
    """Wall ns per inference of a plain `session.run` loop with nothing else in it."""
    run = session.run
    t0 = time.perf_counter_ns()
    for _ in range(iterations):
        run(output_names, inputs)
    return (time.perf_counter_ns() - t0) / iterations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines-dir", type=Path, default=Path("/tmp/edgebench-overhead-engines"))
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="A/B pairs")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per harness window")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from edgebench.agent.harness import run_engine
    from edgebench.engines.backends import open_runner
    from edgebench.engines.runner import RunOptions

    entry = build_engine(args.engines_dir, args.resolution)
    options = RunOptions(intra_op_threads=args.threads, inter_op_threads=1)
    runner = open_runner(args.engines_dir, entry, options)
    session, output_names, inputs = runner.session, runner.output_names, runner.inputs
    bare_loop(session, output_names, inputs, 10)  # warm both paths up before the first round

    harness_ns: list[float] = []  # wall time of the window / iterations
    harness_mean_ns: list[float] = []  # the harness's own mean latency (timed region only)
    bare_ns: list[float] = []
    for _ in range(args.rounds):
        record = run_engine(runner, warmup_iterations=2, duration_s=args.seconds, options=options)
        harness_ns.append(record.duration_ns / record.iterations)
        harness_mean_ns.append(sum(record.latencies_ns) / record.iterations)
        bare_loop(session, output_names, inputs, 2)
        bare_ns.append(bare_loop(session, output_names, inputs, record.iterations))
    runner.close()

    ratios = [a / b - 1.0 for a, b in zip(harness_ns, bare_ns, strict=True)]
    med_a, med_b = statistics.median(harness_ns), statistics.median(bare_ns)
    result = {
        "engine": entry.name,
        "threads": args.threads,
        "rounds": args.rounds,
        "seconds_per_window": args.seconds,
        "iterations_per_window": [int(round(args.seconds * 1e9 / a)) for a in harness_ns],
        "harness_ms_per_inference": [a / 1e6 for a in harness_ns],
        "harness_timed_mean_ms": [a / 1e6 for a in harness_mean_ns],
        "bare_ms_per_inference": [b / 1e6 for b in bare_ns],
        "median_harness_ms": med_a / 1e6,
        "median_bare_ms": med_b / 1e6,
        "overhead_pct": (med_a / med_b - 1.0) * 100,
        "paired_overhead_pct_median": statistics.median(ratios) * 100,
        "paired_overhead_pct_min": min(ratios) * 100,
        "paired_overhead_pct_max": max(ratios) * 100,
        "timed_vs_bare_pct": (statistics.median(harness_mean_ns) / med_b - 1.0) * 100,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{entry.name}, intra-op threads {args.threads}, {args.rounds} interleaved A/B rounds of {args.seconds} s")
    for i, (a, t, b) in enumerate(zip(harness_ns, harness_mean_ns, bare_ns, strict=True), 1):
        print(f"  round {i}: harness {a / 1e6:8.3f} ms/inf (timed mean {t / 1e6:8.3f})   bare {b / 1e6:8.3f} ms/inf"
              f"   {(a / b - 1) * 100:+6.2f} %")
    print(f"median per inference: harness {med_a / 1e6:.3f} ms, bare sess.run loop {med_b / 1e6:.3f} ms")
    print(
        f"harness overhead: {result['overhead_pct']:+.2f} % (paired per round: median "
        f"{result['paired_overhead_pct_median']:+.2f} %, range {result['paired_overhead_pct_min']:+.2f} … "
        f"{result['paired_overhead_pct_max']:+.2f} %)"
    )
    print(f"harness's timed mean vs bare loop: {result['timed_vs_bare_pct']:+.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
