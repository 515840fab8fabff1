"""`edgebench sensors`, `edgebench rails --from-log` and `bench --sensor` through the real command line."""

import csv
import io
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from test_sensors import make_nano_iio, make_orin_hwmon, write_proc

from edgebench.cli import cli

DATA = Path(__file__).parent / "data" / "tegrastats"


def test_sensors_on_a_fake_orin_tree(tmp_path):
    make_orin_hwmon(tmp_path)
    write_proc(tmp_path, busy=10, idle=10)
    missing = str(tmp_path / "nothing")
    args = ["sensors", "--sysfs-root", str(tmp_path), "--tegrastats", missing, "--vcgencmd", missing]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ina3221     used       total: VDD_IN" in out
    assert "estimate    available" in out and "ina3221 comes first" in out
    assert "tegrastats  skipped" in out and "not found" in out
    assert "Used: ina3221, total = VDD_IN" in out
    assert "VDD_CPU_GPU_CV" in out and "5000.0 mW  (VDD_IN)" in out

    data = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)
    assert data["used"] == "ina3221" and data["total_rule"] == "VDD_IN"
    assert data["reading"]["rails_mw"] == {"VDD_IN": 5000.0, "VDD_CPU_GPU_CV": 500.0, "VDD_SOC": 1500.0}
    assert [s["name"] for s in data["sources"]][:3] == ["ina3221", "jtop", "tegrastats"]


def test_sensors_with_nothing_present(tmp_path):
    missing = str(tmp_path / "nothing")
    result = CliRunner().invoke(
        cli, ["sensors", "--sysfs-root", str(tmp_path), "--tegrastats", missing, "--vcgencmd", missing, "--json"]
    )
    data = json.loads(result.output)
    assert data["used"] is None and data["reading"] is None
    assert all(s["status"] == "skipped" and s["detail"] for s in data["sources"])


def test_rails_table_from_a_timestamped_log():
    result = CliRunner().invoke(cli, ["rails", "--from-log", str(DATA / "orin-nano-r36.txt")])
    assert result.exit_code == 0, result.output
    assert "Total: VDD_IN" in result.output
    # 4.968 W for 1 s ramps to 9.968 W and back: two trapezoids of (4.968 + 9.968) / 2 J
    assert "Energy over 2.000 s: 14.936 J, mean 7.468 W" in result.output


def test_rails_json_and_csv_from_an_untimed_log():
    log = str(DATA / "jetson-nano-r32.txt")
    result = CliRunner().invoke(cli, ["rails", "--from-log", log, "--interval-ms", "500", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total_rule"] == "POM_5V_IN" and "500 ms" in data["time_source"]
    assert [s["total_mw"] for s in data["samples"]] == [4531.0, 4400.0, 2000.0]
    expected_j = 0.5 * (4.531 + 4.400) / 2 + 0.5 * (4.400 + 2.000) / 2
    assert abs(data["energy"]["energy_j"] - expected_j) < 1e-9
    assert abs(data["energy"]["rails_j"]["POM_5V_GPU"] - (0.5 * 2.113 / 2 + 0.5 * 1.100 / 2)) < 1e-9

    out = CliRunner().invoke(cli, ["rails", "--from-log", log, "--interval-ms", "500", "--format", "csv"]).output
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[1] == {
        "t_ns": "500000000", "POM_5V_IN_mw": "4400.0", "POM_5V_GPU_mw": "1000.0", "POM_5V_CPU_mw": "500.0",
        "total_mw": "4400.0",
    }


def test_rails_bad_input_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["rails", "--from-log", str(DATA / "jetson-nano-r32.txt")])
    assert result.exit_code == 2
    assert "pass --interval-ms" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["rails", "--from-log", str(tmp_path / "none.log")])
    assert result.exit_code == 2 and "no such tegrastats log" in result.output


def test_sensors_agx_without_input_rail_says_sum(tmp_path):
    dev = make_nano_iio(tmp_path)
    (dev / "rail_name_0").write_text("GPU\n")
    (dev / "rail_name_1").write_text("CPU\n")
    (dev / "rail_name_2").write_text("SOC\n")
    missing = str(tmp_path / "nothing")
    out = CliRunner().invoke(
        cli, ["sensors", "--sysfs-root", str(tmp_path), "--tegrastats", missing, "--vcgencmd", missing]
    ).output
    assert "total = sum of rails (no input rail)" in out
    assert f"{4531 + 1113 + 539:.1f} mW  (sum of rails (no input rail))" in out


