"""`edgebench measure` end to end: an emulated meter on a pty -> the real serial logger -> the local agent ->
pairing -> the ranked table, checked against joules computed independently from the emulated power profile."""

import importlib.util
import json
import re
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
from click.testing import CliRunner
from profile_truth import Ramp, reading_deviation_w
from waiting import hangup_as_in_a_terminal

from edgebench.cli import cli, edgebench_argv
from edgebench.host.meters.emulate import RampProfile, start_emulator
from edgebench.records import read_run_records

INTERVAL_S = 0.05  # 20 readings/s: the shortest valid window is the 1 s floor
FAST = ["--warmup", "0.2", "--sensor", "none", "--threads", "1"]



@pytest.fixture()
def ramp_meter():
    with start_emulator("lines", RampProfile(6.0, 0.4), interval_s=INTERVAL_S) as handle:
        yield handle


def _measure(args):
    return CliRunner().invoke(cli, ["measure", *args], catch_exceptions=False)


def _measure_in_background(meter, engines, out, *args):
    """`edgebench measure` as a real process (to be signalled or to have its agent killed)."""
    with hangup_as_in_a_terminal():
        return subprocess.Popen(
            [*edgebench_argv(), "measure", "--meter", meter.port, "--protocol", "lines", "--engines", str(engines),
             "--idle", "1", "--out", str(out), *FAST, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )


def _wait_for_records(out, count, timeout_s=60.0):
    runs = out / "runs.jsonl"
    deadline = time.monotonic() + timeout_s
    while not (runs.is_file() and runs.read_text().count("\n") >= count) and time.monotonic() < deadline:
        time.sleep(0.05)


def _table(out):
    return {row["engine"]: row for row in json.loads((out / "table.json").read_text())["engines"]}


def _profile_energy(handle):
    """Joules between two host-clock times, from the emulator's own (time, watts) log, without any edgebench
    integration code: the profile is a line, so its integral is closed-form."""
    return Ramp.of(handle).energy_j


def _expected(handle, records, skew_ns=0):
    """Gross and net J/inference per engine from the emulated profile and the agent's windows (`records`: the
    windows the meter log covers)."""
    profile_energy = _profile_energy(handle)

    def energy(record):  # agent clock -> host clock, then the closed-form integral
        start, end = record.window_start_ns - skew_ns, record.window_end_ns - skew_ns
        return profile_energy(start, end), (end - start) / 1e9

    # the idle power at a time: interpolated between the idle windows' midpoints (constant beyond them), as
    # pairing does; each idle window's power is its closed-form mean
    idle = sorted((r for r in records if r.kind == "idle"), key=lambda r: r.window_start_ns)
    knots_t = [(r.window_start_ns + r.window_end_ns) / 2 - skew_ns for r in idle]
    knots_w = [energy(r)[0] / energy(r)[1] for r in idle]

    def idle_w(record):
        return float(np.interp((record.window_start_ns + record.window_end_ns) / 2 - skew_ns, knots_t, knots_w))

    expected = {}
    for name in dict.fromkeys(r.engine for r in records if r.kind == "run"):
        runs = [r for r in records if r.engine == name and r.iterations > 0]
        joules = sum(energy(r)[0] for r in runs)
        net_joules = sum(energy(r)[0] - idle_w(r) * energy(r)[1] for r in runs)
        iterations = sum(r.iterations for r in runs)
        expected[name] = (joules / iterations, net_joules / iterations)
    return expected


def _check_against_profile(out, handle, skew_ns=0, lost=()):
    """The table against the closed-form energy of the emulated profile; `lost`: records whose meter readings
    were deliberately removed (they cannot count)."""
    records = [r for r in read_run_records(out / "runs.jsonl") if r not in lost]
    table = _table(out)
    # each stored reading is off the true power by at most deviation_w (the meter's resolution, and the ramp's
    # slope times the reading's arrival delay on a loaded machine): the tolerance follows (tests/profile_truth.py)
    deviation_w = reading_deviation_w(out / "meter.sqlite", Ramp.of(handle),
                                      min(r.window_start_ns for r in records) - skew_ns,
                                      max(r.window_end_ns for r in records) - skew_ns)  # fmt: skip
    for name, (gross, net) in _expected(handle, records, skew_ns).items():
        row = table[name]
        assert row["status"] == "ok", row
        runs = [r for r in records if r.engine == name and r.iterations > 0]
        reading_j = deviation_w * sum(r.duration_ns for r in runs) / 1e9 / sum(r.iterations for r in runs)
        assert abs(row["gross_j_per_inference"] - gross) <= reading_j, (name, row["gross_j_per_inference"], gross)
        assert abs(row["net_j_per_inference"] - net) <= 2 * reading_j, (name, row["net_j_per_inference"], net)
    return records, table


@pytest.mark.slow
def test_measure_end_to_end_matches_the_emulated_profile(tiny_engines, ramp_meter, tmp_path):
    out = tmp_path / "m"
    result = _measure(["--meter", ramp_meter.port, "--protocol", "lines", "--engines", str(tiny_engines),
                       "--duration", "1", "--idle", "1", "--idle-every", "1", "--repeat", "2", "--out", str(out),
                       "--intensity", "1000lb/MWh", *FAST])
    assert result.exit_code == 0, result.output
    records, table = _check_against_profile(out, ramp_meter)
    # idle again after engine 1 and after the last: every engine window lies between two idle windows
    assert [r.kind for r in records] == ["idle", "run", "run", "idle", "run", "run", "idle"]
    assert [r.repeat for r in records if r.kind == "idle"] == [0, 1, 2]
    assert {w for r in records for w in r.warnings if "no samples" in w} == set()
    assert "shortest valid window 1 s" in result.output and "clock: agent is" in result.output
    # the ranked table on stdout, ranked by wall J per sample (ties share a rank: `1=`)
    ranked = sorted(table.values(), key=lambda row: row["gross_j_per_sample"])
    lines = [line for line in result.stdout.splitlines() if re.match(r"\s*[12]=?\s", line)]
    assert [line.split()[1] for line in lines] == [row["engine"] for row in ranked]
    # CO2 from the explicit factor: lbs = J / 3.6e9 MWh/J x 1000 lb/MWh
    row = table["squeezenet1_1_1_32_32_fp32"]
    assert row["co2_lb_per_inference"] == pytest.approx(row["gross_j_per_inference"] / 3.6e9 * 1000, rel=1e-9)
    # model size and cost beside energy, from the agent's manifest through the records
    manifest = {e["name"]: e for e in json.loads((tiny_engines / "manifest.json").read_text())["engines"]}
    for name, entry in manifest.items():
        assert table[name]["params"] == entry["params"] == 1_235_496
        assert table[name]["gflops_per_inference"] == pytest.approx(entry["flops_per_inference"] / 1e9)
    session = json.loads((out / "session.json").read_text())
    assert session["extra"]["agent"] == "local" and session["meter"] == "lines"
    for name in ("table.csv", "table.md", "clock.json", "meter.sqlite"):
        assert (out / name).is_file()
    # report re-renders the same figures from the directory
    report = CliRunner().invoke(cli, ["report", str(out), "--format", "json"])
    assert report.exit_code == 0, report.output
    again = {row["engine"]: row for row in json.loads(report.stdout)["engines"]}
    assert again[row["engine"]]["gross_j_per_inference"] == pytest.approx(row["gross_j_per_inference"])
    # and draws it: GFLOPs against net J/inference (or says how to get matplotlib)
    plotted = CliRunner().invoke(cli, ["report", str(out), "--plot", str(tmp_path / "energy.png")])
    if importlib.util.find_spec("matplotlib") is not None:
        assert plotted.exit_code == 0, plotted.output
        assert (tmp_path / "energy.png").read_bytes().startswith(b"\x89PNG")
    else:
        assert plotted.exit_code == 2 and "pip install 'edgebench[plot]'" in plotted.output


@pytest.mark.slow
def test_an_offset_agent_clock_is_measured_and_corrected(tiny_engines, ramp_meter, tmp_path):
    skew = 3_000_000_000  # the agent's clock is 3 s ahead: on this ramp, unmapped windows would be ~15 % off
    out = tmp_path / "m"
    result = _measure(["--meter", ramp_meter.port, "--protocol", "lines", "--engines", str(tiny_engines),
                       "--engine", "squeezenet1_1_1_32_32_fp32", "--duration", "1", "--idle", "1", "--repeat", "1",
                       "--out", str(out), f"--agent-arg=--clock-offset-ns={skew}", *FAST])
    assert result.exit_code == 0, result.output
    clock = next(iter(json.loads((out / "clock.json").read_text()).values()))
    assert abs(clock["offset_ns"] + skew) < 5_000_000 and clock["method"].startswith("ntp-style")
    records, table = _check_against_profile(out, ramp_meter, skew_ns=skew)
    # the check can fail: without the offset the expected figure differs by far more than 1 %
    wrong = _expected(ramp_meter, records, skew_ns=0)["squeezenet1_1_1_32_32_fp32"][0]
    assert abs(wrong / table["squeezenet1_1_1_32_32_fp32"]["gross_j_per_inference"] - 1) > 0.05


@pytest.mark.slow
def test_resume_skips_measured_engines(tiny_engines, ramp_meter, tmp_path):
    out = tmp_path / "m"
    common = ["--meter", ramp_meter.port, "--protocol", "lines", "--engines", str(tiny_engines),
              "--duration", "1", "--idle", "1", "--repeat", "1", "--out", str(out), *FAST]
    first = _measure([*common, "--engine", "squeezenet1_1_1_32_32_fp32"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli, ["measure", *common])
    assert again.exit_code == 2 and "pass --resume" in again.output
    resumed = _measure([*common, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "1 engine already measured with enough valid windows, kept" in resumed.output
    assert "keeping the idle baseline" in resumed.output
    records = read_run_records(out / "runs.jsonl")
    assert [(r.kind, r.engine) for r in records] == [
        ("idle", "idle"), ("run", "squeezenet1_1_1_32_32_fp32"), ("run", "squeezenet1_1_2_32_32_fp32")
    ]
    assert len({r.run_id for r in records}) == 2
    assert set(json.loads((out / "clock.json").read_text())) == {r.run_id for r in records}
    assert {row["status"] for row in _table(out).values()} == {"ok"}
    _check_against_profile(out, ramp_meter)
    # the directory was measured on another board: its numbers do not belong with this one's. Its set-up is
    # session.json's `setup`; a session.json written before that key existed keeps the agent host in `extra`
    written = json.loads((out / "session.json").read_text())
    assert written["setup"]["agent_host"] == socket.gethostname() and written["setup"]["meter_protocol"] == "lines"
    for form in ("setup", "extra only"):
        session = json.loads(json.dumps(written))
        if form == "setup":
            session["setup"]["agent_host"] = "another-board"
        else:
            del session["setup"]
            session["extra"]["agent_hostname"] = "another-board"
        (out / "session.json").write_text(json.dumps(session))
        other = CliRunner().invoke(cli, ["measure", *common, "--resume"])
        assert other.exit_code == 2 and "measured with another set-up (agent host another-board ->" in other.output


@pytest.mark.slow
def test_a_broken_engine_is_recorded_as_failed_and_the_sweep_goes_on(tiny_engines, ramp_meter, tmp_path):
    engines = tmp_path / "engines"
    shutil.copytree(tiny_engines, engines)
    manifest = json.loads((engines / "manifest.json").read_text())
    broken = manifest["engines"][0]
    (engines / broken["artifact"]).write_bytes(b"\x08\x07 not an onnx model")
    out = tmp_path / "m"
    result = _measure(["--meter", ramp_meter.port, "--protocol", "lines", "--engines", str(engines),
                       "--duration", "1", "--idle", "1", "--repeat", "2", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    table = _table(out)
    assert table[broken["name"]]["status"].startswith("failed: ") and "could not be loaded" in table[broken["name"]]["status"]
    assert table[broken["name"]]["rank"] is None
    assert table["squeezenet1_1_2_32_32_fp32"]["status"] == "ok"
    assert f"{broken['name']} failed" in result.output


@pytest.mark.slow
def test_an_agent_that_dies_mid_window_is_restarted(tiny_engines, ramp_meter, tmp_path):
    """The agent process is killed while it runs the first engine (what a segfaulting engine does to it): the
    window is recorded as failed, a new agent is started and the next engine is measured."""
    out = tmp_path / "m"
    # --retry: the agent's restart loads the machine, and on a busy one the emulator, a thread of this test,
    # can fall silent for longer than 5 meter periods inside the next window; measure retries such a window
    proc = _measure_in_background(ramp_meter, tiny_engines, out, "--duration", "4", "--repeat", "1", "--retry", "2")
    said = []  # measure's progress, a line per window off a terminal: wait for the first engine's window
    while not (said and "squeezenet1_1_1_32_32_fp32 window" in said[-1]):
        said.append(proc.stderr.readline())
        assert said[-1], "".join(said)
    subprocess.run(["pkill", "-KILL", "-f", f"agent --stdio --engines {tiny_engines}"], check=True)
    stdout, stderr = proc.communicate(timeout=120)
    stderr = "".join(said) + stderr
    assert proc.returncode == 0, stderr
    table = _table(out)
    first, second = "squeezenet1_1_1_32_32_fp32", "squeezenet1_1_2_32_32_fp32"
    assert table[first]["status"].startswith("failed: the agent died") and "signal 9" in table[first]["status"]
    assert table[second]["status"] == "ok"
    assert "agent: reconnecting to local" in stderr


@pytest.mark.slow
def test_windows_shorter_than_the_meter_needs(tiny_engines, ramp_meter, tmp_path):
    common = ["--meter", ramp_meter.port, "--protocol", "lines", "--engines", str(tiny_engines), "--idle", "1",
              "--engine", "squeezenet1_1_1_32_32_fp32", "--repeat", "1", *FAST]
    refused = CliRunner().invoke(cli, ["measure", *common, "--duration", "0.3", "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2
    assert "--duration 0.3 s is shorter than the 1 s this meter needs" in refused.output
    assert "--allow-short" in refused.output and "Traceback" not in refused.output
    result = _measure([*common, "--duration", "0.3", "--allow-short", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    row = _table(tmp_path / "b")["squeezenet1_1_1_32_32_fp32"]
    assert row["status"].startswith("invalid: ") and "need >= 10" in row["status"]
    assert row["rank"] is None and row["gross_j_per_inference"] is None


def test_measure_errors_are_one_line(tiny_engines, tmp_path):
    def run(*args):
        result = CliRunner().invoke(cli, ["measure", *args])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and result.output.count("error:") == 1
        return result.output

    assert "build-engines --out" in run("--meter", "/dev/null", "--engines", str(tmp_path / "none"))
    assert "no serial port /dev/ttyNOPE" in run("--meter", "/dev/ttyNOPE", "--engines", str(tiny_engines),
                                                "--out", str(tmp_path / "o"))
    assert "--agent 'ftp://x'" in run("--meter", "/dev/null", "--agent", "ftp://x", "--engines", str(tiny_engines))
    assert "unknown eGRID subregion 'NOPE'" in run("--meter", "/dev/null", "--engines", str(tiny_engines),
                                                  "--grid", "NOPE")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert f"--out {a_file} is a file" in run("--meter", "/dev/null", "--engines", str(tiny_engines),
                                              "--out", str(a_file))
    assert f"lies under the file {a_file}" in run("--meter", "/dev/null", "--engines", str(tiny_engines),
                                                  "--out", str(a_file / "sub"))
    assert "/proc/edgebench-out" in run("--meter", "/dev/null", "--engines", str(tiny_engines),
                                        "--out", "/proc/edgebench-out")


@pytest.mark.parametrize(
    "option, value",
    [("--duration", "nan"), ("--duration", "inf"), ("--duration", "1e309"), ("--idle", "-1"), ("--pue", "nan"),
     ("--pue", "0.9"), ("--resolution", "-1"), ("--resolution", "inf"), ("--warmup", "nan"),
     ("--meter-timeout", "0"), ("--baudrate", "1000000000000")],
)
def test_measure_refuses_numbers_that_are_not_finite_or_in_range(tiny_engines, tmp_path, option, value):
    """Refused at once, before the meter opens, as a usage error naming the option (once such values crashed
    after the whole measurement, leaving no table)."""
    result = CliRunner().invoke(cli, ["measure", "--meter", "/dev/null", "--engines", str(tiny_engines),
                                      "--out", str(tmp_path / "o"), option, value])
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output, result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_silent_meter_is_named(tiny_engines, tmp_path):
    import os
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        result = CliRunner().invoke(cli, ["measure", "--meter", os.ttyname(slave), "--protocol", "lines",
                                          "--engines", str(tiny_engines), "--out", str(tmp_path / "o"),
                                          "--meter-timeout", "1"])
    finally:
        os.close(master)
        os.close(slave)
    assert result.exit_code == 2 and "sent no reading" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_keeps_every_finished_window(tiny_engines, ramp_meter, tmp_path, signal_name):
    """Ctrl-C, `kill` (SIGTERM) and an ssh drop (SIGHUP) alike: the tables are written from every finished
    window, the exit status is 128 + the signal's number."""
    import signal

    sig = signal.Signals[signal_name]
    out = tmp_path / "m"
    proc = _measure_in_background(ramp_meter, tiny_engines, out, "--duration", "2", "--repeat", "3")
    _wait_for_records(out, 2)  # the idle window and the first engine window are in
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert f"interrupted ({signal_name}): every finished window is in" in stderr and "--resume" in stderr
    row = _table(out)["squeezenet1_1_1_32_32_fp32"]
    assert row["status"] == "ok" and row["valid_windows"] >= 1


@pytest.mark.slow
def test_measure_through_a_tcp_agent_with_its_token(tiny_engines, ramp_meter, tcp_agent, tmp_path):
    out = tmp_path / "m"
    common = ["--meter", ramp_meter.port, "--protocol", "lines", "--agent", f"tcp://127.0.0.1:{tcp_agent}",
              "--engine", "squeezenet1_1_2_32_32_fp32", "--duration", "1", "--idle", "1", "--repeat", "1",
              "--out", str(out), "--warmup", "0.2"]
    refused = CliRunner().invoke(cli, ["measure", *common, "--token", "guess"])
    assert refused.exit_code == 2 and "token rejected" in refused.output
    shutil.rmtree(out)
    result = CliRunner().invoke(cli, ["measure", *common], env={"EDGEBENCH_AGENT_TOKEN": "s3cret"})
    assert result.exit_code == 0, result.output
    assert f"agent: tcp://127.0.0.1:{tcp_agent}" in result.output
    _check_against_profile(out, ramp_meter)


@pytest.mark.slow
def test_pair_offline_from_bench_records_and_a_meter_log(tiny_engines, ramp_meter, tmp_path):
    """The agent alone (`bench --out`) and the logger alone (`meter log` machinery), paired afterwards."""
    from edgebench.host.logger import MeterLogger

    runs, log = tmp_path / "runs.jsonl", tmp_path / "meter.sqlite"
    with MeterLogger(ramp_meter.port, "lines", log) as logger:
        bench = CliRunner().invoke(cli, ["bench", str(tiny_engines), "--duration", "1", "--threads", "1",
                                         "--out", str(runs)])
        assert bench.exit_code == 0, bench.output
        last_end = max(r.window_end_ns for r in read_run_records(runs))
        deadline = time.monotonic() + 60  # only against a hang
        while not ((r := logger.latest()) and r.t_ns > last_end) and time.monotonic() < deadline:
            time.sleep(0.02)  # until the logger holds a reading after the last window's end
    result = CliRunner().invoke(cli, ["pair", str(runs), str(log), "--format", "json"])
    assert result.exit_code == 0, result.output
    table = {row["engine"]: row for row in json.loads(result.stdout)["engines"]}
    truth = Ramp.of(ramp_meter)
    for record in read_run_records(runs):
        expected = truth.energy_j(record.window_start_ns, record.window_end_ns) / record.iterations
        deviation_w = reading_deviation_w(log, truth, record.window_start_ns, record.window_end_ns)
        tolerance = deviation_w * record.duration_ns / 1e9 / record.iterations  # tests/profile_truth.py
        assert abs(table[record.engine]["gross_j_per_inference"] - expected) <= tolerance
        assert table[record.engine]["net_j_per_inference"] is None  # bench measures no idle baseline


@pytest.mark.slow
def test_several_kill_a_watts_on_one_receiver_need_an_address(tiny_engines, tmp_path):
    from edgebench.host.meters.emulate import ConstantProfile, TweetAWattEncoder
    from edgebench.host.meters.tweetawatt import default_calibration

    encoder = TweetAWattEncoder(addresses=(1, 2))
    with start_emulator("tweetawatt", ConstantProfile(60.0), interval_s=0.05, encoder=encoder) as meter:
        common = ["--meter", meter.port, "--protocol", "tweetawatt", "--engines", str(tiny_engines), "--engine",
                  "squeezenet1_1_1_32_32_fp32", "--repeat", "1", "--idle", "0", *FAST]
        refused = CliRunner().invoke(cli, ["measure", *common, "--out", str(tmp_path / "a")])
        assert refused.exit_code == 2 and "hears several sensors (0001, 0002): pass --address" in refused.output
        unknown = CliRunner().invoke(cli, ["measure", *common, "--address", "0003", "--out", str(tmp_path / "b")])
        assert unknown.exit_code == 2 and "no sensor '0003'" in unknown.output
        calibration = tmp_path / "kaw.json"  # the sensor's own constants (here: the defaults, written out)
        cal = default_calibration(2)
        calibration.write_text(json.dumps({"2": {"vref": cal.vref, "current_norm": cal.current_norm}}))
        result = _measure([*common, "--address", "2", "--duration", "1", "--calibration", str(calibration),
                           "--out", str(tmp_path / "c")])
        sent_period_s = float(np.median(np.diff([t for t, _, _ in meter.sent]))) / 1e9  # both sensors per tick
    assert result.exit_code == 0, result.output
    session = json.loads((tmp_path / "c" / "session.json").read_text())
    assert session["extra"]["meter_calibration"] == json.loads(calibration.read_text())  # what produced it
    assert session["extra"]["meter_address"] == "0002" and session["extra"]["meter_protocol"] == "tweetawatt"
    # each sensor sends once per emulator tick (0.05 s, later on a busy machine): the period is one sensor's,
    # not the receiver's mixed stream (which would read twice per tick)
    import re

    period = float(re.search(r"a reading every ([0-9.]+) s", result.output).group(1))
    assert period == pytest.approx(sent_period_s, rel=0.2)
    assert _table(tmp_path / "c")["squeezenet1_1_1_32_32_fp32"]["wall_power_w"] == pytest.approx(60.0, abs=1.5)


@pytest.mark.slow
def test_a_killed_session_resumes(tiny_engines, ramp_meter, tmp_path):
    """SIGKILL of measure itself just after an engine's window was recorded: the meter readings the logger had
    not flushed are lost with it, so that window is invalid, and --resume must measure that engine again (not
    skip it for having a record) and complete the table."""
    import signal
    import sqlite3

    out = tmp_path / "m"
    proc = _measure_in_background(ramp_meter, tiny_engines, out, "--duration", "1", "--repeat", "1")
    _wait_for_records(out, 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    records = read_run_records(out / "runs.jsonl")
    assert [r.kind for r in records][:2] == ["idle", "run"]
    killed = records[1]
    # What SIGKILL costs is the logger's unflushed second; make that loss certain rather than likely: no
    # reading survives from the start of the killed engine's window on (same machine: agent clock = host clock).
    with sqlite3.connect(out / "meter.sqlite") as db:
        db.execute("DELETE FROM readings WHERE t_ns >= ?", (killed.window_start_ns,))
    result = _measure(["--meter", ramp_meter.port, "--protocol", "lines", "--engines", str(tiny_engines),
                       "--duration", "1", "--idle", "1", "--repeat", "1", "--out", str(out), "--resume", *FAST])
    assert result.exit_code == 0, result.output
    assert "keeping the idle baseline" in result.output
    assert f"measuring again {killed.engine}" in result.output
    runs = [r for r in read_run_records(out / "runs.jsonl") if r.engine == killed.engine]
    assert len(runs) == 2 and runs[0].run_id != runs[1].run_id
    table = _table(out)
    assert {row["status"] for row in table.values()} == {"ok"}
    assert table[killed.engine]["valid_windows"] == 1 and table[killed.engine]["windows"] == 2
    _check_against_profile(out, ramp_meter, lost=[killed])


def _session_parts(config):
    """The session's parts, as a Python caller assembles them (no CLI)."""
    from edgebench.host.measure import MeterSource, agent_connector
    from edgebench.host.measuredir import MeasureDir

    out = MeasureDir.create(config.out, resume=config.resume)
    return out, MeterSource.start(config, out.new_meter_path), agent_connector(config)


def _run_session(config, progress):
    """Run a session built from its parts with `progress` (a Progress subclass) as its reporter; the agent and
    the meter are always stopped."""
    from edgebench.host.measure import MeasureSession

    out, source, connect_agent = _session_parts(config)
    session = MeasureSession(config, out, source, connect_agent,
                             progress=lambda plan: progress(source.latest_watts, plan, live=False))
    try:
        return session.run()
    finally:
        session.close_agent()
        source.stop()


@pytest.mark.slow
def test_a_window_the_meter_left_silent_is_measured_again(tiny_engines, tmp_path):
    """--retry from Python: the meter falls silent for exactly the first window (the progress reporter, one of
    the session's parts, switches the emulator's silence on and off around it); the window is invalid for the
    meter's sake, measured again, and the engine counts one retried window."""
    from edgebench.host.carbon import egrid_factor
    from edgebench.host.measure import MeasureConfig, Progress
    from edgebench.host.meters.emulate import Faults

    faults = Faults()
    engine = "squeezenet1_1_1_32_32_fp32"

    class SilenceTheFirstWindow(Progress):
        def window(self, label):
            super().window(label)
            faults.silence = ((0.0, 1e9),) if label.endswith(f"{engine} window 1/1") else ()

        def done(self, cost_s):
            faults.silence = ()
            super().done(cost_s)

    with start_emulator("lines", RampProfile(6.0, 0.4), interval_s=INTERVAL_S, faults=faults) as meter:
        config = MeasureConfig(
            meter=meter.port, protocol="lines", out=tmp_path / "m", grid=egrid_factor(), engines_dir=tiny_engines,
            engine_names=(engine,), duration_s=1.0, idle_s=1.0, warmup_s=0.2, repeat=1, retry=1, sensor="none",
            threads=1,
        )
        result = _run_session(config, SilenceTheFirstWindow)
    (e,) = result.engines
    assert e.ok and e.windows == 2 and e.valid_windows == 1 and e.retried == 1
    first, again = [w for w in result.windows if w.kind == "run"]
    assert not first.valid and first.meter_fault and first.attempt == 0 and first.samples == 0
    assert again.valid and again.attempt == 1 and again.repeat == first.repeat
    assert [r.attempt for r in read_run_records(tmp_path / "m" / "runs.jsonl") if r.kind == "run"] == [0, 1]
    from edgebench.host.table import render

    assert "1/2 (1 retried)" in "\n".join(render(result))
    assert _table(tmp_path / "m")[engine]["retried"] == 1


@pytest.mark.slow
def test_a_dead_meter_logger_stops_the_session_and_keeps_its_windows(tiny_engines, tmp_path):
    """The logger's thread ends mid-session (stopped here through its own API after the idle window): the
    session stops with one clear error before the next window, and runs.jsonl keeps the window measured."""
    from edgebench.errors import DeviceError
    from edgebench.host.carbon import egrid_factor
    from edgebench.host.measure import MeasureConfig, MeasureSession, Progress

    class StopTheLoggerAfterIdle(Progress):
        def done(self, cost_s):
            super().done(cost_s)
            if self.label.startswith("idle"):
                source.logger.stop()

    with start_emulator("lines", RampProfile(6.0, 0.4), interval_s=INTERVAL_S) as meter:
        config = MeasureConfig(
            meter=meter.port, protocol="lines", out=tmp_path / "m", grid=egrid_factor(), engines_dir=tiny_engines,
            duration_s=1.0, idle_s=1.0, warmup_s=0.2, repeat=1, sensor="none", threads=1,
        )
        out, source, connect_agent = _session_parts(config)
        session = MeasureSession(config, out, source, connect_agent,
                                 progress=lambda plan: StopTheLoggerAfterIdle(source.latest_watts, plan, live=False))
        with pytest.raises(DeviceError, match="meter logger on .* stopped: no window after it"):
            try:
                session.run()
            finally:
                session.close_agent()
                source.stop()
    assert [r.kind for r in read_run_records(tmp_path / "m" / "runs.jsonl")] == ["idle"]
