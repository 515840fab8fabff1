"""`edgebench meter`: show, log, emulate, probe through the CLI; user mistakes exit 2 with one line."""

import json

import pytest
from click.testing import CliRunner

from edgebench.cli import cli
from edgebench.host.meters.emulate import ConstantProfile, start_emulator
from edgebench.host.store import open_store
from edgebench.records import MeterReading

EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "m.sqlite"
    with open_store(path) as store:
        store.set_meta(meter="lines", resolution_w=0.1)
        for k in range(11):  # 10 s at 6 W then 0.5 W/s more: 60 + 25 J
            store.add(MeterReading(t_ns=EPOCH + k * S, power_w=6.0 + 0.5 * k, meter="lines"))
        store.add_gap(EPOCH + 4 * S, EPOCH + 5 * S, "meter silent")
    return path


def test_show_table_csv_json(log_file):
    res = invoke("meter", "show", str(log_file))
    assert res.exit_code == 0, res.output
    assert "11 over 10.0 s (1.00 /s)" in res.stdout
    assert "mean 8.50 W, min 6.00 W, max 11.00 W" in res.stdout
    assert f"{85 / 3600:.4f} Wh" in res.stdout and "gaps        1 (1.0 s)" in res.stdout
    doc = json.loads(invoke("meter", "show", str(log_file), "--format", "json").stdout)
    (sensor,) = doc["sensors"]
    assert sensor["energy_wh"] == pytest.approx(85 / 3600) and sensor["samples"] == 11
    lines = invoke("meter", "show", str(log_file), "--format", "csv").stdout.splitlines()
    assert lines[0].startswith("address,meter,samples") and len(lines) == 2


def test_log_from_emulator(tmp_path):
    out = tmp_path / "cli.csv"
    with start_emulator("lines", ConstantProfile(2.5), interval_s=0.05) as emu:
        res = invoke(
            "meter", "log", "--meter", emu.port, "--protocol", "lines", "--out", str(out), "--duration", "0.6"
        )
    assert res.exit_code == 0, res.output
    assert "readings" in res.stderr and res.stdout == ""
    assert "2.5" in out.read_text()


def test_log_with_the_wrong_protocol_says_what_the_bytes_look_like(tmp_path):
    out = tmp_path / "wrong.csv"
    with start_emulator("tweetawatt", ConstantProfile(9.0), interval_s=0.05) as emu:
        res = invoke(
            "meter", "log", "--meter", emu.port, "--protocol", "lines", "--out", str(out), "--duration", "1"
        )
    assert res.exit_code == 1 and "Traceback" not in res.output
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("edgebench: error:")]
    assert "no reading logged:" in line and "but no lines reading" in line
    assert "they look like: 7e 00" in line and "edgebench meter probe" in line  # an XBee API frame start
    assert out.is_file()  # the (empty) log and its gap are kept


@pytest.mark.slow
def test_log_of_a_meter_that_never_speaks(tmp_path):
    import os

    master, slave = os.openpty()  # a serial device that never writes a byte
    try:
        res = invoke("meter", "log", "--meter", os.ttyname(slave), "--protocol", "lines", "--out",
                     str(tmp_path / "silent.csv"), "--duration", "3.5", "--warn-silent", "0.5")  # fmt: skip
    finally:
        os.close(slave)
        os.close(master)
    assert res.exit_code == 1
    assert "warning: no bytes from" in res.stderr and "(still listening)" in res.stderr
    assert "edgebench: error: no reading logged: no bytes from" in res.stderr and "--baudrate" in res.stderr
    gaps = (tmp_path / "silent.gaps.csv").read_text().splitlines()
    assert len(gaps) == 2 and gaps[1].endswith("meter silent")


