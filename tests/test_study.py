"""edgebench study: each study's table, plots (labelled axes with units) and Pareto flags, from real runs."""

import json
import math

import pytest
from click.testing import CliRunner

from edgebench.agent.study import comparable, read_study
from edgebench.cli import cli
from edgebench.engines.manifest import Manifest
from edgebench.host.meters.emulate import start_emulator
from edgebench.pareto import dominates

FAST = ["--duration", "0.2", "--sensor", "estimate"]


def _run(args):
    done = CliRunner().invoke(cli, ["study", *args], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def _check_fronts(points):
    """Brute force: a row is on a front when no comparable row (same dataset and preprocessing) dominates it."""
    for flag, cost in (("pareto_energy", "energy_j_per_sample"), ("pareto_latency", "latency_mean_ms")):
        for p in points:
            brute = math.isfinite(getattr(p, cost)) and not any(
                dominates(getattr(q, cost), q.top1, getattr(p, cost), p.top1) for q in points
                if q is not p and math.isfinite(getattr(q, cost)) and comparable(q) == comparable(p)
            )
            assert getattr(p, flag) == brute, (p.engine, p.method, flag)


def _check_plots(out, kind, points):
    from edgebench.agent.study_plots import lab_figure, pareto_figure

    names = sorted(path.name for path in (out / "plots").iterdir())
    assert names == ["gflops_vs_latency.png", "gflops_vs_top1.png", "latency_vs_top1.png", "pareto_energy.png",
                     "pareto_latency.png"]
    for name in names:
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = {}
    for x, y in (("gflops", "top1"), ("latency", "top1"), ("gflops", "latency")):
        ax = lab_figure(points, kind, x, y).axes[0]
        labels[(x, y)] = (ax.get_xlabel(), ax.get_ylabel())
        assert len(ax.get_lines()) == len({p.method for p in points})  # one series per method
    assert labels[("gflops", "top1")] == ("GFLOPs per inference", "top-1 accuracy (%)")
    assert labels[("latency", "top1")] == ("mean latency per inference (ms)", "top-1 accuracy (%)")
    assert labels[("gflops", "latency")] == ("GFLOPs per inference", "mean latency per inference (ms)")
    ax = pareto_figure(points, kind, "energy").axes[0]
    fronts = [t.get_text() for t in ax.get_legend().get_texts() if t.get_text().startswith("Pareto front")]
    assert ax.get_xlabel() == "energy per sample, gross (mJ)"
    assert len(fronts) == len({comparable(p) for p in points})  # one front per dataset and preprocessing


@pytest.mark.slow
def test_input_size_study_table_plots_and_front(tmp_path):
    out = tmp_path / "s"
    text = _run(["input-size", "--backbone", "mobilenet_v3_small", "--resolution", "32x32,40x40,48x48",
                 "--method", "area,bilinear", "--out", str(out), "--repeat", "2", *FAST])
    assert "top-1 %" in text and "mJ/sample" in text and "GFLOPs" in text
    # the energy figure is stated once, below the table, not per row
    assert text.count("energy: gross (wall) J per sample (per input image), every row; from the estimate") == 1
    kind, points = read_study(out)
    assert kind == "input-size" and len(points) == 6
    assert {(p.height, p.method) for p in points} == {(h, m) for h in (32, 40, 48) for m in ("area", "bilinear")}
    by = {(p.height, p.method): p for p in points}
    # the base model was fitted at the largest resolution with the first method: well above chance (10 %) there
    assert by[(48, "area")].top1 > 0.5 and by[(48, "area")].samples == 539
    for h in (32, 40, 48):  # one engine per resolution, timed once: the methods share its cost
        assert by[(h, "area")].latency_mean_ms == by[(h, "bilinear")].latency_mean_ms > 0
        assert by[(h, "area")].engine == by[(h, "bilinear")].engine
        assert by[(h, "area")].energy_j_per_sample == by[(h, "bilinear")].energy_j_per_sample
    assert by[(32, "area")].gflops_per_inference < by[(40, "area")].gflops_per_inference < by[(48, "area")].gflops_per_inference
    # two windows per engine: the energy per sample has an uncertainty (their spread)
    assert all(math.isfinite(p.energy_j_per_sample) and math.isfinite(p.energy_j_per_sample_u) for p in points)
    assert all(math.isnan(p.net_j_per_sample) and p.energy_status == "" for p in points)
    # the bilinear rows were scored with a resize the probe was not fitted with: labelled, on their own front
    assert all("[differs from the probe's fit: resize bilinear, fitted with area" in by[(h, "bilinear")].preprocessing
               for h in (32, 40, 48))
    assert "accuracy of the bilinear rows: differs from the probe's fit" in text
    assert len({comparable(p) for p in points}) == 2
    _check_fronts(points)
    _check_plots(out, kind, points)
    # the manifest carries the first method's accuracy, for measure's and report's tables
    manifest = Manifest.load(out / "engines")
    assert manifest.get(by[(48, "area")].engine).accuracy.top1 == by[(48, "area")].top1
    rows = (out / "study.csv").read_text().splitlines()
    assert rows[0].startswith("study,engine,model") and len(rows) == 7
    assert "| model | method | HxW |" in (out / "study.md").read_text()
    doc = json.loads((out / "study.json").read_text())
    assert doc["version"] == 2 and doc["repeat"] == 2 and doc["energy"]["figure"] == "energy_j_per_sample"


@pytest.mark.slow
def test_model_size_study_over_width_multipliers_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "m"
    args = ["model-size", "--backbone", "mobilenet_v2_x0.35,mobilenet_v2_x0.5", "--resolution", "32x32",
            "--out", str(out), *FAST]
    first = CliRunner().invoke(cli, ["study", *args])
    assert first.exit_code == 0, first.output
    assert "mobilenet_v2_x0.5-probe" in first.stdout and "probe mobilenet_v2_x0.35-probe: train top-1" in first.stderr
    kind, points = read_study(out)
    assert kind == "model-size" and [p.method for p in points] == ["area", "area"]
    small, large = points
    assert small.params < large.params and small.gflops_per_inference < large.gflops_per_inference
    assert all(p.top1 > 0.2 for p in points)  # a fitted probe on held-out digits: above chance (0.1)
    assert all(math.isnan(p.energy_j_per_sample_u) for p in points)  # one window: no spread to state
    _check_fronts(points)
    _check_plots(out, kind, points)
    # the same study again: nothing fitted, evaluated or timed again; every figure is the first run's
    models = {p.name: p.stat().st_mtime_ns for p in (out / "models").iterdir()}
    second = CliRunner().invoke(cli, ["study", *args])
    assert second.exit_code == 0, second.output
    assert "kept from the earlier run" in second.stderr and "train top-1" not in second.stderr
    assert "timing" not in second.stderr
    assert read_study(out)[1] == points
    assert {p.name: p.stat().st_mtime_ns for p in (out / "models").iterdir()} == models
    # a study interrupted after timing its first engine: the rerun times the missing one only
    state = json.loads((out / "study-state.json").read_text())
    state["timing"] = dict(list(state["timing"].items())[:1])
    (out / "study-state.json").write_text(json.dumps(state))
    third = CliRunner().invoke(cli, ["study", *args])
    assert third.exit_code == 0, third.output
    assert third.stderr.count("timing ") == 1 and "train top-1" not in third.stderr


class Flat:
    identity = "flat"

    def watts_at(self, t_s: float) -> float:
        return 5.0


@pytest.mark.slow
def test_a_refit_study_with_a_meter_measures_every_point_and_resumes(tmp_path):
    # the defect: --refit measured point by point, and the second `edgebench measure` into the same directory
    # failed ("already holds a measurement") with a message blaming the meter set-up
    out = tmp_path / "w"
    measure = ["--protocol", "lines", "--idle", "1", "--duration", "1", "--warmup", "0.2", "--sensor", "none",
               "--threads", "1"]
    args = ["input-size", "--backbone", "mobilenet_v3_small", "--resolution", "32x32,40x40,48x48", "--refit",
            "--out", str(out), *(f"--measure-arg={arg}" for arg in measure)]
    with start_emulator("lines", Flat(), interval_s=0.05) as meter:
        text = _run([*args, "--meter", meter.port])
    _, points = read_study(out)
    assert len(points) == 6 and len({p.engine for p in points}) == 6
    table = {row["engine"]: row for row in json.loads((out / "measure" / "table.json").read_text())["engines"]}
    for p in points:  # every point measured, each with the same figure: gross J per sample
        row = table[p.engine]
        assert row["status"] == "ok" and p.energy_status == ""
        assert p.energy_j_per_sample == pytest.approx(row["gross_j_per_sample"])
        assert p.latency_mean_ms == pytest.approx(row["latency_mean_ms"])
        if row.get("net_j_per_sample") is not None:
            assert p.net_j_per_sample == pytest.approx(row["net_j_per_sample"])
    assert text.count("energy: gross (wall) J per sample (per input image), every row; from wall meter") == 1
    # measure's own table shows the accuracy the study wrote into the manifest
    assert all(row["top1"] > 0 for row in table.values())
    # again: the study resumes (measure --resume keeps every engine it measured), the figures stay
    with start_emulator("lines", Flat(), interval_s=0.05) as meter:
        again = CliRunner().invoke(cli, ["study", *args, "--meter", meter.port])
    assert again.exit_code == 0, again.output
    assert "--resume" in again.stderr and "kept from the earlier run" in again.stderr
    assert [p.energy_j_per_sample for p in read_study(out)[1]] == [p.energy_j_per_sample for p in points]


def test_repeated_windows_that_disagree_warn_like_bench():
    from edgebench.agent.study import repeat_warnings
    from edgebench.records import RunRecord

    def window(latency_ms):
        return RunRecord(engine="e", backend="onnxruntime", clock="agent:realtime", window_start_ns=0,
                         window_end_ns=10**9, iterations=20, batch=1, latencies_ns=(int(latency_ms * 1e6),) * 20)

    assert repeat_warnings([window(1.0)]) == []
    assert repeat_warnings([window(1.0), window(1.02), window(0.99)]) == []  # within bench's 5 %
    (message,) = repeat_warnings([window(1.0), window(1.3)])
    assert message.startswith("unstable timings across 2 windows: their mean latencies vary by 18.4 %")


def test_a_version_1_study_is_still_read_and_plotted(tmp_path):
    row = {"study": "model-size", "engine": "a_1_32_32_fp32", "model": "a", "source": "a", "method": "area",
           "height": 32, "width": 32, "batch": 2, "precision": "fp32", "params": 10, "gflops_per_inference": 0.1,
           "latency_mean_ms": 1.0, "energy_j_per_inference": 0.004, "energy_source": "estimate (x)", "top1": 0.5,
           "top5": None, "samples": 10, "pareto_energy": True, "pareto_latency": True}
    doc = {"format": "edgebench-study", "version": 1, "study": "model-size", "points": [row, {**row, "engine": "b"}]}
    (tmp_path / "study.json").write_text(json.dumps(doc))
    kind, points = read_study(tmp_path)
    assert kind == "model-size" and points[0].energy_j_per_sample == pytest.approx(0.002)  # per execution / batch
    done = CliRunner().invoke(cli, ["study", "plot", str(tmp_path)])
    assert done.exit_code == 0 and "pareto_energy.png" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["input-size", "--backbone", "mobilenet_v3_small", "--resolution", "32x32,48x48"], "three or more"),
        (["input-size", "--backbone", "mobilenet_v3_small", "--resolution", "32x32,40x40,48x48", "--method", "area"],
         "two or more"),
        (["model-size", "--backbone", "mobilenet_v2_x0.5"], "two or more models"),
        (["model-size", "--family", "vgg"], "unknown family"),
        (["input-size", "--resolution", "32x32,40x40,48x48"], "exactly one"),
        (["input-size", "--backbone", "x", "--resolution", "32x32,40x40,48x48", "--duration", "nan"], "finite"),
        (["model-size", "--backbone", "mobilenet_v2_x0.35,mobilenet_v2_x0.5", "--meter", "x",
          "--measure-arg=--repeat=3"], "the study sets --repeat itself"),
    ],
)
def test_study_bad_input_exits_2(tmp_path, args, message):
    done = CliRunner().invoke(cli, ["study", *args, "--out", str(tmp_path / "o")])
    assert done.exit_code == 2 and message in done.output, done.output