def _engines(tmp_path_factory):
    from edgebench.engines.build import build_sweep
    from edgebench.engines.sweep import Sweep

    out = tmp_path_factory.mktemp("sensor-engines")
    report = build_sweep(Sweep(backbones=("squeezenet1_1",), batches=(1,), resolutions=((32, 32),)), out)
    assert report.ok
    return out


def test_bench_with_ina3221_attaches_rail_energy(tmp_path, tmp_path_factory):
    from edgebench.records import read_run_records

    engines = _engines(tmp_path_factory)
    root = tmp_path / "root"
    make_orin_hwmon(root)
    out = tmp_path / "runs.jsonl"
    result = CliRunner().invoke(cli, [
        "bench", str(engines), "--duration", "0.2", "--warmup", "1", "--threads", "1", "--out", str(out),
        "--sensor", "ina3221", "--sensor-root", str(root), "--sensor-period-ms", "5",
    ])
    assert result.exit_code == 0, result.output
    assert "on-board power: ina3221 (total = VDD_IN), every 5 ms" in result.output
    assert "On-board:" in result.output and "mean 5.000 W" in result.output
    (record,) = read_run_records(out)
    assert record.sensor == "ina3221" and len(record.power_samples) >= 3
    assert record.rail_energy is not None and record.rail_energy.total_rule == "VDD_IN"
    window_s = (record.window_end_ns - record.window_start_ns) / 1e9
    assert abs(record.rail_energy.energy_j - 5.0 * window_s) < 1e-6 * 5.0 * window_s  # constant 5 W on VDD_IN


