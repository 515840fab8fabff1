"""`edgebench study input-size` and `edgebench study model-size`: lab 2's studies as commands.

A study builds the engines it needs (cached like any sweep), measures accuracy on held-out labelled images, and
times every engine, then writes one row per point (model x resolution x resize method) with params, FLOPs,
latency, energy per inference and accuracy, marks the Pareto fronts, and draws the lab's plots.

The study runs where the engines run (on the device, or a machine that is both device and host): it drives the
engines package directly, and reaches a wall meter only through `edgebench measure` as a subprocess (its CLI is
the stable interface), reading the measured energy back from its table.json.

Models: a built-in backbone gets a linear probe fitted on the training split (`edgebench train-probe`), since its
generated weights classify nothing; a user's `--model` file (trained weights, a real classifier) is used as it
is unless `--probe` asks for one too. Input-size study: one base model (the probe fitted at the largest
resolution with the first method) evaluated on test images resized each way to each resolution; the engines are
the same for both methods (preprocessing is outside the timed region), so latency and energy are per resolution.
Model-size study: one probe per backbone, each fitted at the study resolution with the first method.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebench.console import note, warn
from edgebench.errors import BadInput, DeviceError
from edgebench.files import write_atomic
from edgebench.pareto import pareto_front

STUDY_FORMAT = "edgebench-study"
STUDY_VERSION = 1


@dataclass(frozen=True)
class StudyPoint:
    """One row of a study: an engine evaluated with one resize method."""

    study: str  # "input-size" or "model-size"
    engine: str
    model: str  # the model name the engine was built from
    source: str  # backbone or file the model came from
    method: str  # resize method of the test images
    height: int
    width: int
    batch: int
    precision: str
    params: int
    gflops_per_inference: float
    latency_mean_ms: float  # one inference (one batch)
    energy_j_per_inference: float  # NaN when nothing measured or estimated it
    energy_source: str  # "wall meter, net", "wall meter, gross", "on-board <sensor>", "estimate (...)", "none"
    top1: float
    top5: float | None
    samples: int
    pareto_energy: bool = False
    pareto_latency: bool = False


@dataclass(frozen=True)
class StudyConfig:
    """What a study runs (both studies share it)."""

    out: Path
    data: str = "digits"  # dataset name; its :train part fits probes, its :test part is evaluated
    methods: tuple[str, ...] = ("area", "bilinear")
    batch: int = 1
    precision: str = "fp32"
    duration_s: float = 1.0  # timing window per engine without a meter
    sensor: str = "auto"
    meter: str | None = None
    meter_args: tuple[str, ...] = ()
    probe: bool | None = None  # None: probe built-ins, keep user files as they are
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str = "rgb"
    refit: bool = False  # input-size: fit one probe per resolution and method instead of one base model


def _preprocess(config: StudyConfig, method: str):
    from edgebench.engines.datasets import IMAGENET_MEAN, IMAGENET_STD, Preprocess

    return Preprocess(method, config.mean or IMAGENET_MEAN, config.std or IMAGENET_STD, config.channel_order)


def _split_names(data: str) -> tuple[str, str]:
    base = data.split(":")[0] if data.endswith((":train", ":test")) else data
    return f"{base}:train", f"{base}:test"


@dataclass(frozen=True)
class _Model:
    name: str  # backbone name in the sweep (a file stem)
    path: Path | None  # ONNX file (None: the built-in itself)
    source: str


def _prepare_model(config: StudyConfig, backbone: str | None, model_path: Path | None, height: int, width: int,
                   method: str, name: str) -> _Model:
    """The model a study's engines are built from: a probe (fitted here) or the user's file or the built-in."""
    from edgebench.engines.eval_cli import load_source

    probe = config.probe if config.probe is not None else backbone is not None
    if not probe:
        if model_path is not None:
            return _Model(Path(model_path).stem, Path(model_path), str(model_path))
        return _Model(backbone, None, backbone)  # type: ignore[arg-type]
    from edgebench.engines.datasets import load_dataset
    from edgebench.engines.probe import train_probe

    model, source = load_source(backbone, model_path)
    train_name, test_name = _split_names(config.data)
    path = config.out / "models" / f"{name}.onnx"
    result = train_probe(model, source, load_dataset(train_name), load_dataset(test_name), height, width,
                         _preprocess(config, method), path)
    note(f"probe {name}: train top-1 {result.train_top1 * 100:.1f} %, test top-1 {result.test_top1 * 100:.1f} % "
         f"at {height}x{width} ({method})")
    return _Model(name, path, source)


def _build(config: StudyConfig, models: Sequence[_Model], resolutions: Sequence[tuple[int, int]]):
    from edgebench.engines.build import build_sweep
    from edgebench.engines.sweep import Sweep

    builtins = tuple(m.name for m in models if m.path is None)
    files = {m.name: m.path for m in models if m.path is not None}
    sweep = Sweep(backbones=builtins, batches=(config.batch,), resolutions=tuple(resolutions),
                  precisions=(config.precision,), models=files)
    note(f"building {len(sweep)} engine(s) into {config.out / 'engines'} (cached ones are kept)")
    report = build_sweep(sweep, config.out / "engines")
    if not report.ok:
        failed = report.failed[0]
        raise DeviceError(f"building {failed.name} failed: {failed.error}")
    return report.entries


def _accuracy(config: StudyConfig, entries, method: str, write: bool) -> dict[str, Any]:
    from edgebench.engines.datasets import load_dataset
    from edgebench.engines.evaluate import evaluate_entry
    from edgebench.engines.manifest import Manifest

    engines_dir = config.out / "engines"
    test = load_dataset(_split_names(config.data)[1])
    manifest = Manifest.load(engines_dir)
    found = {}
    note(f"evaluating {len(entries)} engine(s) on {test.description} with {method} resize")
    for entry in entries:
        accuracy = evaluate_entry(engines_dir, entry, test, _preprocess(config, method))
        found[entry.name] = accuracy
        if write:  # the manifest holds the first method's accuracy, so measure's table shows it
            manifest.put(dataclasses.replace(manifest.get(entry.name), accuracy=accuracy))
    return found


@dataclass(frozen=True)
class _Cost:
    latency_ms: float
    energy_j: float
    source: str


def _time_here(config: StudyConfig, entries) -> dict[str, _Cost]:
    """Latency and on-board (or estimated) energy per inference, timed in this process like `edgebench bench`."""
    from edgebench.agent.harness import run_engine
    from edgebench.agent.sensors.base import probe
    from edgebench.agent.sensors.sampler import Sampler
    from edgebench.engines.backends import open_runner

    found = probe(config.sensor, period_s=0.02) if config.sensor != "none" else None
    sensor = found.sensor if found is not None and found.found else None
    if config.sensor != "none" and sensor is None:
        warn("no on-board power source found: latency only (give --meter PORT for wall energy)")
    costs: dict[str, _Cost] = {}
    try:
        for k, entry in enumerate(entries, 1):
            note(f"[{k}/{len(entries)}] timing {entry.name} for {config.duration_s:g} s")
            runner = open_runner(config.out / "engines", entry)
            try:
                sampler = Sampler(sensor, period_s=0.02) if sensor is not None else None
                record = run_engine(runner, warmup_s=0.2, duration_s=config.duration_s, sampler=sampler,
                                    metadata=False, model=entry.model_facts())
            finally:
                runner.close()
            latency = sum(record.latencies_ns) / len(record.latencies_ns) / 1e6
            energy, source = math.nan, "none"
            if record.rail_energy is not None and record.iterations:
                energy = record.rail_energy.energy_j / record.iterations
                kind = "estimate" if record.rail_energy.estimate else "on-board"
                source = f"{kind} ({record.rail_energy.sensor}: {record.rail_energy.total_rule})"
            costs[entry.name] = _Cost(latency, energy, source)
    finally:
        if sensor is not None:
            sensor.close()
    return costs


def _measure(config: StudyConfig, entries) -> dict[str, _Cost]:
    """Wall energy through `edgebench measure` (a subprocess), read back from its table.json."""
    out = config.out / "measure"
    from edgebench.cli import edgebench_argv

    command = [
        *edgebench_argv(), "measure", "--meter", str(config.meter),
        "--engines", str(config.out / "engines"), "--out", str(out), *config.meter_args,
    ]
    note("measuring wall energy: edgebench " + " ".join(command[len(edgebench_argv()):]))
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    table = out / "table.json"
    if done.returncode != 0 or not table.is_file():
        raise DeviceError(f"`edgebench measure` exited with {done.returncode}: see its messages above; "
                          f"fix the meter set-up and run the study again (built engines are kept)")
    rows = {row["engine"]: row for row in json.loads(table.read_text())["engines"]}
    costs = {}
    for entry in entries:
        row = rows.get(entry.name, {})
        net, gross = row.get("net_j_per_inference"), row.get("gross_j_per_inference")
        energy, source = (net, "wall meter, net") if net is not None else (gross, "wall meter, gross")
        latency = row.get("latency_mean_ms")
        costs[entry.name] = _Cost(
            latency if latency is not None else math.nan, energy if energy is not None else math.nan,
            source if energy is not None else f"none ({row.get('status', 'not measured')})",
        )
    return costs


def _costs(config: StudyConfig, entries) -> dict[str, _Cost]:
    return _measure(config, entries) if config.meter else _time_here(config, entries)


def with_fronts(points: list[StudyPoint]) -> list[StudyPoint]:
    """Points with their Pareto-front flags (top-1 vs energy per inference, top-1 vs latency)."""
    top1 = [p.top1 for p in points]
    on_energy = pareto_front([p.energy_j_per_inference for p in points], top1)
    on_latency = pareto_front([p.latency_mean_ms for p in points], top1)
    return [
        dataclasses.replace(p, pareto_energy=e, pareto_latency=lat)
        for p, e, lat in zip(points, on_energy, on_latency, strict=True)
    ]


def _points(study: str, config: StudyConfig, entries, models: dict[str, _Model], accuracy_by_method,
            costs) -> list[StudyPoint]:
    points = []
    for method, accuracies in accuracy_by_method.items():
        for entry in entries:
            accuracy = accuracies[entry.name]
            cost = costs[entry.name]
            points.append(StudyPoint(
                study=study, engine=entry.name, model=entry.spec.backbone, source=models[entry.spec.backbone].source,
                method=method, height=entry.spec.height, width=entry.spec.width, batch=entry.spec.batch,
                precision=entry.spec.precision, params=entry.params,
                gflops_per_inference=entry.flops_per_inference / 1e9, latency_mean_ms=cost.latency_ms,
                energy_j_per_inference=cost.energy_j, energy_source=cost.source, top1=accuracy.top1,
                top5=accuracy.top5, samples=accuracy.samples,
            ))
    return with_fronts(points)


def input_size_study(config: StudyConfig, backbone: str | None, model_path: Path | None,
                     resolutions: Sequence[tuple[int, int]]) -> list[StudyPoint]:
    """Lab 2 part 8: one base model at three or more resolutions, test images resized by two or more methods."""
    if len(resolutions) < 3:
        raise BadInput("the input-size study takes three or more resolutions: e.g. --resolution 32x32,48x48,64x64")
    if len(config.methods) < 2:
        raise BadInput("the input-size study compares two or more resize methods: e.g. --method area,bilinear")
    resolutions = sorted(set(resolutions), key=lambda r: r[0] * r[1])
    if config.refit:
        return _refit_study(config, backbone, model_path, resolutions)
    base_h, base_w = resolutions[-1]
    name = f"{backbone or Path(str(model_path)).stem}-probe" if (config.probe or (config.probe is None and backbone)) else ""
    model = _prepare_model(config, backbone, model_path, base_h, base_w, config.methods[0], name or "model")
    entries = _build(config, [model], resolutions)
    accuracy = {m: _accuracy(config, entries, m, write=(i == 0)) for i, m in enumerate(config.methods)}
    points = _points("input-size", config, entries, {model.name: model}, accuracy, _costs(config, entries))
    write_study(config.out, "input-size", points, config)
    return points


def _refit_study(config: StudyConfig, backbone: str | None, model_path: Path | None,
                 resolutions: Sequence[tuple[int, int]]) -> list[StudyPoint]:
    """Input-size study with a probe fitted at each resolution with each method (the model retrained per size)."""
    if not (config.probe or (config.probe is None and backbone)):
        raise BadInput("--refit fits a probe per resolution: use it with --backbone, or with --model and --probe")
    stem = backbone or Path(str(model_path)).stem
    points: list[StudyPoint] = []
    for method in config.methods:
        for height, width in resolutions:
            model = _prepare_model(config, backbone, model_path, height, width, method, f"{stem}-{method}-{height}x{width}")
            entries = _build(config, [model], [(height, width)])
            accuracy = {method: _accuracy(config, entries, method, write=True)}
            points.extend(_points("input-size", config, entries, {model.name: model}, accuracy, _costs(config, entries)))
    points = with_fronts(points)
    write_study(config.out, "input-size", points, config)
    return points


def model_size_study(config: StudyConfig, backbones: Sequence[str], model_paths: Sequence[Path],
                     resolution: tuple[int, int]) -> list[StudyPoint]:
    """Lab 2 parts 10-11: two or more models of one family (backbones or width multipliers) at one resolution."""
    if len(backbones) + len(model_paths) < 2:
        raise BadInput("the model-size study compares two or more models: e.g. --family mobilenet_v2, or "
                       "--backbone mobilenet_v2_x0.5,mobilenet_v2")
    height, width = resolution
    models = []
    for backbone in backbones:
        models.append(_prepare_model(config, backbone, None, height, width, config.methods[0], f"{backbone}-probe"))
    for path in model_paths:
        models.append(_prepare_model(config, None, path, height, width, config.methods[0], f"{Path(path).stem}-probe"))
    entries = _build(config, models, [resolution])
    accuracy = {m: _accuracy(config, entries, m, write=(i == 0)) for i, m in enumerate(config.methods)}
    points = _points("model-size", config, entries, {m.name: m for m in models}, accuracy, _costs(config, entries))
    write_study(config.out, "model-size", points, config)
    return points


# --- results -------------------------------------------------------------------------------------------------

CSV_FIELDS = tuple(f.name for f in dataclasses.fields(StudyPoint))


def _clean(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def study_document(study: str, points: Sequence[StudyPoint], config: StudyConfig) -> dict[str, Any]:
    return {
        "format": STUDY_FORMAT,
        "version": STUDY_VERSION,
        "study": study,
        "data": config.data,
        "methods": list(config.methods),
        "batch": config.batch,
        "precision": config.precision,
        "energy": "wall meter through `edgebench measure`" if config.meter else f"timed here, sensor {config.sensor}",
        "pareto": "top1 vs energy_j_per_inference and vs latency_mean_ms, over every row",
        "points": [{k: _clean(v) for k, v in dataclasses.asdict(p).items()} for p in points],
    }


HEADERS = ("model", "method", "HxW", "params M", "GFLOPs", "latency ms", "mJ/inf", "top-1 %", "top-5 %", "front")


def _cells(p: StudyPoint) -> list[str]:
    front = ("E" if p.pareto_energy else "") + ("L" if p.pareto_latency else "")
    return [
        p.model, p.method, f"{p.height}x{p.width}", f"{p.params / 1e6:.3g}", f"{p.gflops_per_inference:.3g}",
        f"{p.latency_mean_ms:.4g}" if math.isfinite(p.latency_mean_ms) else "-",
        f"{p.energy_j_per_inference * 1e3:.4g}" if math.isfinite(p.energy_j_per_inference) else "-",
        f"{p.top1 * 100:.2f}", f"{p.top5 * 100:.2f}" if p.top5 is not None else "-", front or "-",
    ]


def _footer(points: Sequence[StudyPoint]) -> list[str]:
    if not points:
        return ["(no points)"]
    return [
        f"energy: {points[0].energy_source}; batch {points[0].batch}, {points[0].precision}; accuracy over "
        f"{points[0].samples} held-out images",
        "front: E = on the Pareto front of top-1 vs J/inference, L = of top-1 vs latency",
    ]


def format_rows(points: Sequence[StudyPoint]) -> list[str]:
    """The study table as aligned terminal lines (units in the headers)."""
    rows = [_cells(p) for p in points]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
    left = {0, 1, 9}

    def line(cells) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(HEADERS), line(["-" * w for w in widths]), *(line(r) for r in rows), "", *_footer(points)]


def format_markdown(points: Sequence[StudyPoint]) -> list[str]:
    """The study table in GitHub Markdown, the footer as a list."""
    lines = ["| " + " | ".join(HEADERS) + " |", "| " + " | ".join(":---" if i in (0, 1, 9) else "---:" for i in range(len(HEADERS))) + " |"]
    lines.extend("| " + " | ".join(_cells(p)) + " |" for p in points)
    return [*lines, "", *(f"- {line}" for line in _footer(points))]


def write_study(out: Path, study: str, points: Sequence[StudyPoint], config: StudyConfig) -> list[Path]:
    """study.json, study.csv and study.md, then the plots under out/plots/ (MissingDependency without matplotlib,
    after the tables are written: `edgebench study plot OUT` draws them later)."""
    out.mkdir(parents=True, exist_ok=True)
    doc = study_document(study, points, config)
    write_atomic(out / "study.json", json.dumps(doc, indent=2, allow_nan=False) + "\n")  # edgebench/files.py
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in doc["points"]:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    write_atomic(out / "study.csv", handle.getvalue())
    write_atomic(out / "study.md", "\n".join(format_markdown(points)) + "\n")
    written = [out / "study.json", out / "study.csv", out / "study.md"]
    from edgebench.agent.study_plots import plot_study

    written.extend(plot_study(points, study, out / "plots"))
    return written


def read_study(path: Path) -> tuple[str, list[StudyPoint]]:
    """(study kind, points) from a study directory's study.json; BadInput when it is not one."""
    file = Path(path) / "study.json" if Path(path).is_dir() else Path(path)
    try:
        doc = json.loads(file.read_text())
        if doc.get("format") != STUDY_FORMAT:
            raise ValueError(f"format {doc.get('format')!r}")
        points = [
            StudyPoint(**{k: (math.nan if v is None and k in ("latency_mean_ms", "energy_j_per_inference") else v)
                          for k, v in row.items()})
            for row in doc["points"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{file} is not an edgebench study ({exc}): run `edgebench study input-size|model-size` first") from exc
    return doc["study"], points
