"""`edgebench eval --data digits:test` as a whole command against a bare onnxruntime script doing the same loop.

Both are fresh processes, timed from start to exit (interpreter, imports, loading the digits, preprocessing, the
session, the loop, the result): the figure a user waits for. The bare script is what one would write by hand: numpy
reads scikit-learn's digits CSV, the same fixed split and the same preprocessing (area resize by an integer
factor is a repeat of each pixel; ImageNet mean/std), one `session.run` per batch, top-1 printed. Its top-1 must
equal eval's (checked), so both do the same work. Runs alternate eval / bare so drift and other load hit both
alike; reported: min / median / max wall seconds, CPU seconds and images/s of each, the ratio of the medians, and
min / median / max of each round's paired ratio.

    python scripts/bench_eval.py                       # mobilenet_v3_small probe, 32x32, batch 1, 7 rounds
    python scripts/bench_eval.py --rounds 9 --backbone squeezenet1_1 --resolution 64x64 --json

Target (issue 16): eval reaches at least 0.9x the bare script's images/s. Record the result in docs/studies.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# children may write and read bytecode caches, as an installed package does: with PYTHONDONTWRITEBYTECODE set (some
# containers set it), every run would compile edgebench's sources again, a cost no user pays twice
CHILD_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}

BARE = r'''
import gzip, importlib.util, sys
from pathlib import Path
import numpy as np
import onnxruntime as ort

model, side, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spec = importlib.util.find_spec("sklearn")
csv = Path(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")
with gzip.open(csv, "rt") as handle:
    table = np.loadtxt(handle, delimiter=",")
images = (table[:, :-1].reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
labels = table[:, -1].astype(np.int64)
rng = np.random.default_rng(0)  # the fixed stratified 70/30 split: per class, a seeded permutation
test = []
for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    members = members[rng.permutation(len(members))]
    test.extend(members[: int(round(len(members) * 0.3))].tolist())
test = np.array(sorted(test))
x, y = images[test], labels[test]
factor = side // 8
x = np.repeat(np.repeat(np.repeat(x, factor, axis=2), factor, axis=3), 3, axis=1)
mean = np.array([0.485, 0.456, 0.406], np.float32)[None, :, None, None]
std = np.array([0.229, 0.224, 0.225], np.float32)[None, :, None, None]
x = ((x - mean) / std).astype(np.float32)
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
correct = 0
for start in range(0, len(x), batch):
    chunk = x[start:start + batch]
    real = len(chunk)
    if real < batch:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
    scores = session.run(None, {name: chunk})[0]
    correct += int((scores[:real].argmax(axis=1) == y[start:start + real]).sum())
print(f"top1 {correct / len(y)!r} images {len(y)}")
'''


def prepare(engines_dir: Path, backbone: str, side: int, batch: int) -> str:
    """Fit the probe and build its engine once (cached afterwards); the engine's name."""
    engines_dir.mkdir(parents=True, exist_ok=True)
    probe = engines_dir / "bench_probe.onnx"
    edgebench = [sys.executable, "-m", "edgebench"]
    if not probe.is_file():
        subprocess.run([*edgebench, "train-probe", "--backbone", backbone, "--resolution", f"{side}x{side}",
                        "--out", str(probe)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*edgebench, "build-engines", "--model", str(probe), "--resolution", f"{side}x{side}",
                    "--batch", str(batch), "--precision", "fp32", "--out", str(engines_dir / "engines")],
                   check=True, stdout=subprocess.DEVNULL)
    return f"bench_probe_{batch}_{side}_{side}_fp32"


def timed(command: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=CHILD_ENV)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines-dir", type=Path, default=Path("/tmp/edgebench-bench-eval"))
    parser.add_argument("--backbone", default="mobilenet_v3_small")
    parser.add_argument("--resolution", type=int, default=32, help="square side, a multiple of 8")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7, help="eval/bare pairs")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="run the children with PYTHONDONTWRITEBYTECODE=1 (every import compiles from source)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.no_bytecode:
        CHILD_ENV["PYTHONDONTWRITEBYTECODE"] = "1"
    if args.resolution % 8:
        parser.error("--resolution must be a multiple of 8 (the bare script resizes by repeating pixels)")

    name = prepare(args.engines_dir, args.backbone, args.resolution, args.batch)
    engines = args.engines_dir / "engines"
    bare_file = args.engines_dir / "bare_eval.py"
    bare_file.write_text(BARE)
    eval_command = [sys.executable, "-m", "edgebench", "eval", "--engines", str(engines), "--data", "digits:test",
                    "--engine", name, "--json"]
    bare_command = [sys.executable, str(bare_file), str(engines / f"{name}.onnx"), str(args.resolution),
                    str(args.batch)]
    timed(eval_command)  # warm the page cache for both before anything is kept
    timed(bare_command)
    walls: dict[str, list[float]] = {"eval": [], "bare": []}
    cpus: dict[str, list[float]] = {"eval": [], "bare": []}
    top1: dict[str, float] = {}
    images = 0
    for _ in range(args.rounds):
        wall, cpu, out = timed(eval_command)
        row = json.loads(out.splitlines()[-1])
        walls["eval"].append(wall)
        cpus["eval"].append(cpu)
        top1["eval"], images = row["top1"], row["samples"]
        wall, cpu, out = timed(bare_command)
        walls["bare"].append(wall)
        cpus["bare"].append(cpu)
        top1["bare"] = float(out.split()[1])
    if top1["eval"] != top1["bare"]:
        raise SystemExit(f"eval and the bare script disagree (top-1 {top1['eval']} vs {top1['bare']}): not the same work")
    result = {
        "engine": name,
        "images": images,
        "top1": top1["eval"],
        "rounds": args.rounds,
        "bytecode": not args.no_bytecode,
        "load": os.getloadavg(),
        "wall_s": {side: spread(values) for side, values in walls.items()},
        "cpu_s": {side: spread(values) for side, values in cpus.items()},
        "images_per_s": {side: spread([images / w for w in values]) for side, values in walls.items()},
        "ratio_of_medians": statistics.median(walls["bare"]) / statistics.median(walls["eval"]),
        # each round's eval against the bare run right after it: drift and bursts of other load cancel better
        "paired_ratio": spread([b / e for e, b in zip(walls["eval"], walls["bare"], strict=True)]),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{name}: {images} images, top-1 {top1['eval'] * 100:.2f} % (eval = bare); {args.rounds} alternating rounds; "
          f"load {result['load'][0]:.2f}")
    for side in ("eval", "bare"):
        w, c, r = result["wall_s"][side], result["cpu_s"][side], result["images_per_s"][side]
        print(f"  {side:<4} wall {w['min']:.3f} / {w['median']:.3f} / {w['max']:.3f} s (min/median/max), "
              f"CPU median {c['median']:.3f} s, images/s {r['min']:.0f} / {r['median']:.0f} / {r['max']:.0f}")
    paired = result["paired_ratio"]
    print(f"  eval reaches {result['ratio_of_medians']:.2f}x the bare script's images/s (medians; target >= 0.9); "
          f"per round {paired['min']:.2f} / {paired['median']:.2f} / {paired['max']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
