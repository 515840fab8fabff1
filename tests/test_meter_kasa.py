"""TP-Link Kasa plugs end to end: the emulator speaks the legacy protocol (length + XOR autokey, our own codec) on
127.0.0.1, python-kasa talks to it as to a real HS110, and the KasaLogger (the plug polling loop) stores what it
reads; `measure` pairs that log with the local agent's windows."""

import asyncio
import base64
import socket

import numpy as np
import pytest
from click.testing import CliRunner
from plug_checks import check_against_closed_form, check_outage_is_one_gap, measure_through
from waiting import wait_for

from edgebench.cli import cli
from edgebench.host.logger import MeterOptions, open_logger
from edgebench.host.meters.emulate import ConstantProfile, RampProfile, start_emulator
from edgebench.host.meters.kasa import KasaLogger
from edgebench.host.meters.kasa_emulate import frame, xor_decrypt, xor_encrypt
from edgebench.host.store import load_energy, load_trace

pytest.importorskip("kasa", reason="python-kasa is in the test extra (Python 3.11 or later)")

# softScheck's published "on" command for the HS110 (tplink-smartplug, the reverse-engineering write-up), base64
SOFTSCHECK_ON = "AAAAKtDygfiL/5r31e+UtsWg1Iv5nPCR6LfEsNGlwOLYo4HyhueT9tTu36Lfog=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_xor_codec_matches_known_bytes():
    plain = b'{"system":{"set_relay_state":{"state":1}}}'
    wire = base64.b64decode(SOFTSCHECK_ON)
    assert frame(plain) == wire
    assert wire[:4] == (42).to_bytes(4, "big") and xor_decrypt(wire[4:]) == plain
    # by hand: 171 ^ 0x7b ('{') = 0xd0, 0xd0 ^ 0x22 ('"') = 0xf2, 0xf2 ^ 0x73 ('s') = 0x81
    assert xor_encrypt(b'{"s') == bytes([0xD0, 0xF2, 0x81])
    every = bytes(range(256)) * 3
    assert xor_decrypt(xor_encrypt(every)) == every
    # python-kasa's own implementation of the same cipher (an independent one) agrees
    from kasa.transports.xortransport import XorEncryption

    request = '{"emeter":{"get_realtime":{}}}'
    assert XorEncryption.encrypt(request) == frame(request.encode())
    assert XorEncryption.decrypt(xor_encrypt(b'{"a":1}')) == '{"a":1}'


@pytest.mark.parametrize("model, hw", [("kasa", "2.0"), ("kasa-hs110-v1", "1.0"), ("kasa-kp115", "1.0.8")])
def test_python_kasa_reads_the_emulated_plug(model, hw):
    """python-kasa's own device class (Device.connect, update, the Energy module) reads the emulator as a plug."""
    from kasa import Device, DeviceConfig, Module

    with start_emulator("kasa", ConstantProfile(23.4), interval_s=0.1, plug={"model": model}) as emu:
        host, port = emu.port.split("://")[1].split(":")

        async def read() -> tuple:
            dev = await Device.connect(config=DeviceConfig(host=host, port_override=int(port)))
            try:
                energy = dev.modules[Module.Energy]
                return dev.model, dev.hw_info["hw_ver"], dev.has_emeter, energy.current_consumption, energy.voltage
            finally:
                await dev.disconnect()

        name, hw_ver, metering, watts, volts = asyncio.run(read())
    assert name == ("KP115" if model == "kasa-kp115" else "HS110") and hw_ver == hw and metering
    assert watts == pytest.approx(23.4, abs=1e-3) and volts == pytest.approx(230.0, abs=1.0)


@pytest.mark.parametrize("model", ["kasa", "kasa-hs110-v1"])
def test_the_logger_stores_each_refresh_once(tmp_path, model):
    out = tmp_path / "kasa.sqlite"
    with start_emulator("kasa", RampProfile(23.4, 0.5), interval_s=0.1, plug={"model": model}) as emu:
        logger = open_logger(emu.port, out=out).start()
        try:
            assert wait_for(lambda: logger.stats.readings >= 12 and not logger.learning, timeout_s=20)
        finally:
            logger.stop()
    trace = load_trace(out)
    assert len(trace.t_ns) == logger.stats.readings >= 12
    # every stored reading is a distinct refresh (the ramp makes each unique): polls between them are repeats
    assert logger.stats.readings <= emu.frames and logger.stats.repeats > 0
    assert len(set(trace.power_w.tolist())) == len(trace.power_w)
    elapsed_s = (trace.t_ns - emu.t0_ns) / 1e9
    assert np.all(trace.power_w >= 23.4 - 1e-3) and np.all(trace.power_w <= 23.4 + 0.5 * elapsed_s + 1e-3)
    assert trace.meter == "kasa HS110(EU) hw " + ("1.0" if model.endswith("v1") else "2.0")
    assert logger.period_s == pytest.approx(0.1, rel=0.5)
    assert 0 < trace.timing_u_s < 0.5 and trace.resolution_w == pytest.approx(0.001)
    t, e = load_energy(out)
    assert len(t) == len(trace.t_ns) and np.all(np.diff(e) >= 0)  # the plug's counter (Wh), stored beside
    assert logger.stats.bad_frames == 0 and logger.stats.gaps == 0


