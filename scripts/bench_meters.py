"""Benchmark the meter path: decoder throughput, store inserts, load_trace, and the logger's CPU and memory.

- frames parsed/s per protocol (bytes fed in 4 KiB reads, as a serial port delivers them);
- seconds to resynchronise through 1 MiB of random junk per protocol, fed in one read (the worst case);
- store inserts/s (SQLite WAL and CSV) and load_trace time for a 24 h log at 10 readings/s (864,000 rows);
- the logger as a user runs it: `edgebench meter log` in its own process, reading an emulator (another process)
  at 10 and 100 readings/s, per protocol, smart plugs included (their emulators refresh that fast; a real plug
  refreshes once a second): its CPU share of one core (utime + stime from /proc over the measured span, after
  a warm-up) and its resident memory (VmRSS at the end, VmHWM the peak). Each case runs --runs times, cases
  alternating, and min/median/max are reported (target: under 2 % of a core at 100 readings/s).

    python scripts/bench_meters.py [--rows 864000] [--cpu-seconds 10] [--runs 3] [--only logger] [--json]
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


# (protocol, the emulator's profile): the plugs follow this machine's CPU load, so their answers change at each
# refresh (a plug at a perfectly constant load repeats itself and is read once per 1.25 periods); Tasmota with
# WattRes 2, else its whole watts hide the changes. The UM is polled at most every 100 ms: 10/s only.
LOGGER_CASES = (
    ("lines", ["--watts", "42"]), ("tweetawatt", ["--watts", "42"]), ("wattsup", ["--watts", "42"]),
    ("um", ["--watts", "4.2"]), ("shelly", ["--cpu-load", "30:60"]),
    ("tasmota", ["--cpu-load", "30:60", "--watt-decimals", "2"]),
)


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/PID/stat, clock ticks)."""
    with open(f"/proc/{pid}/stat") as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as stream:
        for line in stream:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _wait_rows(path: Path, count: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    rows = 0
    while time.monotonic() < deadline:
        try:
            rows = len(load_trace(path).t_ns)
        except Exception:  # noqa: BLE001 - not created yet
            rows = 0
        if rows >= count:
            break
        time.sleep(0.2)
    return rows


def bench_logger(
    protocol: str, profile: list[str], rate_hz: float, seconds: float, warmup_s: float = 3.0
) -> dict[str, float]:
    """`edgebench meter log` reading `protocol` at `rate_hz`: CPU % of one core and memory of that process."""
    eb = [sys.executable, "-m", "edgebench"]
    emulator = subprocess.Popen(
        [*eb, "meter", "emulate", "--protocol", protocol, *profile, "--interval", str(1 / rate_hz)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        port = emulator.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cpu.sqlite"
            args = ["--protocol", protocol] if not port.startswith(("shelly://", "tasmota://")) else []
            logger = subprocess.Popen([*eb, "meter", "log", "--meter", port, *args, "--out", str(out)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            try:
                _wait_rows(out, 3, 30.0)
                time.sleep(warmup_s)  # imports done, the plug's period learned, the first commits made
                cpu0, wall0, t0 = _proc_cpu_s(logger.pid), time.perf_counter(), time.time_ns()
                time.sleep(seconds)
                cpu, wall, t1 = _proc_cpu_s(logger.pid) - cpu0, time.perf_counter() - wall0, time.time_ns()
                rss, peak = _proc_kib(logger.pid, "VmRSS"), _proc_kib(logger.pid, "VmHWM")
            finally:
                logger.send_signal(2)
                logger.wait(20)
            rows = len(load_trace(out, t0, t1).t_ns)  # the readings stamped inside the measured span
    finally:
        emulator.terminate()
        emulator.wait(10)
    return {
        "readings_per_s": rows / wall,
        "cpu_percent": 100 * cpu / wall,
        "rss_mib": rss / 1024,
        "peak_rss_mib": peak / 1024,
    }


def bench_loggers(seconds: float, runs: int) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Every (protocol, rate) case `runs` times, alternating; each figure as the list of its runs."""
    import statistics

    profiles = dict(LOGGER_CASES)
    cases = [(p, r) for p, _ in LOGGER_CASES for r in (10.0, 100.0) if not (p == "um" and r > 10)]
    got: dict[tuple[str, float], list[dict[str, float]]] = {c: [] for c in cases}
    for _ in range(runs):
        for protocol, rate in cases:
            got[(protocol, rate)].append(bench_logger(protocol, profiles[protocol], rate, seconds))
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for (protocol, rate), results in got.items():
        figures = {key: sorted(r[key] for r in results) for key in results[0]}
        out.setdefault(protocol, {})[f"{rate:g}/s"] = {
            key: [values[0], statistics.median(values), values[-1]] for key, values in figures.items()
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=864_000, help="store rows (default: 24 h at 10/s)")
    parser.add_argument("--frames", type=int, default=20_000, help="frames per decoder")
    parser.add_argument("--cpu-seconds", type=float, default=10.0, help="length of each logger measurement")
    parser.add_argument("--runs", type=int, default=3, help="runs of each logger case (min/median/max)")
    parser.add_argument("--only", choices=["decoders", "store", "logger"], help="run only this part")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: dict = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if args.only in (None, "decoders"):
        result["decoders_frames_per_s"] = bench_decoders(args.frames)
        result["junk_1mib_s"] = bench_junk()
    if args.only in (None, "store"):
        with tempfile.TemporaryDirectory() as tmp:
            result["store"] = bench_store(args.rows, Path(tmp))
    if args.only in (None, "logger"):
        result["logger"] = bench_loggers(args.cpu_seconds, args.runs)
    result["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['machine']}; {result['date']}; load {result['load'][0]:.2f} before, {result['load_after'][0]:.2f} after")
    for protocol, rate in result.get("decoders_frames_per_s", {}).items():
        print(f"decode {protocol:<11} {rate:12,.0f} frames/s")
    for protocol, seconds in result.get("junk_1mib_s", {}).items():
        print(f"junk   {protocol:<11} {seconds:12.3f} s to resync through 1 MiB of random bytes")
    if "store" in result:
        s = result["store"]
        print(f"store  sqlite {s['sqlite_inserts_per_s']:12,.0f} inserts/s, load {args.rows:,} rows "
              f"{s['sqlite_load_s']:.2f} s ({s['sqlite_mib']:.0f} MiB)")  # fmt: skip
        print(f"store  csv    {s['csv_inserts_per_s']:12,.0f} inserts/s, load {args.rows:,} rows "
              f"{s['csv_load_s']:.2f} s ({s['csv_mib']:.0f} MiB)")  # fmt: skip

    def span(values: list[float], fmt: str) -> str:
        return "/".join(format(v, fmt) for v in values)

    for protocol, rates in result.get("logger", {}).items():
        for rate, r in rates.items():
            print(
                f"logger {protocol:<11} {rate:>6}: {span(r['readings_per_s'], '.1f')} readings/s, "
                f"CPU {span(r['cpu_percent'], '.2f')} % of one core, RSS {span(r['rss_mib'], '.1f')} MiB, "
                f"peak {span(r['peak_rss_mib'], '.1f')} MiB (min/median/max of {args.runs})"
            )


if __name__ == "__main__":
    main()