def test_emulate_prints_the_port_then_stops():
    res = invoke(
        "meter",
        "emulate",
        "--protocol",
        "tweetawatt",
        "--watts",
        "9",
        "--interval",
        "0.1",
        "--duration",
        "0.4",
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().startswith("/dev/pts/")
    assert "emulating tweetawatt (emulated constant 9 W)" in res.stderr


def test_probe_names_the_protocol_and_its_rate():
    with start_emulator("tweetawatt", ConstantProfile(9.0), interval_s=0.1) as emu:
        res = invoke("meter", "probe", emu.port, "--listen", "1", "--rate-for", "1.5")
    assert res.exit_code == 0, res.output
    assert "tweetawatt" in res.stdout
    rate = float(res.stdout.split("; ")[1].split(" readings/s")[0])
    assert 7.0 < rate < 11.0  # one frame every 100 ms, on a shared box


def test_probe_polls_a_um_meter_for_its_rate():
    with start_emulator("um", ConstantProfile(4.0)) as emu:
        res = invoke("meter", "probe", emu.port, "--listen", "0.3", "--rate-for", "1.5")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"{emu.port}: um (UM")
    assert "readings/s" in res.stdout and "0 bad)" in res.stdout
    res = invoke("meter", "probe", emu.port, "--listen", "0.3", "--rate-for", "0")
    assert "readings/s" not in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["show", "nope.sqlite"], "does not exist"),
        (["log", "--meter", "/dev/ttyNOPE9", "--protocol", "lines", "--out", "x.sqlite"], "no serial port"),
        (
            ["log", "--meter", "/dev/ttyNOPE9", "--protocol", "morse", "--out", "x.sqlite"],
            "unknown meter protocol",
        ),
        (["log", "--meter", "/dev/null", "--out", "x.sqlite", "--duration", "-1"], "'--duration'"),
        (["emulate", "--protocol", "lines", "--watts", "3", "--steps", "0:1"], "exactly one of"),
        (
            ["log", "--meter", "x", "--protocol", "um", "--calibration", "c.json", "--out", "x.sqlite"],
            "tweetawatt",
        ),
        (["emulate", "--protocol", "lines", "--cpu-load", "lots"], "IDLE:MAX"),
        (
            ["log", "--meter", "socket://127.0.0.1:1", "--protocol", "lines", "--out", "x.sqlite"],
            "nothing listens",
        ),
    ],
)
def test_user_errors_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    res = invoke("meter", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.sqlite").exists()  # no empty store left behind


def test_show_lists_each_sensor(tmp_path):
    path = tmp_path / "twa.sqlite"
    with open_store(path) as store:
        for k in range(5):
            for address, w in (("0001", 10.0), ("0002", 20.0)):
                store.add(
                    MeterReading(t_ns=EPOCH + 2 * k * S, power_w=w, meter="tweetawatt", address=address)
                )
    doc = json.loads(invoke("meter", "show", str(path), "--format", "json").stdout)
    assert [(s["address"], s["mean_w"]) for s in doc["sensors"]] == [("0001", 10.0), ("0002", 20.0)]
    assert doc["sensors"][1]["energy_wh"] == pytest.approx(20 * 8 / 3600)
    res = invoke("meter", "show", str(path))
    assert "sensor 0001 meter: tweetawatt" in res.stdout and "sensor 0002" in res.stdout


@pytest.mark.parametrize(
    "args, option",
    [
        (["log", "--meter", "/dev/null", "--out", "x.sqlite", "--baudrate", "1e12"], "--baudrate"),
        (["log", "--meter", "/dev/null", "--out", "x.sqlite", "--baudrate", "1000000000000"], "--baudrate"),
        (["log", "--meter", "/dev/null", "--out", "x.sqlite", "--baudrate", "0"], "--baudrate"),
        (["log", "--meter", "/dev/null", "--out", "x.sqlite", "--duration", "nan"], "--duration"),
        (["log", "--meter", "/dev/null", "--out", "x.sqlite", "--duration", "inf"], "--duration"),
        (["log", "--meter", "/dev/null", "--out", "x.sqlite", "--duration", "1e309"], "--duration"),
        (["log", "--meter", "/dev/null", "--out", "x.sqlite", "--warn-silent", "nan"], "--warn-silent"),
        (["probe", "/dev/null", "--listen", "-1"], "--listen"),
        (["probe", "/dev/null", "--listen", "nan"], "--listen"),
        (["probe", "/dev/null", "--rate-for", "inf"], "--rate-for"),
        (["probe", "/dev/null", "--baudrate", "1e12"], "--baudrate"),
        (["emulate", "--protocol", "lines", "--watts", "nan"], "--watts"),
        (["emulate", "--protocol", "lines", "--watts", "-3"], "--watts"),
        (["emulate", "--protocol", "lines", "--watts", "1e309"], "--watts"),
        (["emulate", "--protocol", "lines", "--watts", "3", "--interval", "0"], "--interval"),
        (["emulate", "--protocol", "lines", "--watts", "3", "--interval", "inf"], "--interval"),
        (["emulate", "--protocol", "lines", "--watts", "3", "--duration", "nan"], "--duration"),
        (["emulate", "--protocol", "lines", "--watts", "3", "--tcp", "70000"], "--tcp"),
    ],
)
def test_number_options_are_usage_errors(tmp_path, monkeypatch, args, option):
    monkeypatch.chdir(tmp_path)
    res = invoke("meter", *args)
    assert res.exit_code == 2, res.output
    assert option in res.output and "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["emulate", "--protocol", "lines", "--steps", "0:nan"], "not a finite number"),
        (["emulate", "--protocol", "lines", "--steps", "0:1,inf:2"], "not a finite number"),
        (["emulate", "--protocol", "lines", "--cpu-load", "0:inf"], "finite IDLE:MAX"),
    ],
)
def test_emulator_profiles_refuse_non_finite_numbers(args, message):
    res = invoke("meter", *args)
    assert res.exit_code == 2 and message in res.output, res.output