def test_study_plot_refuses_a_directory_without_a_study(tmp_path):
    done = CliRunner().invoke(cli, ["study", "plot", str(tmp_path)])
    assert done.exit_code == 2 and "not an edgebench study" in done.output


@pytest.mark.parametrize(
    ("study", "message"),
    [
        (["input-size", "--backbone", "squeezenet1_1", "--resolution", "16x16,24x24,32x32"], "at least 17x17"),
        (["model-size", "--backbone", "squeezenet1_1,resnet18", "--resolution", "1x1"], "at least 17x17"),
        (["model-size", "--backbone", "squeezenet1_1,resnet18", "--resolution", "99999x99999"], "at most 4096"),
    ],
)
def test_study_checks_every_resolution_before_any_work(tmp_path, study, message):
    # a subprocess: squeezenet1_1 at 16x16 killed the study with SIGFPE (rc 136 in a shell) while fitting its probe
    import subprocess

    from edgebench.cli import edgebench_argv

    done = subprocess.run([*edgebench_argv(), "study", *study, "--out", str(tmp_path / "o"), *FAST],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr, (done.returncode, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o" / "models").exists()


@pytest.mark.slow  # fits a probe (about 2.5 s here)
def test_a_probe_without_held_out_images_is_said_with_a_dash(tmp_path):
    # train_probe gives no test top-1 when it has no held-out image: the study's note says "-", not a TypeError
    import numpy as np

    from edgebench.agent.study import probe_note
    from edgebench.engines.backbones import builtin_model
    from edgebench.engines.datasets import Preprocess, load_dataset
    from edgebench.engines.probe import train_probe

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "few.npz", x=rng.integers(0, 256, (12, 3, 8, 8), dtype=np.uint8), y=np.arange(12) % 2)
    result = train_probe(builtin_model("mobilenet_v3_small"), "mobilenet_v3_small", load_dataset(str(tmp_path / "few.npz")),
                         None, 32, 32, Preprocess(), tmp_path / "probe.onnx")  # fmt: skip
    assert result.test_top1 is None
    line = probe_note("probe32", result, "bilinear")
    assert line.startswith(f"probe probe32: train top-1 {result.train_top1 * 100:.1f} %, test top-1 - at 32x32")
