"""`edgebench study input-size` and `edgebench study model-size`: lab 2's studies as commands.

A study fits the models it needs (linear probes), builds their engines (cached like any sweep), measures accuracy
on held-out labelled images, and times every engine, then writes one row per point (model x resolution x resize
method) with params, FLOPs, latency, energy per sample and accuracy, marks the Pareto fronts, and draws the
lab's plots.

The study runs where the engines run (on the device, or a machine that is both device and host): it drives the
engines package directly, and reaches a wall meter only through `edgebench measure` as a subprocess (its CLI is
the stable interface), run once over all the study's engines, reading the measured energy back from its
table.json.

Energy: every row carries the same figure, stated once in the study's output: gross (wall) joules per sample
(per input image), what the wall pays per image, with its uncertainty; the net figure (above the idle baseline)
is an extra column when a wall meter measured one. Without a meter the figure comes from the on-board sensor
(or the CPU-utilisation estimate), over the same windows as the latency.

Resuming: what a study has done is kept in `OUT/study-state.json` (each probe's fit, each accuracy, each timing,
keyed by what produced it); running the same study again reuses all of it and does only what is missing, and a
wall-meter study continues its measure directory with `edgebench measure --resume`.

Models: a built-in backbone gets a linear probe fitted on the training split (`edgebench train-probe`), since its
generated weights classify nothing; a user's `--model` file (trained weights, a real classifier) is used as it
is unless `--probe` asks for one too. Input-size study: one base model (the probe fitted at the largest
resolution with the first method) evaluated on test images resized each way to each resolution; the engines are
the same for both methods (preprocessing is outside the timed region), so latency and energy are per resolution.
Model-size study: one probe per backbone, each fitted at the study resolution with the first method.

Pareto fronts compare only rows evaluated on the same dataset with the same preprocessing (resize method,
normalisation; the resolution is the study's axis): an input-size study has one front per resize method.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import statistics
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebench.console import note, warn
from edgebench.errors import BadInput, DeviceError
from edgebench.files import write_atomic
from edgebench.pareto import comparable as comparable_setting
from edgebench.pareto import pareto_front

if TYPE_CHECKING:
    from edgebench.engines.datasets import Preprocess
    from edgebench.engines.manifest import ManifestEntry
    from edgebench.engines.probe import ProbeResult
    from edgebench.records import Accuracy

STUDY_FORMAT = "edgebench-study"
STUDY_VERSION = 2  # 2: energy per sample (gross, its uncertainty, net beside it), dataset and preprocessing per row
STATE_FILE = "study-state.json"
STATE_VERSION = 1
ENERGY_FIGURE = "gross (wall) J per sample (per input image)"
# options of `edgebench measure` the study sets itself: passing them through --measure-arg would contradict it
STUDY_MEASURE_OPTIONS = ("--engines", "--engine", "--out", "--resume", "--repeat", "--meter")


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
    latency_mean_ms: float  # one inference (one batch), mean over every measured iteration
    energy_j_per_sample: float  # gross J per input image (the study's one energy figure); NaN when not measured
    energy_j_per_sample_u: float  # its uncertainty; NaN when unknown (one window, or the source gives none)
    net_j_per_sample: float  # above the idle baseline (wall meter with a baseline only); NaN otherwise
    energy_status: str  # "" when measured, else why this row has no energy figure
    top1: float
    top5: float | None
    samples: int
    dataset: str  # what the accuracy was measured on, in words
    preprocessing: str  # how, in words (a bracketed label when it is not how the probe was fitted)
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
    repeat: int = 1  # timing windows per engine (with a meter: `edgebench measure --repeat`)
    sensor: str = "auto"
    meter: str | None = None
    meter_args: tuple[str, ...] = ()
    probe: bool | None = None  # None: probe built-ins, keep user files as they are
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str = "rgb"
    refit: bool = False  # input-size: fit one probe per resolution and method instead of one base model


def _preprocess(config: StudyConfig, method: str) -> Preprocess:
    from edgebench.engines.datasets import IMAGENET_MEAN, IMAGENET_STD, Preprocess

    return Preprocess(method, config.mean or IMAGENET_MEAN, config.std or IMAGENET_STD, config.channel_order)


def _split_names(data: str) -> tuple[str, str]:
    base = data.split(":")[0] if data.endswith((":train", ":test")) else data
    return f"{base}:train", f"{base}:test"


# --- state: what an earlier run of the same study already did --------------------------------------------------


class StudyState:
    """`OUT/study-state.json`: results by the key of what produced them, written after each one (atomically), so
    an interrupted study loses at most the step it was in and a rerun does only what is missing."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / STATE_FILE
        self.data: dict[str, dict[str, Any]] = {"probes": {}, "accuracy": {}, "timing": {}}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text())
                if loaded.get("version") == STATE_VERSION:
                    for section in self.data:
                        if isinstance(loaded.get(section), dict):
                            self.data[section] = loaded[section]
            except (OSError, ValueError, AttributeError, RecursionError):
                warn(f"{self.path} is unreadable: the study starts over (its results are recomputed)")

    def get(self, section: str, key: str) -> Any:
        return self.data[section].get(key)

    def put(self, section: str, key: str, value: Any) -> None:
        self.data[section][key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".study-state.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"version": STATE_VERSION, **self.data}, handle, indent=1, sort_keys=True, allow_nan=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


# --- checks before any work -------------------------------------------------------------------------------------


def check_inputs(backbones: Sequence[str], model_paths: Sequence[Path], resolutions: Sequence[tuple[int, int]]) -> None:
    """The one resolution check (edgebench.engines.spec.check_resolution) for every model and resolution of a
    study, before anything is fitted, built or timed: a built-in's minimum, the maximum, and a user's file by
    shape inference."""
    from edgebench.engines.backbones import load_user_model
    from edgebench.engines.spec import check_resolution

    for height, width in resolutions:
        for backbone in backbones:
            check_resolution(backbone, height, width)
    for path in model_paths:
        model, _ = load_user_model(Path(path))
        for height, width in resolutions:
            check_resolution(None, height, width, model=model)


def check_config(config: StudyConfig) -> None:
    """BadInput before any work: --measure-arg options the study sets itself, an --out that cannot be written."""
    for arg in config.meter_args:
        name = arg.split("=", 1)[0]
        if name in STUDY_MEASURE_OPTIONS:
            raise BadInput(
                f"--measure-arg={arg}: the study sets {name} itself (use the study's own option, e.g. --repeat)"
            )
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file: give a directory for the study")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".study-check-"):
            pass
    except OSError as exc:
        raise BadInput(f"cannot write in --out {out} ({exc.strerror or type(exc).__name__}): choose another directory") from None


# --- models, engines, accuracy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Model:
    name: str  # backbone name in the sweep (a file stem)
    path: Path | None  # ONNX file (None: the built-in itself)
    source: str


def probe_note(name: str, result: ProbeResult, method: str) -> str:
    """What is said once a study fitted a probe: its top-1 on the training images and on the held-out ones ("-"
    when it had none to score)."""
    test = "-" if result.test_top1 is None else f"{result.test_top1 * 100:.1f} %"
    return (
        f"probe {name}: train top-1 {result.train_top1 * 100:.1f} %, test top-1 {test} "
        f"at {result.height}x{result.width} ({method})"
    )


def _prepare_model(config: StudyConfig, state: StudyState, backbone: str | None, model_path: Path | None,
                   height: int, width: int, method: str, name: str) -> _Model:
    """The model a study's engines are built from: a probe (fitted here, or kept from an earlier run of the same
    fit) or the user's file or the built-in."""
    from edgebench.engines.eval_cli import load_source

    probe = config.probe if config.probe is not None else backbone is not None
    if not probe:
        if model_path is not None:
            return _Model(Path(model_path).stem, Path(model_path), str(model_path))
        assert backbone is not None  # one of the two: the CLI checks it, model_size_study gives one
        return _Model(backbone, None, backbone)
    from edgebench.engines.datasets import load_dataset
    from edgebench.engines.probe import train_probe

    train_name, test_name = _split_names(config.data)
    train = load_dataset(train_name)
    preprocess = _preprocess(config, method)
    if backbone is not None:
        origin = backbone
    else:
        assert model_path is not None  # one of the two, as above
        origin = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    fit = _key("probe", origin, train.digest, train.part, dataclasses.asdict(preprocess), height, width, 1.0)
    path = config.out / "models" / f"{name}.onnx"
    if path.is_file() and state.get("probes", name) == fit:
        note(f"probe {name}: kept from the earlier run of this study ({height}x{width}, {method})")
        return _Model(name, path, backbone or str(model_path))
    model, source = load_source(backbone, model_path)
    result = train_probe(model, source, train, load_dataset(test_name), height, width, preprocess, path)
    state.put("probes", name, fit)
    note(probe_note(name, result, method))
    return _Model(name, path, source)


def _build(config: StudyConfig, models: Sequence[_Model], resolutions: Sequence[tuple[int, int]]) -> list[ManifestEntry]:
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


def _accuracy(
    config: StudyConfig, state: StudyState, entries: Sequence[ManifestEntry], method: str, write: bool
) -> dict[str, Accuracy]:
    """Accuracy of each engine on the test split resized by `method` (kept from an earlier run when the engine,
    the images and the preprocessing are the same)."""
    from edgebench.engines.datasets import load_dataset
    from edgebench.engines.evaluate import evaluate_entry
    from edgebench.engines.manifest import Manifest
    from edgebench.records import Accuracy

    engines_dir = config.out / "engines"
    test = load_dataset(_split_names(config.data)[1])
    preprocess = _preprocess(config, method)
    manifest = Manifest.load(engines_dir)
    found: dict[str, Accuracy] = {}
    note(f"evaluating {len(entries)} engine(s) on {test.description} with {method} resize")
    for entry in entries:
        key = _key("accuracy", entry.cache_key, test.digest, test.part, dataclasses.asdict(preprocess))
        kept = state.get("accuracy", key)
        if kept is not None:
            accuracy = Accuracy(**kept)
        else:
            # the input-size study evaluates the base model with every resize method on purpose: the rows of the
            # methods it was not fitted with are labelled, not refused
            accuracy = evaluate_entry(engines_dir, entry, test, preprocess, allow_other_preprocessing=True)
            state.put("accuracy", key, dataclasses.asdict(accuracy))
        found[entry.name] = accuracy
        if write and manifest.get(entry.name).accuracy != accuracy:
            # the manifest holds the first method's accuracy, so measure's table shows it
            manifest.put(dataclasses.replace(manifest.get(entry.name), accuracy=accuracy))
    return found


# --- latency and energy -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cost:
    latency_ms: float
    energy_j_per_sample: float  # gross
    energy_u: float
    net_j_per_sample: float
    status: str = ""


@dataclass(frozen=True)
class Costs:
    """Every engine's cost, and where the energy figure came from (stated once for the whole study)."""

    by_engine: dict[str, _Cost]
    energy_source: str


def _mean_and_u(values: Sequence[float]) -> tuple[float, float]:
    """The mean of repeated windows' figures and its standard error (NaN from a single window)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan)


def repeat_warnings(records: Sequence) -> list[str]:
    """Warnings about repeated windows of one engine that disagree (each window's own are the harness's, as in
    `edgebench bench`): their mean latencies varying by more than bench's unstable threshold."""
    from edgebench.agent.stats import UNSTABLE_CV

    means = [sum(r.latencies_ns) / len(r.latencies_ns) / 1e6 for r in records if r.latencies_ns]
    if len(means) < 2:
        return []
    spread = statistics.stdev(means) / statistics.fmean(means)
    if spread <= UNSTABLE_CV:
        return []
    return [
        f"unstable timings across {len(means)} windows: their mean latencies vary by {spread * 100:.1f} % "
        f"(> {UNSTABLE_CV * 100:.0f} %); close other programs, lock clocks (sudo jetson_clocks on a Jetson, the "
        "'performance' CPU governor elsewhere), and use a longer --duration"
    ]


def _time_here(config: StudyConfig, state: StudyState, entries: Sequence[ManifestEntry]) -> Costs:
    """Latency and on-board (or estimated) gross energy per sample, timed in this process like `edgebench
    bench`, `config.repeat` windows per engine; its warnings about unstable timings are printed like bench's."""
    from edgebench.agent.harness import run_engine
    from edgebench.agent.options import DEFAULT_WARMUP_S, SENSOR_PERIOD_S
    from edgebench.agent.sensors.base import probe
    from edgebench.agent.sensors.sampler import Sampler
    from edgebench.engines.backends import open_runner

    found = probe(config.sensor, period_s=SENSOR_PERIOD_S) if config.sensor != "none" else None
    sensor = found.sensor if found is not None and found.found else None
    if config.sensor != "none" and sensor is None:
        warn("no on-board power source found: latency only (give --meter PORT for wall energy)")
    if sensor is None:
        source = "none: latency only (no on-board power source; give --meter PORT for wall energy)"
    else:
        what = "the estimate" if sensor.estimate else f"on-board sensor {sensor.name}"
        source = f"{what} (total = {sensor.total_rule}), over the timed windows"
    costs: dict[str, _Cost] = {}
    try:
        for k, entry in enumerate(entries, 1):
            key = _key("timing", entry.cache_key, config.duration_s, config.repeat, config.sensor,
                       sensor.name if sensor is not None else None)
            kept = state.get("timing", key)
            if kept is not None:
                fields: dict[str, Any] = {f: (math.nan if v is None else v) for f, v in kept.items()}
                costs[entry.name] = _Cost(**fields)
                continue
            note(f"[{k}/{len(entries)}] timing {entry.name}: {config.repeat} x {config.duration_s:g} s")
            records = []
            runner = open_runner(config.out / "engines", entry)
            try:
                for repeat in range(config.repeat):
                    sampler = Sampler(sensor, period_s=SENSOR_PERIOD_S) if sensor is not None else None
                    records.append(run_engine(runner, warmup_s=DEFAULT_WARMUP_S, duration_s=config.duration_s, sampler=sampler,
                                              metadata=False, model=entry.model_facts(), repeat=repeat))
                    for message in records[-1].warnings:
                        warn(f"{entry.name}: {message}")
            finally:
                runner.close()
            for message in repeat_warnings(records):
                warn(f"{entry.name}: {message}")
            latency = sum(sum(r.latencies_ns) for r in records) / sum(len(r.latencies_ns) for r in records) / 1e6
            per_sample = [r.rail_energy.energy_j / r.samples_processed for r in records
                          if r.rail_energy is not None and r.samples_processed]
            if per_sample and len(per_sample) == len(records):
                energy, energy_u = _mean_and_u(per_sample)
                cost = _Cost(latency, energy, energy_u, math.nan)
            else:
                why = "no on-board power source" if sensor is None else "the sensor gave no energy for a window"
                cost = _Cost(latency, math.nan, math.nan, math.nan, why)
            costs[entry.name] = cost
            state.put("timing", key, {f: _clean(v) for f, v in dataclasses.asdict(cost).items()})
    finally:
        if sensor is not None:
            sensor.close()
    return Costs(costs, source)


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else math.nan


def _measure(config: StudyConfig, entries: Sequence[ManifestEntry]) -> Costs:
    """Wall energy through one `edgebench measure` run over all the study's engines (a subprocess), read back from
    its table.json; a rerun continues the same directory (`--resume`)."""
    from edgebench.cli import edgebench_argv

    out = config.out / "measure"
    command = [
        *edgebench_argv(), "measure", "--meter", str(config.meter), "--engines", str(config.out / "engines"),
        "--out", str(out), "--repeat", str(config.repeat), *(f"--engine={entry.name}" for entry in entries),
        *config.meter_args,
    ]
    if out.is_dir() and any(out.iterdir()):
        command.append("--resume")  # measure keeps the engines it already measured and does the rest
    note("measuring wall energy: edgebench " + " ".join(command[len(edgebench_argv()):]))
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    table = out / "table.json"
    if done.returncode != 0 or not table.is_file():
        raise DeviceError(
            f"`edgebench measure` exited with {done.returncode}; its message is above. The study's models, engines "
            f"and accuracies are kept in {config.out}: fix what it says and run the study again, it resumes"
        )
    from edgebench.records import TABLE_FORMAT, TABLE_VERSION, read_versioned_json

    measured = read_versioned_json(
        table, format=TABLE_FORMAT, newest=TABLE_VERSION, what="a table of `edgebench measure`",
        advice="run the study again",
    )
    try:
        rows = {row["engine"]: row for row in measured["engines"]}
    except (KeyError, TypeError) as exc:
        raise DeviceError(f"{table} is not a measure table ({exc}): run the study again") from None
    costs = {}
    for entry in entries:
        row = rows.get(entry.name, {})
        gross = _finite(row.get("gross_j_per_sample"))
        gross_u = _finite(row.get("gross_j_per_sample_u"))
        if math.isnan(gross_u):  # tables before the per-sample uncertainty: the execution's, shared by its batch
            gross_u = _finite(row.get("gross_j_per_inference_u")) / entry.spec.batch
        status = "" if math.isfinite(gross) else f"not measured ({row.get('status', 'absent from the table')})"
        costs[entry.name] = _Cost(
            _finite(row.get("latency_mean_ms")), gross, gross_u, _finite(row.get("net_j_per_sample")), status
        )
    source = (f"wall meter {config.meter} through `edgebench measure` ({out}): gross, what the wall pays per "
              "image (J per execution / batch)")
    return Costs(costs, source)


def _costs(config: StudyConfig, state: StudyState, entries: Sequence[ManifestEntry]) -> Costs:
    return _measure(config, entries) if config.meter else _time_here(config, state, entries)


# --- rows and fronts --------------------------------------------------------------------------------------------



def comparable(point: StudyPoint) -> tuple[str, str]:
    """What rows must share to be compared on one Pareto front (`edgebench.pareto.comparable`): the dataset and
    the preprocessing, the resolution left out (the input-size study's axis)."""
    return comparable_setting(point.dataset, point.preprocessing)


def with_fronts(points: list[StudyPoint]) -> list[StudyPoint]:
    """Points with their Pareto-front flags (top-1 vs gross J per sample, top-1 vs latency), each front among the
    rows of the same dataset and preprocessing (`comparable`)."""
    flags: dict[int, tuple[bool, bool]] = {}
    groups: dict[tuple[str, str], list[int]] = {}
    for index, point in enumerate(points):
        groups.setdefault(comparable(point), []).append(index)
    for members in groups.values():
        top1 = [points[i].top1 for i in members]
        on_energy = pareto_front([points[i].energy_j_per_sample for i in members], top1)
        on_latency = pareto_front([points[i].latency_mean_ms for i in members], top1)
        for i, e, lat in zip(members, on_energy, on_latency, strict=True):
            flags[i] = (e, lat)
    return [dataclasses.replace(p, pareto_energy=flags[i][0], pareto_latency=flags[i][1]) for i, p in enumerate(points)]


def _points(study: str, entries_by_method: dict[str, list[ManifestEntry]], models: dict[str, _Model],
            accuracy_by_method: Mapping[str, Mapping[str, Accuracy]], costs: Costs) -> list[StudyPoint]:
    points = []
    for method, entries in entries_by_method.items():
        for entry in entries:
            accuracy = accuracy_by_method[method][entry.name]
            cost = costs.by_engine[entry.name]
            points.append(StudyPoint(
                study=study, engine=entry.name, model=entry.spec.backbone, source=models[entry.spec.backbone].source,
                method=method, height=entry.spec.height, width=entry.spec.width, batch=entry.spec.batch,
                precision=entry.spec.precision, params=entry.params,
                gflops_per_inference=entry.flops_per_inference / 1e9, latency_mean_ms=cost.latency_ms,
                energy_j_per_sample=cost.energy_j_per_sample, energy_j_per_sample_u=cost.energy_u,
                net_j_per_sample=cost.net_j_per_sample, energy_status=cost.status, top1=accuracy.top1,
                top5=accuracy.top5, samples=accuracy.samples, dataset=accuracy.dataset,
                preprocessing=accuracy.preprocessing,
            ))
    return with_fronts(points)


# --- the studies ------------------------------------------------------------------------------------------------


def input_size_study(config: StudyConfig, backbone: str | None, model_path: Path | None,
                     resolutions: Sequence[tuple[int, int]]) -> list[StudyPoint]:
    """Lab 2 part 8: one base model at three or more resolutions, test images resized by two or more methods."""
    if len(resolutions) < 3:
        raise BadInput("the input-size study takes three or more resolutions: e.g. --resolution 32x32,48x48,64x64")
    if len(config.methods) < 2:
        raise BadInput("the input-size study compares two or more resize methods: e.g. --method area,bilinear")
    check_inputs([backbone] if backbone else [], [model_path] if model_path else [], resolutions)
    check_config(config)
    resolutions = sorted(set(resolutions), key=lambda r: r[0] * r[1])
    state = StudyState(config.out)
    if config.refit:
        return _refit_study(config, state, backbone, model_path, resolutions)
    base_h, base_w = resolutions[-1]
    name = f"{backbone or Path(str(model_path)).stem}-probe" if (config.probe or (config.probe is None and backbone)) else ""
    model = _prepare_model(config, state, backbone, model_path, base_h, base_w, config.methods[0], name or "model")
    entries = _build(config, [model], resolutions)
    accuracy = {m: _accuracy(config, state, entries, m, write=(i == 0)) for i, m in enumerate(config.methods)}
    costs = _costs(config, state, entries)
    points = _points("input-size", {m: entries for m in config.methods}, {model.name: model}, accuracy, costs)
    write_study(config.out, "input-size", points, config, costs.energy_source)
    return points


def _refit_study(config: StudyConfig, state: StudyState, backbone: str | None, model_path: Path | None,
                 resolutions: Sequence[tuple[int, int]]) -> list[StudyPoint]:
    """Input-size study with a probe fitted at each resolution with each method (the model retrained per size):
    every probe fitted and every engine built and evaluated first, then all engines timed (or measured) in one go."""
    if not (config.probe or (config.probe is None and backbone)):
        raise BadInput("--refit fits a probe per resolution: use it with --backbone, or with --model and --probe")
    stem = backbone or Path(str(model_path)).stem
    models: dict[str, _Model] = {}
    entries_by_method: dict[str, list] = {}
    accuracy: dict[str, dict[str, Any]] = {}
    for method in config.methods:
        for height, width in resolutions:
            model = _prepare_model(config, state, backbone, model_path, height, width, method,
                                   f"{stem}-{method}-{height}x{width}")
            models[model.name] = model
            entries = _build(config, [model], [(height, width)])
            entries_by_method.setdefault(method, []).extend(entries)
            accuracy.setdefault(method, {}).update(_accuracy(config, state, entries, method, write=True))
    every = [entry for entries in entries_by_method.values() for entry in entries]
    costs = _costs(config, state, every)
    points = _points("input-size", entries_by_method, models, accuracy, costs)
    write_study(config.out, "input-size", points, config, costs.energy_source)
    return points


def model_size_study(config: StudyConfig, backbones: Sequence[str], model_paths: Sequence[Path],
                     resolution: tuple[int, int]) -> list[StudyPoint]:
    """Lab 2 parts 10-11: two or more models of one family (backbones or width multipliers) at one resolution."""
    if len(backbones) + len(model_paths) < 2:
        raise BadInput("the model-size study compares two or more models: e.g. --family mobilenet_v2, or "
                       "--backbone mobilenet_v2_x0.5,mobilenet_v2")
    check_inputs(backbones, model_paths, [resolution])
    check_config(config)
    state = StudyState(config.out)
    height, width = resolution
    models = []
    for backbone in backbones:
        models.append(_prepare_model(config, state, backbone, None, height, width, config.methods[0],
                                     f"{backbone}-probe"))
    for path in model_paths:
        models.append(_prepare_model(config, state, None, path, height, width, config.methods[0],
                                     f"{Path(path).stem}-probe"))
    entries = _build(config, models, [resolution])
    accuracy = {m: _accuracy(config, state, entries, m, write=(i == 0)) for i, m in enumerate(config.methods)}
    costs = _costs(config, state, entries)
    points = _points("model-size", {m: entries for m in config.methods}, {m.name: m for m in models}, accuracy, costs)
    write_study(config.out, "model-size", points, config, costs.energy_source)
    return points


# --- results ----------------------------------------------------------------------------------------------------

CSV_FIELDS = tuple(f.name for f in dataclasses.fields(StudyPoint))
_FLOAT_FIELDS = ("latency_mean_ms", "energy_j_per_sample", "energy_j_per_sample_u", "net_j_per_sample")


def _clean(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def study_document(study: str, points: Sequence[StudyPoint], config: StudyConfig, energy_source: str) -> dict[str, Any]:
    return {
        "format": STUDY_FORMAT,
        "version": STUDY_VERSION,
        "study": study,
        "data": config.data,
        "methods": list(config.methods),
        "batch": config.batch,
        "precision": config.precision,
        "repeat": config.repeat,
        "energy": {"figure": "energy_j_per_sample", "is": ENERGY_FIGURE, "source": energy_source,
                   "net": "net_j_per_sample: above the idle baseline, where a wall meter measured one"},
        "pareto": "top1 vs energy_j_per_sample and vs latency_mean_ms, among rows of the same dataset and "
                  "preprocessing (resolution aside)",
        "points": [{k: _clean(v) for k, v in dataclasses.asdict(p).items()} for p in points],
    }


def _has_net(points: Sequence[StudyPoint]) -> bool:
    return any(math.isfinite(p.net_j_per_sample) for p in points)


def _headers(points: Sequence[StudyPoint]) -> list[str]:
    net = ["net mJ/sample"] if _has_net(points) else []
    return ["model", "method", "HxW", "params M", "GFLOPs", "latency ms", "mJ/sample", *net, "top-1 %", "top-5 %",
            "front"]


def _cells(p: StudyPoint, net: bool) -> list[str]:
    from edgebench.units import num, plus_minus

    front = ("E" if p.pareto_energy else "") + ("L" if p.pareto_latency else "")
    energy = plus_minus(p.energy_j_per_sample * 1e3, p.energy_j_per_sample_u * 1e3)
    extra = [num(p.net_j_per_sample * 1e3, ".4g")] if net else []
    return [
        p.model, p.method, f"{p.height}x{p.width}", num(p.params / 1e6, ".3g"), num(p.gflops_per_inference, ".3g"),
        num(p.latency_mean_ms, ".4g"), energy, *extra, num(p.top1 * 100, ".2f"),
        num(p.top5 * 100 if p.top5 is not None else math.nan, ".2f"), front or "-",
    ]


def _footer(points: Sequence[StudyPoint], energy_source: str) -> list[str]:
    if not points:
        return ["(no points)"]
    first = points[0]
    lines = [
        f"energy: {ENERGY_FIGURE}, every row; from {energy_source}"
        + ("; net = above the idle baseline" if _has_net(points) else ""),
        f"batch {first.batch}, {first.precision}; latency per inference (one batch); accuracy over {first.samples} "
        f"held-out images ({first.dataset})",
    ]
    missing = sorted({f"{p.engine}: {p.energy_status}" for p in points if p.energy_status})
    if missing:
        lines.append(f"no energy figure for {len(missing)} engine(s): {'; '.join(missing[:3])}"
                     + ("; ..." if len(missing) > 3 else ""))
    from edgebench.engines.provenance import label_of

    for label in sorted({label_of(p.preprocessing) for p in points} - {""}):
        methods = sorted({p.method for p in points if label_of(p.preprocessing) == label})
        lines.append(f"accuracy of the {', '.join(methods)} rows: {label}")
    for label in sorted({label_of(p.dataset) for p in points} - {""}):
        lines.append(f"accuracy: {label}")
    groups = len({comparable(p) for p in points})
    per = f"{groups} fronts, one per dataset and preprocessing" if groups > 1 else "one front"
    lines.append(f"front: E = Pareto front of top-1 vs gross J/sample, L = of top-1 vs latency ({per})")
    return lines


def format_rows(points: Sequence[StudyPoint], energy_source: str = "") -> list[str]:
    """The study table as aligned terminal lines (units in the headers), the energy figure stated once below."""
    headers = _headers(points)
    net = _has_net(points)
    rows = [_cells(p, net) for p in points]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    left = {0, 1, len(headers) - 1}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows), "",
            *_footer(points, energy_source)]


