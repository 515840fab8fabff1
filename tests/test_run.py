"""`edgebench run -- CMD` and `edgebench train-estimate`: a command of known duration measured through an emulated
meter on a pty (the real logger, store and pairing), checked against the emulator's own closed-form energy; the
training projection against seed 004's table."""

import csv
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from profile_truth import Ramp, reading_deviation_w

from edgebench.cli import cli, edgebench_argv
from edgebench.host.meters.emulate import RampProfile, start_emulator
from edgebench.records import read_run_records

INTERVAL_S = 0.05
SLEEP_S = 3.0


def timed_command(stamps, seconds):
    """A Python command that sleeps `seconds` and writes its own start and end times (host ns) to `stamps`."""
    return [sys.executable, "-c", f"import pathlib, time; t0 = time.time_ns(); time.sleep({seconds}); "
            f"pathlib.Path({str(stamps)!r}).write_text(f'{{t0}} {{time.time_ns()}}')"]  # fmt: skip


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.slow
def test_run_measures_a_command_against_the_emulated_profile(tmp_path):
    out = tmp_path / "run-out"
    emissions = tmp_path / "emissions.csv"
    with start_emulator("lines", RampProfile(20.0, 2.0), interval_s=INTERVAL_S) as meter:
        proc = subprocess.run(
            [*edgebench_argv(), "run", "--meter", meter.port, "--protocol", "lines", "--idle", "1.5",
             "--iterations", "100", "--grid", "RFCW", "--egrid", "2019", "--out", str(out),
             "--emissions-csv", str(emissions), "--", *timed_command(tmp_path / "stamps", SLEEP_S)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        truth = Ramp.of(meter)
    result = json.loads((out / "result.json").read_text())
    records = read_run_records(out / "runs.jsonl")
    idle = next(r for r in records if r.kind == "idle")
    window = next(r for r in records if r.kind == "run")
    # the window is the command's: it holds the command's own run, interpreter start-up aside
    began, ended = map(int, (tmp_path / "stamps").read_text().split())
    assert result["start_ns"] < began and ended < result["end_ns"] and result["duration_s"] >= SLEEP_S
    assert (window.window_start_ns, window.window_end_ns) == (result["start_ns"], result["end_ns"])
    gross = truth.energy_j(window.window_start_ns, window.window_end_ns)
    idle_w = truth.energy_j(idle.window_start_ns, idle.window_end_ns) / (idle.duration_ns / 1e9)
    net = gross - idle_w * window.duration_ns / 1e9
    # every stored reading is within deviation_w of the true power: the tolerances follow (tests/profile_truth.py)
    reading_j = reading_deviation_w(out / "meter.sqlite", truth, idle.window_start_ns, window.window_end_ns) * (
        window.duration_ns / 1e9
    )
    assert result["status"] == "ok"
    assert abs(result["gross_energy_j"] - gross) <= reading_j
    assert abs(result["net_energy_j"] - net) <= 2 * reading_j
    assert result["gross_j_per_iteration"] == pytest.approx(result["gross_energy_j"] / 100, rel=1e-12)
    assert 0 < result["gross_energy_u_j"] < 0.01 * gross
    assert result["co2_lb"] == pytest.approx(result["gross_energy_j"] / 3.6e9 * 1067.7, rel=1e-9)
    assert result["grid"]["edition"] == "eGRID2019"
    assert "gross" in proc.stdout and "RFCW 1067.7 lb CO2/MWh" in proc.stdout
    # the measured run feeds the training projection: 100 iterations in duration_s at the mean wall power
    res = invoke("train-estimate", "--from-run", str(out), "--total-iterations", "1000", "--pue", "1", "--json")
    projection = json.loads(res.output)
    assert projection["hours"] == pytest.approx(result["duration_s"] * 10 / 3600)
    assert projection["energy_j"] == pytest.approx(result["mean_power_w"] * result["duration_s"] * 10)
    rows = list(csv.DictReader(emissions.open()))
    assert len(rows) == 1
    assert float(rows[0]["energy_consumed"]) == pytest.approx(result["gross_energy_j"] / 3.6e6, rel=1e-9)
    assert float(rows[0]["duration"]) == pytest.approx(result["duration_s"])


@pytest.mark.slow
def test_run_passes_the_command_exit_status_on_and_still_measures(tmp_path):
    out = tmp_path / "o"
    with start_emulator("lines", RampProfile(10.0, 0.0), interval_s=INTERVAL_S) as meter:
        proc = subprocess.run(
            [*edgebench_argv(), "run", "--meter", meter.port, "--protocol", "lines", "--idle-power", "4",
             "--out", str(out), "--json", "--", sys.executable, "-c", "import sys, time; time.sleep(1.2); sys.exit(3)"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 3
    assert "exited with status 3" in proc.stderr
    data = json.loads(proc.stdout)
    assert data["exit_status"] == 3
    assert data["idle_source"] == "given"
    assert data["mean_power_w"] == pytest.approx(10.0)
    assert data["net_energy_j"] == pytest.approx(6.0 * data["duration_s"], rel=0.01)


def test_run_errors_are_one_line(tmp_path):
    res = invoke("run", "--meter", str(tmp_path / "no-such-port"), "--protocol", "lines", "--out", str(tmp_path / "o"),
                 "--", "true")  # fmt: skip
    assert res.exit_code == 2
    assert "no serial port" in res.output and "Traceback" not in res.output
    res = invoke("run", "--meter", "/dev/null", "--pue", "nan", "--", "true")
    assert res.exit_code == 2 and "--pue" in res.output
    res = invoke("run", "--meter", "/dev/null", "--idle", "inf", "--", "true")
    assert res.exit_code == 2 and "--idle" in res.output
    res = invoke("run", "--meter", "/dev/null")
    assert res.exit_code == 2 and "COMMAND" in res.output
    # said before the meter opens, not after the command ran
    res = invoke("run", "--meter", str(tmp_path / "no-such-port"), "--emissions-csv", str(tmp_path / "no" / "e.csv"),
                 "--", "true")  # fmt: skip
    assert res.exit_code == 2 and "--emissions-csv" in res.output and "no serial port" not in res.output


@pytest.mark.slow
def test_run_names_a_missing_program(tmp_path):
    with start_emulator("lines", RampProfile(10.0, 0.0), interval_s=INTERVAL_S) as meter:
        res = invoke("run", "--meter", meter.port, "--protocol", "lines", "--idle", "0", "--out", str(tmp_path / "o"),
                     "--", "no-such-program-xyz")  # fmt: skip
    assert res.exit_code == 2
    assert "no such command" in res.output and "no-such-program-xyz" in res.output


# --- train-estimate -------------------------------------------------------------------------------------------


def test_train_estimate_reproduces_seed_004_baseline_row():
    res = invoke("train-estimate", "--time", "196s", "--iterations", "1000", "--power", "147W",
                 "--total-iterations", "170000", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    # seed 004: 196 s per 1,000 iterations, 170,000 iterations, 147 W, PUE 1.58, 0.954 lb/kWh
    assert data["hours"] == pytest.approx(9.26, rel=0.005)
    assert data["energy_kwh"] == pytest.approx(2.15, rel=0.005)
    assert data["co2_lb"] == pytest.approx(2.05, rel=0.005)
    assert data["pue"] == 1.58
    assert data["grid"]["lb_co2_per_mwh"] == pytest.approx(954.0)
    assert "Strubell" in data["sources"]["pue"] and "Strubell" in data["sources"]["grid"]
    assert data["sources"]["time"] == "given"


@pytest.mark.parametrize(
    ("seconds", "watts", "hours", "kwh", "lbs"),
    [  # seed 004's table as the lab wrote it (hand-rounded hours; kWh and lbs follow from the rounded hours)
        (196, 147, 9.25, 2.149, 2.049),
        (188, 146, 8.87, 2.047, 1.950),
        (227, 140, 10.72, 2.37, 2.26),
        (143, 148, 6.75, 1.579, 1.506),
        (187, 145, 8.83, 2.023, 1.930),
    ],
)
def test_train_estimate_matches_every_seed_row_within_half_a_percent(seconds, watts, hours, kwh, lbs):
    res = invoke("train-estimate", "--time", str(seconds), "--iterations", "1000", "--power", f"{watts}W",
                 "--total-iterations", "170000", "--json")  # fmt: skip
    data = json.loads(res.output)
    assert data["hours"] == pytest.approx(hours, rel=0.005)
    assert data["energy_kwh"] == pytest.approx(kwh, rel=0.005)
    assert data["co2_lb"] == pytest.approx(lbs, rel=0.005)


def test_train_estimate_prints_each_factor_with_its_source():
    res = invoke("train-estimate", "--time", "3.2667min", "--iterations", "1000", "--power", "0.147kW",
                 "--total-iterations", "170000", "--grid", "RFCW", "--egrid", "2019", "--pue", "1")  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(line.startswith("PUE") and "[given]" in line for line in lines)
    assert any(line.startswith("grid") and "EPA eGRID" in line and "1067.7" in line for line in lines)
    assert any(line.startswith("total") and "9.256 h" in line for line in lines)
    # 1 x 9.2556 h x 0.147 kW = 1.3606 kWh; x 1.0677 lb/kWh
    assert "1.361 kWh" in res.output and "1.453 lbs" in res.output


def test_train_estimate_from_a_run_directory(tmp_path):
    out = tmp_path / "run-out"
    out.mkdir()
    (out / "result.json").write_text(json.dumps(
        {"duration_s": 196.0, "iterations": 1000, "mean_power_w": 147.0, "status": "ok"}
    ))  # fmt: skip
    res = invoke("train-estimate", "--from-run", str(out), "--total-iterations", "170000", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["co2_lb"] == pytest.approx(2.05, rel=0.005)
    assert "edgebench run" in data["sources"]["power"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--total-iterations", "170000"], "--time"),
        (["--time", "abc", "--iterations", "1", "--power", "1W", "--total-iterations", "2"], "duration"),
        (["--time", "-5", "--iterations", "1", "--power", "1W", "--total-iterations", "2"], "> 0"),
        (["--time", "1", "--iterations", "1", "--power", "1J", "--total-iterations", "2"], "unit"),
        (["--time", "1", "--iterations", "1", "--power", "1W", "--total-iterations", "2", "--pue", "0.5"], "--pue"),
        (["--time", "1", "--iterations", "1", "--power", "1W", "--total-iterations", "2", "--pue", "nan"], "--pue"),
        (["--time", "1", "--iterations", "0", "--power", "1W", "--total-iterations", "2"], "--iterations"),
    ],
)
def test_train_estimate_bad_input_exits_2(args, message):
    res = invoke("train-estimate", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_ctrl_c_ends_the_window_and_it_is_still_measured(tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "o"
    started = tmp_path / "started"
    with start_emulator("lines", RampProfile(10.0, 0.0), interval_s=INTERVAL_S) as meter:
        proc = subprocess.Popen(
            [*edgebench_argv(), "run", "--meter", meter.port, "--protocol", "lines", "--idle-power", "4",
             "--out", str(out), "--", sys.executable, "-c",
             f"import pathlib, time; pathlib.Path({str(started)!r}).write_text(str(time.time_ns())); time.sleep(600)"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            # the command's window holds 15 readings (the window needs 10), then Ctrl-C to the foreground group
            deadline = time.monotonic() + 60  # only against a hang
            while not (started.exists() and started.read_text()) and time.monotonic() < deadline:
                time.sleep(0.05)
            began = int(started.read_text())
            while sum(t > began for t, _, _ in list(meter.sent)) < 15 and time.monotonic() < deadline:
                time.sleep(0.05)
            interrupted = time.time_ns()
            os.killpg(proc.pid, signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:  # a failed test leaves no edgebench or command behind
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode != 0
    assert "interrupted" in stderr
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok"
    assert result["start_ns"] < began and result["end_ns"] > interrupted
    assert result["gross_energy_j"] == pytest.approx(10.0 * result["duration_s"], rel=0.01)


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_without_a_baseline_the_net_figures_are_null_in_strict_json(tmp_path):
    out = tmp_path / "o"
    with start_emulator("lines", RampProfile(10.0, 0.0), interval_s=INTERVAL_S) as meter:
        proc = subprocess.run(
            [*edgebench_argv(), "run", "--meter", meter.port, "--protocol", "lines", "--idle", "0", "--out", str(out),
             "--json", "--", sys.executable, "-c", "import time; time.sleep(1.2)"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no valid idle baseline" in proc.stderr
    for text in (proc.stdout, (out / "result.json").read_text()):
        data = _strict_json(text)
        assert data["net_energy_j"] is None and data["idle_power_w"] is None
        assert data["gross_energy_j"] == pytest.approx(10.0 * data["duration_s"], rel=0.01)
