"""Benchmark the meter path: decoder throughput, store inserts, load_trace, and the logger's CPU share.

- frames parsed/s per protocol (bytes fed in 4 KiB reads, as a serial port delivers them);
- seconds to resynchronise through 1 MiB of random junk per protocol, fed in one read (the worst case);
- store inserts/s (SQLite WAL and CSV) and load_trace time for a 24 h log at 10 readings/s (864,000 rows);
- logger CPU % of one core at 100 readings/s, the emulator running in another process (target < 5 %).

    python scripts/bench_meters.py [--rows 864000] [--cpu-seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgebench.host.logger import MeterLogger
from edgebench.host.meters.base import make_meter
from edgebench.host.meters.emulate import TweetAWattEncoder, UMEncoder, WattsupEncoder
from edgebench.host.store import load_trace, open_store
from edgebench.records import MeterReading

EPOCH = 1_700_000_000_000_000_000


def stream_for(protocol: str, frames: int) -> bytes:
    """`frames` readings worth of the protocol's bytes, with varying watts."""
    watts = [5.0 + (k % 50) * 0.37 for k in range(frames)]
    if protocol == "lines":
        return b"".join(f"{w:.2f}\n".encode() for w in watts)
    if protocol == "tweetawatt":
        enc = TweetAWattEncoder()
        # synthesising samples is slow (a bisection per frame): build 50 distinct frames and repeat them
        distinct = [enc.frame(w, k * 0.013) for k, w in enumerate(watts[:50])]
        return b"".join(distinct[k % 50] for k in range(frames))
    if protocol == "wattsup":
        enc = WattsupEncoder()
        return b"".join(enc.frame(w, k) for k, w in enumerate(watts))
    if protocol == "um":
        enc = UMEncoder()
        return b"".join(enc.frame(w, k) for k, w in enumerate(watts))
    raise ValueError(protocol)


def bench_decoders(frames: int) -> dict[str, float]:
    out = {}
    for protocol in ("lines", "tweetawatt", "wattsup", "um"):
        data = stream_for(protocol, frames)
        meter = make_meter(protocol)
        start = time.perf_counter()
        n = 0
        for k in range(0, len(data), 4096):
            n += len(meter.feed(data[k : k + 4096], k))
        elapsed = time.perf_counter() - start
        assert n == frames and meter.bad_frames == 0, (protocol, n, meter.bad_frames)
        out[protocol] = n / elapsed
    return out


def bench_junk(size: int = 1 << 20) -> dict[str, float]:
    import random

    junk = random.Random(9).randbytes(size)
    out = {}
    for protocol in ("lines", "tweetawatt", "wattsup", "um"):
        meter = make_meter(protocol)
        start = time.perf_counter()
        meter.feed(junk, 0)
        out[protocol] = time.perf_counter() - start
    return out


def bench_store(rows: int, folder: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    readings = [
        MeterReading(t_ns=EPOCH + k * 100_000_000, power_w=5.0 + (k % 97) * 0.1, meter="wattsup PRO",
                     voltage_v=120.0, current_a=0.05, power_factor=0.95)
        for k in range(rows)
    ]  # fmt: skip
    for suffix in ("sqlite", "csv"):
        path = folder / f"bench.{suffix}"
        start = time.perf_counter()
        with open_store(path) as store:
            for r in readings:
                store.add(r)
        out[f"{suffix}_inserts_per_s"] = rows / (time.perf_counter() - start)
        start = time.perf_counter()
        trace = load_trace(path)
        out[f"{suffix}_load_s"] = time.perf_counter() - start
        assert len(trace.t_ns) == rows
        out[f"{suffix}_mib"] = path.stat().st_size / 2**20
    return out


def bench_logger_cpu(protocol: str, seconds: float, interval_s: float) -> dict[str, float]:
    emulator = subprocess.Popen(
        [sys.executable, "-m", "edgebench", "meter", "emulate", "--protocol", protocol, "--watts", "42",
         "--interval", str(interval_s)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        port = emulator.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            logger = MeterLogger(port, protocol, Path(tmp) / "cpu.sqlite")
            logger.open()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            stats = logger.run(seconds)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        emulator.terminate()
        emulator.wait(5)
    return {
        "readings_per_s": stats.readings / wall,
        "cpu_percent": 100 * cpu / wall,
        "bad_frames": stats.bad_frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=864_000, help="store rows (default: 24 h at 10/s)")
    parser.add_argument("--frames", type=int, default=20_000, help="frames per decoder")
    parser.add_argument("--cpu-seconds", type=float, default=10.0, help="logger CPU measurement length")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "decoders_frames_per_s": bench_decoders(args.frames),
        "junk_1mib_s": bench_junk(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["store"] = bench_store(args.rows, Path(tmp))
    result["logger_100hz"] = {
        p: bench_logger_cpu(p, args.cpu_seconds, 0.01) for p in ("lines", "tweetawatt", "wattsup")
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(result["machine"])
    for protocol, rate in result["decoders_frames_per_s"].items():
        print(f"decode {protocol:<11} {rate:12,.0f} frames/s")
    for protocol, seconds in result["junk_1mib_s"].items():
        print(f"junk   {protocol:<11} {seconds:12.3f} s to resync through 1 MiB of random bytes")
    s = result["store"]
    print(f"store  sqlite {s['sqlite_inserts_per_s']:12,.0f} inserts/s, load {args.rows:,} rows {s['sqlite_load_s']:.2f} s "
          f"({s['sqlite_mib']:.0f} MiB)")  # fmt: skip
    print(f"store  csv    {s['csv_inserts_per_s']:12,.0f} inserts/s, load {args.rows:,} rows {s['csv_load_s']:.2f} s "
          f"({s['csv_mib']:.0f} MiB)")  # fmt: skip
    for protocol, r in result["logger_100hz"].items():
        print(
            f"logger {protocol:<11} {r['readings_per_s']:6.1f} readings/s, CPU {r['cpu_percent']:4.1f} % of one core"
        )


if __name__ == "__main__":
    main()
