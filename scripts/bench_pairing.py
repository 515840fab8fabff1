"""Benchmark pairing at a lab's scale: `edgebench pair` of a month-long meter log against 1,000 windows, loading
the store and runs.jsonl included, in wall time and peak RSS; and how long `edgebench --help` takes.

The log and the runs are written by the project's own writers (`open_store`, `append_jsonl`, `MeasureDir`), so
the files are what `meter log` and `measure` leave: a UM25C USB meter read 10 times a second for 30 days
(25.9 M readings), one gap a day, and 1,000 windows of 60 s spread over the month (one in 50 idle), each with the
latencies of its iterations.

    python scripts/bench_pairing.py generate DIR [--days 30] [--hz 10] [--windows 1000] [--window-s 60]
    python scripts/bench_pairing.py pair DIR [DIR ...] [--edgebench CMD ...] [--repeat 5]
    python scripts/bench_pairing.py help-time [--edgebench CMD ...] [--repeat 10]
    python scripts/bench_pairing.py migrate DIR

`generate` uses whichever edgebench is importable, so the interpreter of an older checkout writes a log in that
checkout's format. `pair` and `help-time` take several `--edgebench` commands (e.g. an older checkout's console
script and this one's, each with its own DIR when several are given, e.g. a log the older checkout wrote) and run
them alternately, `--repeat` times each, then print min/median/max per command and whether their outputs agree.
Each run is a fresh process; wall time and peak RSS are the child's own (os.wait4). `migrate` times the one-off
indexing of a log written before the store kept a time index.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

EPOCH = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000
RUN_ID = "20260101T000000-bench0"
OFFSET_NS = 1_500_000  # host minus agent clock
ENGINES = (("resnet18_1_224_224_fp16", 20.0, 7.5), ("mobilenet_v2_4_224_224_fp16", 35.0, 8.5),
           ("squeezenet1_1_1_224_224_fp32", 8.0, 6.2), ("resnet50_2_224_224_fp16", 60.0, 9.1))  # fmt: skip


def windows_of(days: float, windows: int, window_s: float) -> list[tuple[str, int, int]]:
    """(engine or "idle", start, end) on the host clock: one window per slot of the month, 10 % into it."""
    span_ns = int(days * 86400 * S)
    slot = span_ns // windows
    out = []
    for i in range(windows):
        start = EPOCH + i * slot + slot // 10
        engine = "idle" if i % 50 == 0 else ENGINES[i % len(ENGINES)][0]
        out.append((engine, start, start + int(window_s * S)))
    return out


def generate(out: Path, days: float, hz: float, windows: int, window_s: float) -> None:
    """Write DIR/meter.sqlite, DIR/runs.jsonl, DIR/session.json and DIR/clock.json with the project's writers."""
    import numpy as np

    from edgebench.host.carbon import egrid_factor
    from edgebench.host.measuredir import MeasureDir, Session
    from edgebench.host.store import open_store
    from edgebench.records import ClockOffset, MeterReading, RunRecord, append_jsonl

    out.mkdir(parents=True, exist_ok=True)
    for name in ("meter.sqlite", "meter.sqlite-wal", "meter.sqlite-shm", "runs.jsonl"):
        (out / name).unlink(missing_ok=True)
    plan = windows_of(days, windows, window_s)
    levels = {name: watts for name, _, watts in ENGINES}
    rng = np.random.default_rng(0)
    period_ns = int(S / hz)
    n = int(days * 86400 * hz)
    per_day = int(86400 * hz)
    t0 = time.perf_counter()
    with open_store(out / "meter.sqlite") as store:
        store.set_meta(meter="UM25C", protocol="um", resolution_w=0.001, nominal_period_s=1 / hz)
        w = 0
        for first in range(0, n, per_day):
            k = np.arange(first, min(first + per_day, n), dtype=np.int64)
            # a serial logger stamps readings when their bytes arrive: a few ms of jitter
            t = EPOCH + k * period_ns + rng.integers(0, 5_000_000, len(k))
            p = 4.5 + 0.05 * rng.standard_normal(len(k))
            while w < len(plan) and plan[w][1] < int(t[-1]):
                engine, a, b = plan[w]
                if engine != "idle":
                    p[(t >= a) & (t <= b)] = levels[engine] + 0.05 * rng.standard_normal(int(((t >= a) & (t <= b)).sum()))
                w += 1
            for t_ns, power_w in zip(t.tolist(), np.round(p, 3).tolist(), strict=True):
                store.add(MeterReading(t_ns=t_ns, power_w=power_w, meter="UM25C"))
            # one 4 s silence a day, at 13:00 (a Bluetooth drop-out): the logger records it as a gap
            gap = EPOCH + (first // per_day) * 86400 * S + 13 * 3600 * S
            store.add_gap(gap, gap + 4 * S, "meter silent")
            print(f"\rwrote {min(first + per_day, n):,} of {n:,} readings", end="", file=sys.stderr, flush=True)
    print(f"\nmeter log: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    records = []
    lat_rng = np.random.default_rng(1)
    for i, (engine, a, b) in enumerate(plan):
        if engine == "idle":
            iterations, batch, lat = 0, 1, ()
        else:
            mean_ms = next(m for name, m, _ in ENGINES if name == engine)
            iterations = int(window_s * 1000 / mean_ms)
            batch = int(engine.split("_")[-4])
            lat = tuple((mean_ms * 1e6 * (1 + 0.02 * lat_rng.standard_normal(iterations))).astype(np.int64).tolist())
        records.append(
            RunRecord(
                engine=engine, backend="onnxruntime", clock="agent:realtime", window_start_ns=a - OFFSET_NS,
                window_end_ns=b - OFFSET_NS, iterations=iterations, batch=batch, latencies_ns=lat,
                kind="idle" if engine == "idle" else "run", run_id=RUN_ID, repeat=i,
                device={"board.model": "NVIDIA Jetson Orin Nano Developer Kit"},
            )
        )  # fmt: skip
    append_jsonl(out / "runs.jsonl", records)
    clock = {RUN_ID: ClockOffset(offset_ns=OFFSET_NS, uncertainty_ns=200_000, method="ntp-style, 8 round trips")}
    MeasureDir(out).write_session(Session(grid=egrid_factor(), meter="UM25C", clock=clock))
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"{out}: {n:,} readings, {len(plan):,} windows, {size / 1e9:.2f} GB", file=sys.stderr)


def _measure(argv: list[str]) -> tuple[float, float, int, bytes]:
    """Run argv once: (wall s, peak RSS MiB, exit code, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stdout = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode, stdout


def _summary(values: list[float]) -> str:
    return f"{min(values):.3g} / {statistics.median(values):.3g} / {max(values):.3g}"


def _alternate(commands: list[list[str]], repeat: int, what: str) -> None:
    """Run each command `repeat` times, alternating between them, and print min/median/max of wall and RSS."""
    results: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(commands))}
    outputs: dict[int, bytes] = {}
    for _ in range(repeat):
        for i, argv in enumerate(commands):
            wall, rss, code, stdout = _measure(argv)
            if code != 0:
                raise SystemExit(f"{' '.join(argv)} exited {code}")
            results[i].append((wall, rss))
            outputs[i] = stdout
    print(f"# {what}, {repeat} alternating runs each; load: {os.getloadavg()[0]:.2f} (1 min)")
    print("| command | wall s (min / median / max) | peak RSS MiB (min / median / max) |")
    print("|---|---|---|")
    for i, argv in enumerate(commands):
        walls = [w for w, _ in results[i]]
        rss = [r for _, r in results[i]]
        print(f"| `{argv[0]}` | {_summary(walls)} | {_summary(rss)} |")
    if len(commands) > 1:
        print(f"stdout identical across the commands: {'yes' if len(set(outputs.values())) == 1 else 'NO'}")


def _edgebench_default() -> list[str]:
    script = Path(sys.executable).with_name("edgebench")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edgebench"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    g = sub.add_parser("generate", help="write the month's meter log and runs with the project's writers")
    g.add_argument("dir", type=Path)
    g.add_argument("--days", type=float, default=30.0)
    g.add_argument("--hz", type=float, default=10.0)
    g.add_argument("--windows", type=int, default=1000)
    g.add_argument("--window-s", type=float, default=60.0)
    p = sub.add_parser("pair", help="time `edgebench pair DIR/runs.jsonl DIR/meter.sqlite` (subprocesses)")
    p.add_argument("dir", type=Path, nargs="+", help="one session directory, or one per --edgebench")
    p.add_argument("--edgebench", action="append", help="an edgebench command (repeatable); default: this one")
    p.add_argument("--repeat", type=int, default=5)
    h = sub.add_parser("help-time", help="time `edgebench --help`, `edgebench carbon --energy 1J` and importing "
                       "edgebench.records")
    h.add_argument("--edgebench", action="append", help="an edgebench command (repeatable); default: this one")
    h.add_argument("--repeat", type=int, default=10)
    m = sub.add_parser("migrate", help="time indexing a copy of DIR/meter.sqlite written by an older edgebench")
    m.add_argument("dir", type=Path)
    args = parser.parse_args()

    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}; load {os.getloadavg()}")  # fmt: skip
    if args.what == "generate":
        generate(args.dir, args.days, args.hz, args.windows, args.window_s)
    elif args.what == "pair":
        commands = [c.split() for c in args.edgebench] if args.edgebench else [_edgebench_default()]
        dirs = args.dir if len(args.dir) == len(commands) else [args.dir[0]] * len(commands)

        def tail(d: Path) -> list[str]:
            return ["pair", str(d / "runs.jsonl"), str(d / "meter.sqlite"), "--clock-offset", f"{OFFSET_NS}",
                    "--clock-uncertainty", "200us"]  # fmt: skip

        what = "edgebench pair of " + ", ".join(str(d) for d in dict.fromkeys(dirs))
        _alternate([c + tail(d) for c, d in zip(commands, dirs, strict=True)], args.repeat, what)
    elif args.what == "help-time":
        commands = [c.split() for c in args.edgebench] if args.edgebench else [_edgebench_default()]
        _alternate([c + ["--help"] for c in commands], args.repeat, "edgebench --help")
        _alternate([c + ["carbon", "--energy", "1J"] for c in commands], args.repeat, "edgebench carbon --energy 1J")
        # what every command pays before it runs: importing the records module (numpy, before issue 16)
        pythons = [[str(Path(c[0]).with_name("python")), "-c", "import edgebench.records"] for c in commands]
        _alternate(pythons, args.repeat, "python -c 'import edgebench.records'")
    elif args.what == "migrate":
        from edgebench.host.store import load_windows

        copy = args.dir / "meter-migrated.sqlite"
        shutil.copyfile(args.dir / "meter.sqlite", copy)
        t0 = time.perf_counter()
        load_windows(copy, [(EPOCH, EPOCH + S)])
        print(f"first read of a log without the time index (indexing it): {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        load_windows(copy, [(EPOCH, EPOCH + S)])
        print(f"second read: {time.perf_counter() - t0:.3f} s")
        copy.unlink()


if __name__ == "__main__":
    main()
