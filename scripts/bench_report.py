"""Benchmark `edgebench report DIR --html PAGE --plots DIR` at a course's sweep size: 72 engines x 3 windows.

A measure directory is written with the project's own writers (MeasureDir, the SQLite meter store, RunRecords):
an idle window, then 72 engines (6 backbones x 3 batches x 2 resolutions x 2 precisions) of 3 windows each, a
10 Hz meter log over the whole session (about 48k readings). Then `report` runs as a fresh process, N times,
alternating with the table alone (`report DIR`) for the ratio, and the script prints min/median/max of wall and
CPU time (user + system of the child) for each.

    python scripts/bench_report.py [--repeat 5] [--engines 72] [--keep DIR] [--compare OTHER_PYTHON]

`--compare` also times the same commands with another interpreter's edgebench (an older checkout installed in its
own venv), alternating with this one; runs.jsonl is then written in record format 2, which both read.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgebench.cli import edgebench_argv
from edgebench.host.carbon import egrid_factor
from edgebench.host.measuredir import MeasureDir, Session
from edgebench.host.store import open_store
from edgebench.records import ClockOffset, MeterReading, ModelFacts, RunRecord

EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000
BACKBONES = ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1", "efficientnet_b0", "shufflenet")


def write_directory(path: Path, engines: int, format2: bool = False) -> int:
    """A measure directory of `engines` engines x 3 windows; returns the number of meter readings."""
    rng = np.random.default_rng(1)
    d = MeasureDir(path)
    path.mkdir(parents=True, exist_ok=True)
    names = [
        f"{b}_{batch}_{h}_{h}_{prec}"
        for b in BACKBONES for batch in (1, 2, 4) for h in (96, 160) for prec in ("fp32", "fp16")
    ][:engines]  # fmt: skip
    records = []
    levels = []  # (start s, end s, watts)
    t = 2.0
    records.append(_record("idle", t, t + 10, 0, 0, "idle", rng))
    levels.append((t, t + 10, 3.0))
    t += 14
    for i, name in enumerate(names):
        watts = 4.0 + 6.0 * rng.random()
        batch = int(name.split("_")[-4])
        latency = 5 + 40 * rng.random()
        for repeat in range(3):
            iterations = int(20 / (latency / 1e3))
            records.append(_record(name, t, t + 20, iterations, batch, "run", rng, repeat=repeat, latency_ms=latency,
                                   flops=int(1e9 * (1 + i % 7))))
            levels.append((t - 1, t + 21, watts))
            t += 22
    seconds = t + 5
    t_s = np.arange(0.0, seconds, 0.1)
    p = np.full_like(t_s, 3.0)
    for a, b, w in levels:
        p[(t_s >= a) & (t_s < b)] = w
    p = np.round(p + rng.normal(0, 0.05, size=len(p)), 1).clip(min=0)
    with open_store(d.new_meter_path) as log:
        for ts, w in zip(t_s, p, strict=True):
            log.add(MeterReading(t_ns=EPOCH + int(ts * S), power_w=float(w), meter="wattsup PRO"))
    d.append(records)
    if format2:  # for an older edgebench: drop the format-3 field (None everywhere here) and say format 2
        lines = d.runs.read_text().splitlines()
        d.runs.write_text("".join(line.replace(',"cpu_busy":null', "").replace('"schema":3', '"schema":2') + "\n"
                                  for line in lines))
    d.write_session(Session(grid=egrid_factor("RFCW", 2019), meter="wattsup PRO", resolution_w=0.1, clock=ClockOffset(0)))
    return len(t_s)


def _record(engine, a, b, iterations, batch, kind, rng, repeat=0, latency_ms=0.0, flops=None):
    latencies = tuple(int(x) for x in rng.normal(latency_ms * 1e6, latency_ms * 2e4, size=iterations)) if iterations else ()
    return RunRecord(
        engine=engine, backend="onnxruntime", clock="agent:realtime", window_start_ns=EPOCH + int(a * S),
        window_end_ns=EPOCH + int(b * S), iterations=iterations, batch=batch, latencies_ns=latencies,
        warmup_latencies_ns=latencies[:3], kind=kind, repeat=repeat, run_id="bench",
        model=ModelFacts(params=1_000_000, flops_per_inference=flops) if flops else None,
        device={"cpu.model": "bench"} if kind == "run" else {},
    )  # fmt: skip


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # run outside any checkout: `python -m` puts the working directory first on sys.path
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--engines", type=int, default=72)
    parser.add_argument("--keep", type=Path, help="write the directory here and keep it")
    parser.add_argument("--compare", metavar="PYTHON", help="also time another interpreter's edgebench")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="edgebench-bench-report-"))
    directory = base / "m"
    readings = write_directory(directory, args.engines, format2=bool(args.compare))
    print(f"{args.engines} engines x 3 windows, {readings} meter readings; {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    commands = {}
    for who, argv in [("", edgebench_argv())] + ([("other: ", [args.compare, "-m", "edgebench"])] if args.compare else []):
        report = [*argv, "report", str(directory)]
        commands[f"{who}table only"] = report
        commands[f"{who}--html --plots"] = [*report, "--html", str(base / "report.html"), "--plots", str(base / "plots")]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeat):  # alternating, so a change in the machine's load hits each alike
        for name, argv in commands.items():
            results[name].append(timed(argv))
    for name, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{name:22s} wall min/median/max {min(walls):.2f}/{statistics.median(walls):.2f}/{max(walls):.2f} s; "
              f"CPU {min(cpus):.2f}/{statistics.median(cpus):.2f}/{max(cpus):.2f} s")
    page = base / "report.html"
    print(f"page {page.stat().st_size / 1e6:.2f} MB; load now {os.getloadavg()[0]:.2f}")
    if args.keep is None:
        import shutil

        shutil.rmtree(base)


if __name__ == "__main__":
    sys.exit(main())
