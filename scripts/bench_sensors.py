"""What does on-board sampling cost? The INA3221 Sampler on a fake sysfs tree at 1 ms and 10 ms periods.

For each period: samples per second actually taken (against the 1/period asked for), deadlines missed, and the
sampler thread's CPU time as a percentage of one core (time.thread_time over wall time). A fake tree lives in
the page cache, so a read costs only our Python and the VFS; on a Jetson every sysfs read also waits for an I2C
transfer (the INA3221 conversion itself runs in the chip), so treat these as the floor of the cost. Also reported:
tegrastats lines parsed per second (for `rails --from-log` on long logs), and with --hostile the time to read a
log holding one 10 MB adversarial line (`CPU [` repeated) against the pattern the parser used before issue 9,
timed on growing lines and extrapolated (it is quadratic: running it on 10 MB would take hours).

    python scripts/bench_sensors.py                 # 3 s per period
    python scripts/bench_sensors.py --seconds 5 --json
    python scripts/bench_sensors.py --hostile       # only the parser figures

Record the figures in docs/sensors.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def make_orin_tree(root: Path) -> None:
    """Orin Nano r36 layout: ina3221 hwmon on 1-0040 with VDD_IN, VDD_CPU_GPU_CV, VDD_SOC (6 files read)."""
    dev = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    dev.mkdir(parents=True)
    for k, label in enumerate(("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"), 1):
        (dev / f"in{k}_label").write_text(label + "\n")
        (dev / f"in{k}_input").write_text("5000\n")
        (dev / f"curr{k}_input").write_text(f"{300 * k}\n")


def run_period(root: Path, period_s: float, seconds: float) -> dict:
    from edgebench.agent.sensors.ina3221 import open_sensor
    from edgebench.agent.sensors.sampler import Sampler

    sensor = open_sensor(root)
    try:
        sampler = Sampler(sensor, period_s=period_s)
        sampler.start()
        time.sleep(seconds)
        samples = sampler.stop()
    finally:
        sensor.close()
    span_s = (samples[-1].t_ns - samples[0].t_ns) / 1e9
    return {
        "period_ms": period_s * 1000,
        "asked_per_s": 1 / period_s,
        "samples": len(samples),
        "samples_per_s": (len(samples) - 1) / span_s,
        "missed_deadlines": sampler.missed,
        "cpu_pct_of_one_core": sampler.cpu_fraction * 100,
        "cpu_us_per_sample": sampler.cpu_s / max(len(samples) - 2, 1) * 1e6,
    }


def parse_rate(seconds: float) -> float:
    from edgebench.agent.sensors.tegrastats import parse_line

    line = (
        "01-04-2025 16:02:59 RAM 1273/7620MB (lfb 1x4MB) SWAP 286/3810MB (cached 1MB) CPU [0%@1036,0%@1036,"
        "1%@1036,0%@1036,0%@729,0%@729] GR3D_FREQ 0% cpu@45.875C soc2@45.843C soc0@44.843C gpu@45.437C "
        "tj@46.312C soc1@46.312C VDD_IN 4968mW/4968mW VDD_CPU_GPU_CV 436mW/436mW VDD_SOC 1708mW/1708mW"
    )
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            parse_line(line)
        n += 100
    return n / (time.perf_counter() - t0)


RECORDED = Path(__file__).resolve().parent.parent / "tests" / "data" / "tegrastats"
OLD_CPU_PATTERN = r"\bCPU \[([^\]]*)\]"  # before issue 9: rescans to the line end from every `CPU [`


def log_rate(lines: int = 100_000) -> dict:
    """read_log on a log of `lines` lines cycling through the recorded Nano, Orin Nano and Xavier NX lines."""
    from edgebench.agent.sensors.tegrastats import read_log

    real = []
    for name in ("jetson-nano-r32.txt", "orin-nano-r36.txt", "xavier-nx-r35.txt"):
        real += [ln for ln in (RECORDED / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recorded.log"
        path.write_text("\n".join(real[i % len(real)] for i in range(lines)) + "\n")
        size = path.stat().st_size
        t0 = time.perf_counter()
        log = read_log(path, interval_ms=100)
        spent = time.perf_counter() - t0
    return {"lines": lines, "bytes": size, "seconds": spent,
            "lines_per_s": len(log.lines) / spent}  # fmt: skip


def hostile(mb: float = 10.0) -> dict:
    """Seconds to read a log with one `mb` MB line of repeated `CPU [` now, and the old pattern extrapolated."""
    import re

    from edgebench.agent.sensors.tegrastats import read_log

    unit = "CPU ["
    size = int(mb * 1_000_000)
    good = (RECORDED / "xavier-nx-r35.txt").read_text().splitlines()[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hostile.log"
        path.write_text(f"{good}\n{unit * (size // len(unit))}\n{good}\n")
        t0 = time.perf_counter()
        log = read_log(path, interval_ms=100)
        now_s = time.perf_counter() - t0
    old = re.compile(OLD_CPU_PATTERN)
    points = []
    for chars in (20_000, 40_000, 80_000):
        line = unit * (chars // len(unit))
        t0 = time.perf_counter()
        old.search(line)
        points.append((chars, time.perf_counter() - t0))
    chars, secs = points[-1]
    return {"line_mb": mb, "now_s": now_s, "bad_lines": log.bad_lines,
            "old_pattern_s": [{"chars": c, "s": t} for c, t in points],
            "old_extrapolated_s": secs * (size / chars) ** 2}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="sampling time per period (default 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--hostile", action="store_true", help="only the tegrastats parser figures (log rate, 10 MB line)")
    args = ap.parse_args()
    if args.hostile:
        result = {"recorded_log": log_rate(), "hostile_line": hostile()}
        if args.json:
            print(json.dumps(result, indent=2))
            return
        r, h = result["recorded_log"], result["hostile_line"]
        print(f"read_log on {r['lines']:,} recorded lines: {r['seconds']:.2f} s, {r['lines_per_s']:,.0f} lines/s")
        old = ", ".join(f"{p['chars']:,} chars {p['s']:.2f} s" for p in h["old_pattern_s"])
        print(f"{h['line_mb']:g} MB `CPU [` line: now {h['now_s']:.2f} s ({h['bad_lines']} bad line); "
              f"old pattern {old}, so about {h['old_extrapolated_s']:,.0f} s at {h['line_mb']:g} MB")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_orin_tree(root)
        rows = [run_period(root, p, args.seconds) for p in (0.001, 0.010)]
    lines_per_s = parse_rate(min(args.seconds, 2.0))
    if args.json:
        print(json.dumps({"sampler": rows, "tegrastats_lines_per_s": lines_per_s}, indent=2))
        return
    print(f"{'period':>8} {'asked/s':>8} {'got/s':>8} {'missed':>7} {'CPU % of a core':>16} {'CPU us/sample':>14}")
    for r in rows:
        print(
            f"{r['period_ms']:>6g}ms {r['asked_per_s']:>8.0f} {r['samples_per_s']:>8.1f} {r['missed_deadlines']:>7d} "
            f"{r['cpu_pct_of_one_core']:>16.2f} {r['cpu_us_per_sample']:>14.1f}"
        )
    print(f"tegrastats parser: {lines_per_s:,.0f} lines/s")


if __name__ == "__main__":
    main()