def format_markdown(points: Sequence[StudyPoint], energy_source: str = "") -> list[str]:
    """The study table in GitHub Markdown, the footer as a list."""
    headers = _headers(points)
    net = _has_net(points)
    left = {0, 1, len(headers) - 1}
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join(":---" if i in left else "---:" for i in range(len(headers))) + " |"]
    lines.extend("| " + " | ".join(_cells(p, net)) + " |" for p in points)
    return [*lines, "", *(f"- {line}" for line in _footer(points, energy_source))]


def write_study(out: Path, study: str, points: Sequence[StudyPoint], config: StudyConfig,
                energy_source: str) -> list[Path]:
    """study.json, study.csv and study.md, then the plots under out/plots/ (MissingDependency without matplotlib,
    after the tables are written: `edgebench study plot OUT` draws them later)."""
    out.mkdir(parents=True, exist_ok=True)
    doc = study_document(study, points, config, energy_source)
    write_atomic(out / "study.json", json.dumps(doc, indent=2, allow_nan=False) + "\n")  # edgebench/files.py
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in doc["points"]:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    write_atomic(out / "study.csv", handle.getvalue())
    write_atomic(out / "study.md", "\n".join(format_markdown(points, energy_source)) + "\n")
    written = [out / "study.json", out / "study.csv", out / "study.md"]
    from edgebench.agent.study_plots import plot_study

    written.extend(plot_study(points, study, out / "plots"))
    return written