def test_log_to_a_name_with_uri_characters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with start_emulator("lines", ConstantProfile(2.5), interval_s=0.05) as emu:
        res = invoke(
            "meter", "log", "--meter", emu.port, "--protocol", "lines", "--out", "exp#1", "--duration", "0.6"
        )
    assert res.exit_code == 0, res.output
    res = invoke("meter", "show", "exp#1", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sensors"][0]["samples"] >= 3
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("value", ["NaN", "0", "1e309", "-498"])
def test_log_refuses_a_bad_calibration_before_creating_the_store(tmp_path, value):
    cal = tmp_path / "cal.json"
    cal.write_text('{"1": {"vref": 498, "current_norm": ' + value + "}}")
    with start_emulator("tweetawatt", ConstantProfile(9.0), interval_s=0.1) as emu:
        res = invoke("meter", "log", "--meter", emu.port, "--protocol", "tweetawatt", "--calibration", str(cal),
                     "--out", str(tmp_path / "x.sqlite"), "--duration", "1")  # fmt: skip
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"calibration file {cal}: entry '1': current_norm" in res.output and "counts per amp" in res.output
    assert not (tmp_path / "x.sqlite").exists()


@pytest.mark.parametrize("content, words", [
    (b"[" * 100_000 + b"]" * 100_000, "nests deeper"),
    (b'{"1": {"vref": ' + b"9" * 5000 + b"}}", "too long"),
    ("{\"1\": {\"vref\": 498}} # ü".encode("latin-1"), "not UTF-8"),
    (b"[1, 2]", "expected an object keyed by sensor address"),
])  # fmt: skip
def test_a_calibration_file_that_is_not_sane_json_is_one_line(tmp_path, content, words):
    """Issue 18 item 9: a 100k-deep calibration file raised RecursionError (and its cousins other tracebacks)."""
    cal = tmp_path / "cal.json"
    cal.write_bytes(content)
    with start_emulator("tweetawatt", ConstantProfile(9.0), interval_s=0.1) as emu:
        res = invoke("meter", "log", "--meter", emu.port, "--protocol", "tweetawatt", "--calibration", str(cal),
                     "--out", str(tmp_path / "x.sqlite"), "--duration", "1")  # fmt: skip
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert str(cal) in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "x.sqlite").exists()


def test_emulate_with_a_csv_that_is_not_utf8_is_one_line(tmp_path):
    """Issue 18: a Latin-1 profile CSV gave a UnicodeDecodeError traceback."""
    profile = tmp_path / "profil.csv"
    profile.write_bytes("t_s,power_w\n0,5\n# Leistung über Zeit\n".encode("latin-1"))
    res = CliRunner().invoke(cli, ["meter", "emulate", "--protocol", "lines", "--csv", str(profile), "--duration", "0.1"])
    assert res.exit_code == 2, res.output
    assert "is not UTF-8 text" in res.output and "Traceback" not in res.output
