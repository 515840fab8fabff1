"""Smart plugs over HTTP end to end: the emulators serve each firmware's real JSON on 127.0.0.1, the real
PlugLogger polls them into the store, and `measure` pairs the log with the local agent's windows."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from plug_checks import check_against_closed_form, check_outage_is_one_gap, measure_through
from waiting import wait_for

from edgebench.cli import cli
from edgebench.errors import BadInput
from edgebench.host.logger import MeterOptions, open_logger
from edgebench.host.meters.emulate import ConstantProfile, RampProfile, start_emulator
from edgebench.host.meters.plug import PlugLogger, digest_response, parse_challenge
from edgebench.host.store import load_energy, load_trace

FIRMWARES = ("shelly", "shelly-gen1", "tasmota")


def test_digest_answers_the_rfc_7616_examples():
    """RFC 7616 section 3.9.1: the same challenge answered with SHA-256 and with MD5."""
    challenge = parse_challenge(
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    sha = digest_response(challenge, "Mufasa", "Circle of Life", "GET", "/dir/index.html", 1, cnonce)
    assert 'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"' in sha
    assert "nc=00000001" in sha and 'opaque="FQhe' in sha
    md5 = digest_response({**challenge, "algorithm": "MD5"}, "Mufasa", "Circle of Life", "GET",
                          "/dir/index.html", 1, cnonce)  # fmt: skip
    assert 'response="8ca523f5e9506fed4657c9700eebdbec"' in md5


@pytest.mark.parametrize(
    "firmware, password",
    [pytest.param("shelly", None, marks=pytest.mark.slow), ("shelly", "s3cret"),
     pytest.param("shelly-gen1", "s3cret", marks=pytest.mark.slow), ("tasmota", "s3cret")],
)  # fmt: skip
def test_each_firmware_is_logged_over_http(tmp_path, firmware, password):
    out = tmp_path / "plug.sqlite"
    plug = {"password": password, "watt_decimals": 2}
    # a ramp, so every refresh shows a new value (a Gen1 plug has no voltage to wander at a constant load)
    with start_emulator(firmware, RampProfile(23.4, 0.5), interval_s=0.1, plug=plug) as emu:
        logger = PlugLogger(emu.port, out, password=password).start()
        try:
            assert wait_for(lambda: logger.stats.readings >= 12 and not logger.learning)
        finally:
            logger.stop()
    trace = load_trace(out)
    assert len(trace.t_ns) == logger.stats.readings >= 12
    elapsed_s = (trace.t_ns - emu.t0_ns) / 1e9
    assert np.all(trace.power_w >= 23.4 - 0.05) and np.all(trace.power_w <= 23.4 + 0.5 * elapsed_s + 0.05)
    assert np.all(np.diff(trace.power_w) >= -0.051)  # rounding aside, the ramp only rises
    assert trace.meter.startswith(("shelly", "tasmota")) and trace.sampling == "continuous"
    # the period learned from the plug's refreshes, not the nominal second
    assert logger.period_s == pytest.approx(0.1, rel=0.5)
    assert 0 < trace.timing_u_s < 0.5  # the polls' round trip, kept in the meta
    t, e = load_energy(out)
    assert len(t) == len(trace.t_ns) and np.all(np.diff(e) >= 0)  # the plug's own counter, stored beside
    assert logger.stats.bad_frames == 0 and logger.stats.gaps == 0


@pytest.mark.slow
def test_polls_faster_than_the_plug_refreshes_are_repeats_not_readings():
    """A plug refreshing every 0.3 s: the logger never stores more readings than the refreshes it saw."""
    with start_emulator("shelly", RampProfile(10.0, 1.0), interval_s=0.3) as emu:
        logger = PlugLogger(emu.port, None).start()
        try:
            assert wait_for(lambda: logger.stats.readings >= 12, timeout_s=15)
        finally:
            logger.stop()
    first = logger.latest()
    assert first is not None
    # every stored reading is a distinct refresh: the ramp makes each refresh's value unique
    assert logger.stats.readings <= emu.frames
    assert logger.stats.repeats > 0  # answers that repeated a refresh already logged (while learning, at least)
    assert logger.period_s == pytest.approx(0.3, rel=0.3)


@pytest.mark.slow
def test_a_steady_plug_still_gives_a_reading_each_period():
    """Identical values a period apart are a steady load, not a repeat (Tasmota's whole watts at a constant
    load): they are kept, so the log has no hole."""
    with start_emulator("tasmota", ConstantProfile(8.0), interval_s=0.1) as emu:
        logger = PlugLogger(emu.port, None).start()
        try:
            assert wait_for(lambda: logger.stats.readings >= 15 and not logger.learning, timeout_s=15)
        finally:
            logger.stop()
    times = np.array(list(logger._times))
    assert np.median(np.diff(times)) / 1e9 <= 1.1 * max(logger.period_s, 0.1) + 0.05


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["timeout", "drop"])
def test_an_unreachable_plug_is_a_gap_said_once_each_way(tmp_path, capsys, fault):
    check_outage_is_one_gap(PlugLogger, "shelly", fault, tmp_path / "gap.sqlite", capsys)


def test_http_errors_are_bad_frames_and_logging_goes_on(capsys):
    with start_emulator("tasmota", RampProfile(5.0, 1.0), interval_s=0.1, faults={"error_every": 4},
                        plug={"watt_decimals": 2}) as emu:  # fmt: skip
        logger = PlugLogger(emu.port, None).start()
        try:
            assert wait_for(lambda: logger.stats.bad_frames >= 3 and logger.stats.readings >= 10)
        finally:
            logger.stop()
    assert logger.latest().power_w > 5.0 and logger.stats.gaps == 0
    assert capsys.readouterr().err.count("answered HTTP 500") == 1  # said once, then counted


@pytest.mark.slow
def test_a_plug_that_caches_its_values_is_a_gap(tmp_path, capsys):
    out = tmp_path / "stale.sqlite"
    with start_emulator("shelly", ConstantProfile(60.0), interval_s=0.1, faults={"stale": ((1.0, 3.5),)}) as emu:
        logger = PlugLogger(emu.port, out, stale_after_s=1.0).start()
        try:
            assert wait_for(lambda: logger.stats.gaps >= 1, timeout_s=15)
            count = logger.stats.readings
            assert wait_for(lambda: logger.stats.readings >= count + 3, timeout_s=15)
        finally:
            logger.stop()
    assert "a plug that caches values?" in capsys.readouterr().err
    trace = load_trace(out)
    (start, end), = trace.gaps
    # the gap starts at the last changed answer, before the freeze, and ends when values change again
    assert start <= emu.t0_ns + 1_100_000_000 and end >= emu.t0_ns + 3_400_000_000


@pytest.mark.slow
def test_the_counter_cross_check_agrees_with_the_integral(tmp_path):
    from edgebench.host.spot import counter_check

    out = tmp_path / "c.sqlite"
    with start_emulator("shelly", ConstantProfile(900.0), interval_s=0.1) as emu:
        logger = PlugLogger(emu.port, out).start()
        try:
            assert wait_for(lambda: logger.stats.readings >= 30)
        finally:
            logger.stop()
    check = counter_check(out)
    assert check is not None and check.step_j == pytest.approx(3.6)  # Gen2 counts in 0.001 Wh
    assert check.steps >= 10
    # the counter's steps and one refresh of lag bound the difference
    assert abs(check.difference) <= 2 / check.steps + 0.1 / ((check.end_ns - check.start_ns) / 1e9)


@pytest.mark.parametrize("model", ["shelly-plus-1", "shelly-1", "tasmota-relay"])
def test_a_relay_without_a_meter_is_refused(model):
    firmware = "tasmota" if model.startswith("tasmota") else "shelly-gen1" if model == "shelly-1" else "shelly"
    with start_emulator(firmware, ConstantProfile(5.0), plug={"model": model}) as emu:
        with pytest.raises(BadInput, match="is a relay without a power meter"):
            PlugLogger(emu.port, None).open()


def test_a_metering_only_shelly_is_read_through_pm1():
    with start_emulator("shelly", ConstantProfile(7.5), interval_s=0.1, plug={"model": "shelly-pm-mini"}) as emu:
        logger = PlugLogger(emu.port, None)
        logger.run(0.5)
    assert logger.firmware.method == "PM1" and logger.latest().power_w == 7.5


def test_auth_failures_and_unreachable_plugs_are_one_line(tmp_path):
    runner = CliRunner()
    with start_emulator("shelly", ConstantProfile(5.0), plug={"password": "right-one"}) as emu:
        res = runner.invoke(cli, ["meter", "log", "--meter", emu.port, "--out", str(tmp_path / "a.sqlite")])
        assert res.exit_code == 2 and "has a password: pass --meter-password" in res.output
        res = runner.invoke(cli, ["meter", "log", "--meter", emu.port, "--out", str(tmp_path / "b.sqlite"),
                                  "--meter-password", "wrong-one"])  # fmt: skip
        assert res.exit_code == 2 and "refused user 'admin' and the password given" in res.output
        assert "wrong-one" not in res.output and "right-one" not in res.output  # never printed
        res = runner.invoke(cli, ["meter", "log", "--meter", emu.port.replace("://", "://admin:x@"),
                                  "--out", str(tmp_path / "c.sqlite")])  # fmt: skip
        assert res.exit_code == 2 and "not in the URL" in res.output
    # nothing listens there now
    res = runner.invoke(cli, ["meter", "log", "--meter", emu.port, "--out", str(tmp_path / "d.sqlite")])
    assert res.exit_code == 2 and "cannot reach the plug" in res.output and "refused the connection" in res.output
    res = runner.invoke(cli, ["meter", "log", "--meter", "http://127.0.0.1:1", "--out", str(tmp_path / "e.sqlite")])
    assert res.exit_code == 2 and "shelly://HOST or tasmota://HOST" in res.output
    assert "Traceback" not in res.output


def test_options_that_do_not_apply_are_refused():
    with pytest.raises(BadInput, match="--kwh is the manual meter's counter mode"):
        open_logger("shelly://127.0.0.1:9", options=MeterOptions(kwh=True))
    with pytest.raises(BadInput, match="apply to smart plugs"):
        open_logger("/dev/ttyUSB0", options=MeterOptions(password="x"))
    with pytest.raises(BadInput, match="--calibration and --baudrate apply to serial meters"):
        open_logger("tasmota://127.0.0.1:9", calibration="cal.json", baudrate=9600)
    assert "x" not in repr(MeterOptions(password="x")).replace("password=", "")


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_probe_names_the_firmware(firmware):
    with start_emulator(firmware, ConstantProfile(12.0), interval_s=0.2) as emu:
        host = emu.port.split("://")[1]
        res = CliRunner().invoke(cli, ["meter", "probe", f"http://{host}"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"http://{host}: {firmware} (")
    assert f"--meter {emu.port}" in res.stdout


@pytest.mark.slow
def test_a_different_plug_at_the_address_after_an_outage_is_not_logged(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    first = start_emulator("shelly", ConstantProfile(4.0), interval_s=0.1, tcp_port=port)
    logger = PlugLogger(first.port, tmp_path / "swap.sqlite", timeout_s=0.3).start()
    try:
        assert wait_for(lambda: logger.stats.readings >= 3)
        first.stop()
        with start_emulator("shelly-gen1", ConstantProfile(9.0), interval_s=0.1, tcp_port=port):
            assert wait_for(lambda: logger.stats.foreign >= 1, timeout_s=15)
            stored = logger.stats.readings
        with start_emulator("shelly", ConstantProfile(4.0), interval_s=0.1, tcp_port=port):
            assert wait_for(lambda: logger.stats.readings >= stored + 3, timeout_s=15)
    finally:
        logger.stop()
    assert "a different plug answers at" in capsys.readouterr().err
    assert set(load_trace(tmp_path / "swap.sqlite").power_w.tolist()) == {4.0}


def test_emulator_faults_are_checked():
    res = CliRunner().invoke(cli, ["meter", "emulate", "--protocol", "tasmota", "--watts", "5", "--fault", "smoke:1:2"])
    assert res.exit_code == 2 and "--fault 'smoke:1:2'" in res.output
    res = CliRunner().invoke(cli, ["meter", "emulate", "--protocol", "um", "--watts", "5", "--password", "x"])
    assert res.exit_code == 2 and "apply to the smart plug emulators" in res.output


# --- end to end through measure -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("firmware", FIRMWARES)
def test_measure_through_a_smart_plug_matches_the_closed_form(tiny_engines, tmp_path, firmware):
    profile = RampProfile(40.0, 0.2)
    out = tmp_path / "m"
    # Tasmota with WattRes 2 (0.01 W): its default whole watts would be 1 W steps on a 40 W load
    with start_emulator(firmware, profile, interval_s=0.1, plug={"password": "pw", "watt_decimals": 2}) as emu:
        res = measure_through(emu.port, tiny_engines, out, "--meter-password", "pw")
    assert res.exit_code == 0, res.output
    assert "meter check: energy counter" in res.output and "pw" not in res.output.replace("pw:", "")
    check_against_closed_form(out, profile, emu.t0_ns, firmware)


def test_no_counter_check_without_a_counter_of_the_meter_s_own(tmp_path):
    """A Tweet-a-Watt's energy_wh is the decoder's own sum of its readings: comparing it with the integral would
    check edgebench against itself, so only a meter that declares a counter (a smart plug) is checked."""
    from edgebench.host.spot import counter_check

    out = tmp_path / "twa.sqlite"
    with start_emulator("tweetawatt", ConstantProfile(40.0), interval_s=0.05) as emu:
        logger = open_logger(emu.port, "tweetawatt", out).start()
        try:
            assert wait_for(lambda: logger.stats.readings >= 5)
        finally:
            logger.stop()
    assert len(load_energy(out)[0]) >= 5 and counter_check(out) is None


@pytest.mark.slow
def test_run_measures_a_command_through_a_plug(tmp_path):
    out = tmp_path / "r"
    with start_emulator("shelly", ConstantProfile(12.0), interval_s=0.05) as emu:
        res = CliRunner().invoke(cli, ["run", "--meter", emu.port, "--idle-power", "2", "--out", str(out), "--json",
                                       "--", "python3", "-c", "import time; time.sleep(1)"])  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout.splitlines()[-1])
    assert result["status"] == "ok" and result["mean_power_w"] == pytest.approx(12.0)
    assert result["net_energy_j"] == pytest.approx(10.0 * result["duration_s"], rel=0.02)
