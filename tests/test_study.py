"""edgebench study: each study's table, plots (labelled axes with units) and Pareto flags, from real runs."""

import json
import math

import pytest
from click.testing import CliRunner

from edgebench.agent.study import read_study
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
    for flag, cost in (("pareto_energy", "energy_j_per_inference"), ("pareto_latency", "latency_mean_ms")):
        for p in points:
            brute = math.isfinite(getattr(p, cost)) and not any(
                dominates(getattr(q, cost), q.top1, getattr(p, cost), p.top1) for q in points
                if q is not p and math.isfinite(getattr(q, cost))
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
    assert ax.get_xlabel() == "energy per inference (mJ)" and "Pareto front" in [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.slow
def test_input_size_study_table_plots_and_front(tmp_path):
    out = tmp_path / "s"
    text = _run(["input-size", "--backbone", "mobilenet_v3_small", "--resolution", "32x32,40x40,48x48",
                 "--method", "area,bilinear", "--out", str(out), *FAST])
    assert "top-1 %" in text and "mJ/inf" in text and "GFLOPs" in text
    kind, points = read_study(out)
    assert kind == "input-size" and len(points) == 6
    assert {(p.height, p.method) for p in points} == {(h, m) for h in (32, 40, 48) for m in ("area", "bilinear")}
    by = {(p.height, p.method): p for p in points}
    # the base model was fitted at the largest resolution with the first method: well above chance (10 %) there
    assert by[(48, "area")].top1 > 0.5 and by[(48, "area")].samples == 539
    for h in (32, 40, 48):  # one engine per resolution, timed once: the methods share its cost
        assert by[(h, "area")].latency_mean_ms == by[(h, "bilinear")].latency_mean_ms > 0
        assert by[(h, "area")].engine == by[(h, "bilinear")].engine
    assert by[(32, "area")].gflops_per_inference < by[(40, "area")].gflops_per_inference < by[(48, "area")].gflops_per_inference
    assert all(math.isfinite(p.energy_j_per_inference) and p.energy_source.startswith("estimate") for p in points)
    _check_fronts(points)
    _check_plots(out, kind, points)
    # the manifest carries the first method's accuracy, for measure's and report's tables
    manifest = Manifest.load(out / "engines")
    assert manifest.get(by[(48, "area")].engine).accuracy.top1 == by[(48, "area")].top1
    rows = (out / "study.csv").read_text().splitlines()
    assert rows[0].startswith("study,engine,model") and len(rows) == 7
    assert "| model | method | HxW |" in (out / "study.md").read_text()


@pytest.mark.slow
def test_model_size_study_over_width_multipliers(tmp_path):
    out = tmp_path / "m"
    text = _run(["model-size", "--backbone", "mobilenet_v2_x0.35,mobilenet_v2_x0.5", "--resolution", "32x32",
                 "--out", str(out), *FAST])
    assert "mobilenet_v2_x0.5-probe" in text
    kind, points = read_study(out)
    assert kind == "model-size" and [p.method for p in points] == ["area", "area"]
    small, large = points
    assert small.params < large.params and small.gflops_per_inference < large.gflops_per_inference
    assert all(p.top1 > 0.2 for p in points)  # a fitted probe on held-out digits: above chance (0.1)
    _check_fronts(points)
    _check_plots(out, kind, points)


class Flat:
    identity = "flat"

    def watts_at(self, t_s: float) -> float:
        return 5.0


@pytest.mark.slow
def test_input_size_study_with_a_meter_reads_measure_table(tmp_path):
    out = tmp_path / "w"
    with start_emulator("lines", Flat(), interval_s=0.05) as meter:
        measure = ["--protocol", "lines", "--idle", "1", "--duration", "1", "--repeat", "1", "--warmup", "0.2",
                   "--sensor", "none", "--threads", "1"]
        _run(["input-size", "--backbone", "mobilenet_v3_small", "--resolution", "32x32,40x40,48x48", "--out",
              str(out), "--meter", meter.port, *(f"--measure-arg={arg}" for arg in measure)])
    _, points = read_study(out)
    table = {row["engine"]: row for row in json.loads((out / "measure" / "table.json").read_text())["engines"]}
    for p in points:
        row = table[p.engine]
        assert p.energy_source.startswith("wall meter")
        expected = row["net_j_per_inference"] if row["net_j_per_inference"] is not None else row["gross_j_per_inference"]
        assert p.energy_j_per_inference == pytest.approx(expected)
        assert p.latency_mean_ms == pytest.approx(row["latency_mean_ms"])
    # measure's own table shows the accuracy the study wrote into the manifest
    evaluated = [row for row in table.values() if row.get("top1") is not None]
    assert evaluated and all(row["top1"] > 0 for row in evaluated)


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
