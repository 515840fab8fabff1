"""A fully cached `edgebench build-engines` rebuild of a 16-engine sweep: wall time, and what it imports.

The sweep (4 backbones x batch 1, 2 x fp32, fp16) is built once; then the same command runs again, every point
cached, in fresh processes, alternating with a bare `python -c pass` (the interpreter's own start, the floor no
command goes under). Reported: min / median / max wall seconds of each, the first build's time, and whether the
cached rebuild imported numpy, onnxruntime or onnx (from `python -X importtime`): it must import none of them.

    python scripts/bench_build_cache.py                    # 224x224, 7 rounds
    python scripts/bench_build_cache.py --resolution 32x32 --rounds 9 --json

Target (issue 16): a fully cached 16-engine rebuild under 0.6 s. Record the result in docs/studies.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# children may write and read bytecode caches, as an installed package does: with PYTHONDONTWRITEBYTECODE set (some
# containers set it), every run would compile edgebench's sources again, a cost no user pays twice
CHILD_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}

BACKBONES = "resnet18,mobilenet_v2,squeezenet1_1,mobilenet_v3_small"
HEAVY = ("numpy", "onnxruntime", "onnx")


def command(out: Path, resolution: str) -> list[str]:
    return [sys.executable, "-m", "edgebench", "build-engines", "--backbone", BACKBONES, "--batch", "1,2",
            "--precision", "fp32,fp16", "--resolution", resolution, "--out", str(out)]


def wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=CHILD_ENV)
    return time.perf_counter() - started


def heavy_imports(argv: list[str]) -> list[str]:
    """The top-level heavy modules a run imports, read from `-X importtime` (one line per module on stderr)."""
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, check=True,
                          env=CHILD_ENV)
    found = set()
    for line in done.stderr.splitlines():
        module = line.rsplit("|", 1)[-1].strip()
        if module in HEAVY:
            found.add(module)
    return sorted(found)


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgebench-bench-cache"))
    parser.add_argument("--resolution", default="224x224")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--fresh", action="store_true", help="delete --out first (the first build is then timed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    build = command(args.out, args.resolution)
    first = wall(build)  # a real build when --out is new, else already cached
    rebuild: list[float] = []
    floor: list[float] = []
    for _ in range(args.rounds):
        rebuild.append(wall(build))
        floor.append(wall([sys.executable, "-c", "pass"]))
    result = {
        "engines": 16,
        "resolution": args.resolution,
        "rounds": args.rounds,
        "load": os.getloadavg(),
        "first_run_s": first,
        "cached_rebuild_s": spread(rebuild),
        "python_start_s": spread(floor),
        "heavy_imports_of_a_cached_rebuild": heavy_imports(build),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    r, f = result["cached_rebuild_s"], result["python_start_s"]
    print(f"16 engines at {args.resolution}; first run {first:.2f} s; {args.rounds} rounds; load {result['load'][0]:.2f}")
    print(f"  cached rebuild  {r['min']:.3f} / {r['median']:.3f} / {r['max']:.3f} s (min/median/max; target < 0.6)")
    print(f"  python -c pass  {f['min']:.3f} / {f['median']:.3f} / {f['max']:.3f} s")
    imported = result["heavy_imports_of_a_cached_rebuild"]
    print(f"  imported by a cached rebuild: {', '.join(imported) if imported else 'none of numpy, onnxruntime, onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