def test_meter_log_through_the_cli(tmp_path):
    out = tmp_path / "log.sqlite"
    with start_emulator("kasa", RampProfile(10.0, 1.0), interval_s=0.1) as emu:
        res = CliRunner().invoke(cli, ["meter", "log", "--meter", emu.port, "--out", str(out), "--duration", "1.5"])
    assert res.exit_code == 0, res.output
    stored = len(load_trace(out).t_ns)
    assert stored >= 2 and f"{stored} readings, 0 bad frames, 0 gaps" in res.output
    assert load_trace(out).meter == "kasa HS110(EU) hw 2.0"


def test_error_answers_are_bad_frames_and_logging_goes_on(capsys):
    with start_emulator("kasa", RampProfile(5.0, 1.0), interval_s=0.1, faults={"error_every": 4}) as emu:
        logger = open_logger(emu.port).start()
        try:
            assert wait_for(lambda: logger.stats.bad_frames >= 3 and logger.stats.readings >= 10, timeout_s=20)
        finally:
            logger.stop()
    assert logger.latest().power_w > 5.0 and logger.stats.gaps == 0
    assert capsys.readouterr().err.count("get_realtime answered err_code -3") == 1  # said once, then counted


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["timeout", "drop"])
def test_an_outage_is_a_gap_said_once_each_way(tmp_path, capsys, fault):
    check_outage_is_one_gap(KasaLogger, "kasa", fault, tmp_path / "gap.sqlite", capsys)


def test_an_unreachable_plug_is_one_line(tmp_path):
    port = _free_port()  # nothing listens there
    res = CliRunner().invoke(cli, ["meter", "log", "--meter", f"kasa://127.0.0.1:{port}", "--out",
                                   str(tmp_path / "x.sqlite")])  # fmt: skip
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"cannot reach the Kasa plug kasa://127.0.0.1:{port}" in line and "refused the connection" in line
    assert "KLAP" in line and "Tapo" in line and "not supported" in line


def test_a_plug_without_a_meter_is_refused_in_one_line(tmp_path):
    with start_emulator("kasa", ConstantProfile(5.0), plug={"model": "kasa-hs100"}) as emu:
        res = CliRunner().invoke(cli, ["meter", "log", "--meter", emu.port, "--out", str(tmp_path / "r.sqlite")])
        probe = CliRunner().invoke(cli, ["meter", "probe", emu.port])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.count("\n") == 1
    assert f"{emu.port} is a HS100(EU) without an energy meter" in res.output and "HS110, KP115" in res.output
    assert probe.exit_code == 0, probe.output
    assert probe.stdout.startswith(f"{emu.port}: HS100(EU) (hw 2.0") and "no energy meter" in probe.stdout


@pytest.mark.parametrize("model, hw", [("kasa", "2.0"), ("kasa-hs110-v1", "1.0")])
def test_probe_names_the_plug(model, hw):
    with start_emulator("kasa", ConstantProfile(12.5), interval_s=0.2, plug={"model": model}) as emu:
        res = CliRunner().invoke(cli, ["meter", "probe", emu.port])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"{emu.port}: HS110(EU) (hw {hw}, firmware 1.5.4")
    assert "meters: 12.5 W now" in res.stdout and f"--meter {emu.port}" in res.stdout


def test_urls_and_options_that_do_not_apply_are_refused():
    runner = CliRunner()
    res = runner.invoke(cli, ["meter", "probe", "kasa://"])
    assert res.exit_code == 2 and "no host: give kasa://192.168.1.50" in res.output
    res = runner.invoke(cli, ["meter", "emulate", "--protocol", "kasa", "--watts", "5", "--password", "x"])
    assert res.exit_code == 2 and "legacy protocol has no password" in res.output
    from edgebench.errors import BadInput

    with pytest.raises(BadInput, match="legacy protocol has no password"):
        open_logger("kasa://127.0.0.1", options=MeterOptions(password="x"))
    with pytest.raises(BadInput, match="--protocol applies to serial meters"):
        open_logger("kasa://127.0.0.1", protocol="um")
    assert open_logger("kasa://10.0.0.7").where.port == 9999  # the legacy protocol's port by default


@pytest.mark.slow
def test_measure_through_a_kasa_plug_matches_the_closed_form(tiny_engines, tmp_path):
    profile = RampProfile(40.0, 0.2)
    out = tmp_path / "m"
    with start_emulator("kasa", profile, interval_s=0.1) as emu:
        res = measure_through(emu.port, tiny_engines, out)
    assert res.exit_code == 0, res.output
    check_against_closed_form(out, profile, emu.t0_ns, "kasa")
