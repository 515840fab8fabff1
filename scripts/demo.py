"""The whole pipeline on this machine, no hardware needed: build the default engine sweep, start an EMULATED
Kill-a-Watt (Tweet-a-Watt XBee frames written into a pseudo-terminal, watts following this machine's real CPU
load), run `edgebench measure` on that pty through the real serial path with the local agent, and print the
ranked per-engine energy table.

    python scripts/demo.py [--out demo-out] [--engines engines-out] [--repeat 3]

The numbers are only as real as the emulated meter: its watts are idle + (max - idle) x CPU load of this machine,
a stand-in for a wall meter; the engines, timings, windows, clock sync, integration and table are the real ones.
Every output names the meter EMULATED. On a real device, replace the emulator with the meter's port:
`edgebench measure --meter /dev/ttyUSB0`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edgebench.cli import edgebench_argv
from edgebench.host.measuredir import MeasureDir
from edgebench.host.meters.emulate import CpuLoadProfile, start_emulator

BANNER = "EMULATED METER: Tweet-a-Watt frames on a pty, watts = {idle:g} W + {span:g} W x this machine's CPU load"


def _run(argv: list[str]) -> None:
    print("$ edgebench " + " ".join(argv[len(edgebench_argv()):]), file=sys.stderr, flush=True)
    code = subprocess.call(argv)
    if code != 0:
        raise SystemExit(code)


def _clear(out: Path) -> None:
    """Remove the previous demo's results (only a measure directory: never an unrelated folder)."""
    if not out.exists():
        return
    if not MeasureDir(out).session_path.is_file() and any(out.iterdir()):
        raise SystemExit(f"demo: {out} exists and is not a measure directory: pass another --out")
    shutil.rmtree(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="measure directory (replaced)")
    parser.add_argument("--engines", type=Path, default=Path("engines-out"), help="engines directory")
    parser.add_argument("--repeat", type=int, default=3, help="windows per engine")
    parser.add_argument("--idle-watts", type=float, default=4.0, help="emulated watts at 0 %% CPU")
    parser.add_argument("--max-watts", type=float, default=16.0, help="emulated watts at 100 %% CPU")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between emulated meter frames")
    args = parser.parse_args(argv)

    started = time.monotonic()
    eb = edgebench_argv()
    _run([*eb, "build-engines", "--out", str(args.engines)])
    _clear(args.out)

    banner = BANNER.format(idle=args.idle_watts, span=args.max_watts - args.idle_watts)
    profile = CpuLoadProfile(args.idle_watts, args.max_watts)
    with start_emulator("tweetawatt", profile, interval_s=args.interval) as meter:
        print(f"{banner}, one frame every {args.interval:g} s on {meter.port}", file=sys.stderr, flush=True)
        print(f"== {banner} ==", flush=True)
        _run([
            *eb, "measure", "--meter", meter.port, "--protocol", "tweetawatt", "--engines", str(args.engines),
            "--repeat", str(args.repeat), "--out", str(args.out),
            "--meter-label", f"EMULATED Kill-a-Watt (tweetawatt on a pty, {args.idle_watts:g}-{args.max_watts:g} W "
            "following CPU load)",
        ])
    session = MeasureDir(args.out).session()
    print(f"== {banner} ==", flush=True)
    print(
        f"demo: {time.monotonic() - started:.0f} s; results in {args.out}/ (meter {session.meter!r}); "
        f"re-render with `edgebench report {args.out}`",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