def _from_v1(row: dict[str, Any]) -> dict[str, Any]:
    """A version-1 row (J per inference, the source per row, net or gross mixed) in version 2's fields."""
    row = dict(row)
    per_inference = row.pop("energy_j_per_inference", None)
    source = str(row.pop("energy_source", ""))
    per_sample = per_inference / row["batch"] if isinstance(per_inference, (int, float)) else None
    net = source == "wall meter, net"
    row.update(
        energy_j_per_sample=None if net else per_sample, energy_j_per_sample_u=None,
        net_j_per_sample=per_sample if net else None,
        energy_status="version 1 study: net only" if net and per_sample is not None else "",
        dataset="", preprocessing="",
    )
    return row


def read_study(path: Path) -> tuple[str, list[StudyPoint]]:
    """(study kind, points) from a study directory's study.json (version 1 or 2); BadInput when it is not one."""
    from edgebench.records import read_versioned_json

    file = Path(path) / "study.json" if Path(path).is_dir() else Path(path)
    advice = "run `edgebench study input-size|model-size` first"
    doc = read_versioned_json(file, format=STUDY_FORMAT, newest=STUDY_VERSION, what="an edgebench study", advice=advice)
    try:
        version = doc.get("version")
        rows = [_from_v1(row) if version == 1 else row for row in doc["points"]]
        values: list[dict[str, Any]] = [
            {k: (math.nan if v is None and k in _FLOAT_FIELDS else v) for k, v in row.items()} for row in rows
        ]
        points = [StudyPoint(**v) for v in values]
        kind = doc["study"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInput(f"{file} is not an edgebench study ({exc}): {advice}") from exc
    return kind, points


def energy_source_of(path: Path) -> str:
    """The energy source a study's study.json states (for `study plot` and re-printing); "" when absent."""
    file = Path(path) / "study.json" if Path(path).is_dir() else Path(path)
    try:
        energy = json.loads(file.read_text()).get("energy")
    except (OSError, ValueError, AttributeError, RecursionError):
        return ""
    return str(energy.get("source", "")) if isinstance(energy, dict) else str(energy or "")