def test_bench_named_sensor_missing_is_exit_2(tmp_path, tmp_path_factory):
    engines = _engines(tmp_path_factory)
    result = CliRunner().invoke(
        cli, ["bench", str(engines), "--iterations", "1", "--sensor", "ina3221", "--sensor-root", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "sensor ina3221: no INA3221 driver" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["bench", str(engines), "--iterations", "1", "--sensor", "wattmeter"])
    assert result.exit_code == 2 and "unknown sensor 'wattmeter'" in result.output


@pytest.mark.slow
def test_bench_with_tegrastats_through_a_sudo_command_line(tmp_path, tmp_path_factory, monkeypatch):
    from test_tegrastats import _on_path

    from edgebench.records import read_run_records

    engines = _engines(tmp_path_factory)
    _on_path(tmp_path, monkeypatch, DATA / "xavier-nx-r35.txt")  # fake sudo and tegrastats first on PATH
    out = tmp_path / "runs.jsonl"
    result = CliRunner().invoke(cli, [
        # stress runs saw this window without rail energy (at 0.3 s and at 2 s): the sampler's last read got a line
        # that arrived before the window's end; Sampler.stop now reads on (tests/test_sampler.py, line-buffered)
        "bench", str(engines), "--duration", "2", "--warmup", "1", "--threads", "1", "--out", str(out),
        "--sensor", "tegrastats", "--tegrastats", "sudo -n tegrastats", "--sensor-period-ms", "20",
    ])
    assert result.exit_code == 0, result.output
    assert "on-board power: tegrastats (total = VDD_IN), every 20 ms" in result.output
    assert (tmp_path / "sudo.argv").read_text() == "-n tegrastats --interval 20"
    (record,) = read_run_records(out)
    assert record.sensor == "tegrastats" and record.rail_energy is not None
    window_s = (record.window_end_ns - record.window_start_ns) / 1e9
    assert abs(record.rail_energy.energy_j - 5.079 * window_s) < 1e-6 * 5.079 * window_s  # constant 5079 mW


def test_rails_log_where_a_rail_comes_and_goes(tmp_path):
    log = tmp_path / "mixed.log"
    log.write_text(
        "RAM 1/2MB CPU [1%@100] POM_5V_IN 4000/4000 POM_5V_GPU 1000/1000\n"
        "RAM 1/2MB CPU [1%@100] POM_5V_IN 4000/4000\n"
        "RAM 1/2MB CPU [1%@100] POM_5V_IN 4000/4000 POM_5V_GPU 1000/1000\n"
    )
    result = CliRunner().invoke(cli, ["rails", "--from-log", str(log), "--interval-ms", "1000", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["energy"]["energy_j"] == 8.0
    assert data["energy"]["rails_j"]["POM_5V_GPU"] == 2.0  # integrated over the lines that have it


# --- hostile logs and options (issue 9, items 6 and 10) ------------------------------------------------------


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)


def test_rails_interval_must_be_finite_positive_and_sane():
    log = str(DATA / "jetson-nano-r32.txt")
    for bad in ("nan", "inf", "-inf", "1e300", "1e309", "0", "-5", "3600001"):
        result = CliRunner().invoke(cli, ["rails", "--from-log", log, "--interval-ms", bad])
        assert result.exit_code == 2, (bad, result.output)
        _no_traceback(result)
        assert "--interval-ms" in result.output
    ok = CliRunner().invoke(cli, ["rails", "--from-log", log, "--interval-ms", "3600000"])
    assert ok.exit_code == 0, ok.output


def test_rails_interval_option_is_a_finite_float_type():
    from edgebench.agent.sensors.cli import rails, sensors
    from edgebench.options import FiniteFloat

    for command in (rails, sensors):
        for param in command.params:
            if isinstance(param.type, click.ParamType) and param.type.name in ("float", "float range"):
                assert isinstance(param.type, FiniteFloat), (command.name, param.name)


@pytest.mark.parametrize("year", ["0001", "9999"])
def test_rails_log_with_absurd_years_counts_bad_lines(tmp_path, year):
    lines = [ln for ln in (DATA / "orin-nano-r36.txt").read_text().splitlines() if not ln.startswith("#")]
    log = tmp_path / "years.log"
    log.write_text(f"12-31-{year} 23:59:58 VDD_IN 1/1\n{lines[0]}\n{lines[1]}\n12-31-{year} 23:59:59 VDD_IN 1/1\n")
    result = CliRunner().invoke(cli, ["rails", "--from-log", str(log), "--json"])
    assert result.exit_code == 0, result.output
    _no_traceback(result)
    assert "skipped 2 bad lines, the first at line 1" in result.stderr and f"year {int(year)}" in result.stderr
    data = json.loads(result.stdout)
    assert data["bad_lines"] == 2 and data["first_bad_line"] == 1
    assert data["energy"]["energy_j"] == pytest.approx((4.968 + 9.968) / 2)
    only_bad = tmp_path / "only.log"
    only_bad.write_text(f"12-31-{year} 23:59:58 VDD_IN 1/1\n12-31-{year} 23:59:59 VDD_IN 1/1\n")
    result = CliRunner().invoke(cli, ["rails", "--from-log", str(only_bad)])
    assert result.exit_code == 2 and "no tegrastats lines in it (2 bad lines" in result.output
    _no_traceback(result)


def test_rails_a_400_digit_rail_is_a_bad_line_never_inf(tmp_path):
    log = tmp_path / "digits.log"
    log.write_text(f"VDD_IN {'9' * 400}/1\nVDD_IN 1000/1000\nRAM {'9' * 5000}/1MB CPU [1%@1]\nVDD_IN 3000/1000\n")
    result = CliRunner().invoke(cli, ["rails", "--from-log", str(log), "--interval-ms", "1000", "--json"])
    assert result.exit_code == 0, result.output
    _no_traceback(result)
    data = json.loads(result.stdout)
    assert data["bad_lines"] == 2 and data["energy"]["energy_j"] == pytest.approx(2.0)
    assert "skipped 2 bad lines, the first at line 1 (rail VDD_IN mW has 400 digits" in result.stderr


@pytest.mark.slow
def test_rails_a_10_mb_hostile_line_is_skipped_fast(tmp_path):
    import time

    good = [ln for ln in (DATA / "xavier-nx-r35.txt").read_text().splitlines() if not ln.startswith("#")][0]
    log = tmp_path / "hostile.log"
    log.write_text(f"{good}\n{'CPU [' * 2_000_000}\n{good}\n")
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli, ["rails", "--from-log", str(log), "--interval-ms", "100"])
    assert time.perf_counter() - t0 < 5.0
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad line, the first at line 2 (longer than 16384 characters" in result.stderr
