"""The whole pipeline on this machine, no hardware needed: build the default engine sweep, start an EMULATED
Kill-a-Watt (Tweet-a-Watt XBee frames written into a pseudo-terminal, watts following this machine's real CPU
load), run `edgebench measure` on that pty through the real serial path with the local agent, and print the
ranked per-engine energy table. `--meter shelly` (or shelly-gen1, tasmota) emulates a smart plug instead: an
HTTP server on 127.0.0.1 serving the plug's real JSON, polled by the real plug logger; `--meter kasa` a TP-Link
HS110 on its legacy protocol (TCP), read through python-kasa (`pip install 'edgebench[kasa]'`).

    python scripts/demo.py [--out demo-out] [--engines engines-out] [--repeat 3] [--meter shelly]

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

BANNER = "EMULATED METER: {what}, watts = {idle:g} W + {span:g} W x this machine's CPU load"
METERS = {
    "tweetawatt": "Tweet-a-Watt frames on a pty",
    "shelly": "a Shelly Plus Plug S on 127.0.0.1 (Gen2 RPC over HTTP)",
    "shelly-gen1": "a Shelly Plug S on 127.0.0.1 (Gen1 /status over HTTP)",
    "tasmota": "a Tasmota plug on 127.0.0.1 (Status 10 over HTTP)",
    "kasa": "a TP-Link Kasa HS110 on 127.0.0.1 (the legacy protocol over TCP)",
}


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
    parser.add_argument("--interval", type=float, default=0.2,
                        help="seconds between emulated meter frames (a plug's refresh period)")
    parser.add_argument("--meter", choices=sorted(METERS), default="tweetawatt", help="the meter to emulate")
    args = parser.parse_args(argv)

    started = time.monotonic()
    eb = edgebench_argv()
    _run([*eb, "build-engines", "--out", str(args.engines)])
    _clear(args.out)

    banner = BANNER.format(what=METERS[args.meter], idle=args.idle_watts, span=args.max_watts - args.idle_watts)
    profile = CpuLoadProfile(args.idle_watts, args.max_watts)
    serial = args.meter == "tweetawatt"
    with start_emulator(args.meter, profile, interval_s=args.interval) as meter:
        print(f"{banner}, one reading every {args.interval:g} s at {meter.port}", file=sys.stderr, flush=True)
        print(f"== {banner} ==", flush=True)
        over = "the legacy protocol" if args.meter == "kasa" else "HTTP"
        where = "tweetawatt on a pty" if serial else f"{args.meter} over {over} on 127.0.0.1"
        _run([
            *eb, "measure", "--meter", meter.port, *(["--protocol", "tweetawatt"] if serial else []),
            "--engines", str(args.engines), "--repeat", str(args.repeat), "--out", str(args.out),
            "--meter-label", f"EMULATED {'Kill-a-Watt' if serial else 'smart plug'} ({where}, "
            f"{args.idle_watts:g}-{args.max_watts:g} W following CPU load)",
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
