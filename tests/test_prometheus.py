"""Live watts for Prometheus: scraped over loopback while a real logger runs, parsed with prometheus_client's
own parser; the window open during `measure`; the loopback rule; the Grafana dashboard's queries."""

import json
import re
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgebench.cli import cli, edgebench_argv
from edgebench.errors import BadInput
from edgebench.host.logger import MeterLogger
from edgebench.host.meters.emulate import ConstantProfile, start_emulator
from edgebench.host.store import load_trace

pytest.importorskip("prometheus_client", reason="the prometheus extra (in the test extra) is not installed")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from waiting import wait_for

from edgebench.host.prometheus import parse_address, serve  # noqa: E402

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-edgebench.json"


def _scrape(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def _value(samples, name):
    (sample,) = samples[name]
    return sample.value


def test_a_running_logger_is_scraped(tmp_path):
    with start_emulator("lines", ConstantProfile(42.5), interval_s=0.05, faults={"garbage_every": 5}) as emu:
        logger = MeterLogger(emu.port, "lines", tmp_path / "p.sqlite").start()
        exporter = serve(logger, "127.0.0.1:0")
        try:
            assert exporter.url.startswith("http://127.0.0.1:")
            assert wait_for(lambda: logger.stats.readings >= 12 and logger.stats.bad_frames >= 2)
            before = _scrape(exporter.url)
            exporter.window("[1/2] resnet18_1_224_224_fp32 window 1/3", "run")
            count = logger.stats.readings
            assert wait_for(lambda: logger.stats.readings >= count + 4)
            after = _scrape(exporter.url)
        finally:
            exporter.close()
            logger.stop()
    power = before["edgebench_meter_power_watts"][0]
    assert power.value == 42.5 and power.labels == {"meter": "lines", "url": emu.port}
    assert _value(after, "edgebench_meter_readings_total") > _value(before, "edgebench_meter_readings_total") >= 12
    assert _value(after, "edgebench_meter_bad_frames_total") >= 2
    # the energy counter is the readings' integral: 42.5 W over the span between the first and latest reading
    latest_s = _value(after, "edgebench_meter_last_reading_timestamp_seconds")
    assert latest_s == pytest.approx(time.time(), abs=5)
    energy = _value(after, "edgebench_meter_energy_joules_total")
    first_s = int(load_trace(tmp_path / "p.sqlite").t_ns[0]) / 1e9
    assert energy == pytest.approx(42.5 * (latest_s - first_s), rel=1e-6)
    (info,) = after["edgebench_window_info"]
    assert info.labels == {"window": "[1/2] resnet18_1_224_224_fp32 window 1/3", "kind": "run"}
    (idle,) = before["edgebench_window_info"]
    assert idle.labels["kind"] == "none"


def test_off_loopback_needs_the_explicit_flag():
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    assert parse_address("localhost:0")[0] == "localhost"
    with pytest.raises(BadInput, match="reachable from other machines.*--prometheus-remote"):
        parse_address("0.0.0.0:9464")
    with pytest.raises(BadInput, match="--prometheus-remote"):
        parse_address("192.0.2.10:9464")
    assert parse_address("0.0.0.0:9464", remote=True) == ("0.0.0.0", 9464)
    for bad in ("9464", "127.0.0.1:99999", "127.0.0.1:port"):
        with pytest.raises(BadInput, match="--prometheus"):
            parse_address(bad)
    res = CliRunner().invoke(cli, ["meter", "log", "--meter", "manual", "--out", "/tmp/never.sqlite",
                                   "--prometheus", "0.0.0.0:9464"])  # fmt: skip
    assert res.exit_code == 2 and "pass --prometheus-remote" in res.output


def test_meter_log_serves_while_it_logs(tmp_path):
    with start_emulator("lines", ConstantProfile(7.0), interval_s=0.05) as emu:
        proc = subprocess.Popen(
            [*edgebench_argv(), "meter", "log", "--meter", emu.port, "--protocol", "lines", "--out",
             str(tmp_path / "l.sqlite"), "--prometheus", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            url = None
            for line in proc.stderr:
                match = re.search(r"live watts for Prometheus at (http://\S+)", line)
                if match:
                    url = match.group(1)
                    break
            assert url is not None
            assert wait_for(lambda: _value(_scrape(url), "edgebench_meter_readings_total") >= 5)
            assert _value(_scrape(url), "edgebench_meter_power_watts") == 7.0
        finally:
            proc.terminate()
            proc.wait(10)
    assert proc.returncode == 0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_measure_says_which_window_is_open(tiny_engines, tmp_path):
    port = _free_port()
    seen = set()
    stop = threading.Event()

    def scrape_forever():
        while not stop.is_set():
            try:
                for sample in _scrape(f"http://127.0.0.1:{port}/metrics").get("edgebench_window_info", []):
                    seen.add((sample.labels["kind"], sample.labels["window"]))
            except OSError:
                pass  # not listening yet, or already closed
            time.sleep(0.05)

    scraper = threading.Thread(target=scrape_forever, daemon=True)
    scraper.start()
    with start_emulator("lines", ConstantProfile(9.0), interval_s=0.05) as emu:
        res = CliRunner().invoke(cli, [
            "measure", "--meter", emu.port, "--protocol", "lines", "--engines", str(tiny_engines), "--duration",
            "1", "--idle", "1", "--repeat", "1", "--warmup", "0.2", "--sensor", "none", "--threads", "1", "--out",
            str(tmp_path / "m"), "--prometheus", f"127.0.0.1:{port}",
        ], catch_exceptions=False)  # fmt: skip
    stop.set()
    scraper.join(5)
    assert res.exit_code == 0, res.output
    kinds = {kind for kind, _ in seen}
    assert {"idle", "run"} <= kinds
    windows = " ".join(w for _, w in seen)
    assert "squeezenet1_1_1_32_32_fp32" in windows and "squeezenet1_1_2_32_32_fp32" in windows
    with pytest.raises(OSError):  # the endpoint closes with the session
        _scrape(f"http://127.0.0.1:{port}/metrics")


def test_the_grafana_dashboard_asks_for_what_is_served(tmp_path):
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    asked = set(re.findall(r"edgebench_[a-z_]+", " ".join(exprs)))
    with start_emulator("lines", ConstantProfile(3.0), interval_s=0.05) as emu:
        logger = MeterLogger(emu.port, "lines", None).start()
        exporter = serve(logger, "127.0.0.1:0")
        try:
            assert wait_for(lambda: logger.stats.readings >= 2)
            served = set(_scrape(exporter.url))
        finally:
            exporter.close()
            logger.stop()
    assert asked and asked <= served, asked - served
