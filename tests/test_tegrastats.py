"""tegrastats parsing on every generation's lines, recorded logs, and the live sensor on a fake executable."""

import datetime as dt
import json
import os
import sys
from pathlib import Path

import pytest
from programs import write_program

from edgebench.agent.sensors.base import SUM_RULE, SensorUnavailable
from edgebench.agent.sensors.tegrastats import TegrastatsSensor, parse_line, read_log
from edgebench.errors import BadInput

DATA = Path(__file__).parent / "data" / "tegrastats"
REFERENCE = Path("/work/shared/reference/tegrastats")


def _lines(name: str) -> list[str]:
    return [ln for ln in (DATA / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def test_nano_r32_bare_numbers_and_placeholders():
    line = parse_line(_lines("jetson-nano-r32.txt")[0])
    assert line.time is None
    assert (line.ram_used_mb, line.ram_total_mb) == (1504, 3956)
    assert line.cpu_load_pct == (44.0, 22.0, 26.0, 14.0)
    assert line.cpu_freq_mhz == (1479,) * 4
    assert (line.gpu_load_pct, line.gpu_freq_mhz) == (86.0, (921,))
    assert line.rails_cur_mw == {"POM_5V_IN": 4531.0, "POM_5V_GPU": 1113.0, "POM_5V_CPU": 539.0}
    assert line.rails_avg_mw == {"POM_5V_IN": 3285.0, "POM_5V_GPU": 213.0, "POM_5V_CPU": 722.0}
    assert (line.total_rule, line.total_mw) == ("POM_5V_IN", 4531.0)
    assert "PMIC" not in line.temps_c  # 100C placeholder
    assert line.temps_c["GPU"] == 42.5 and line.temps_c["thermal"] == 42.5
    # NVDEC 716 / APE 25 are clocks, not rails; RAM/IRAM pairs are not rails either
    assert set(line.rails_cur_mw) == {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}


def test_off_cores_and_off_temperature():
    third = parse_line(_lines("jetson-nano-r32.txt")[2])
    assert third.cpu_load_pct == (10.0, 5.0, None, None)
    assert third.cpu_freq_mhz == (1479, 1479, None, None)
    assert "GPU" not in third.temps_c  # -256C = sensor off
    assert (third.gpu_load_pct, third.gpu_freq_mhz) == (0.0, (76,))


def test_orin_nano_r36_timestamp_lowercase_temps_bare_gpu():
    line = parse_line(_lines("orin-nano-r36.txt")[0])
    assert line.time == dt.datetime(2025, 1, 4, 16, 2, 59)
    assert (line.gpu_load_pct, line.gpu_freq_mhz) == (0.0, ())
    assert line.temps_c["tj"] == 46.312 and line.temps_c["cpu"] == 45.875
    assert line.rails_cur_mw == {"VDD_IN": 4968.0, "VDD_CPU_GPU_CV": 436.0, "VDD_SOC": 1708.0}
    assert (line.total_rule, line.total_mw) == ("VDD_IN", 4968.0)
    assert line.ram_used_mb == 1273 and len(line.cpu_load_pct) == 6


def test_xavier_nx_r35_units_brackets_off():
    line = parse_line(_lines("xavier-nx-r35.txt")[0])
    assert line.cpu_load_pct[-2:] == (None, None)
    assert line.gpu_freq_mhz == (510,)
    assert line.temps_c["PMIC"] == 50.0  # only PMIC@100C is the placeholder
    assert (line.total_rule, line.total_mw) == ("VDD_IN", 5079.0)
    assert line.rails_avg_mw["VDD_SOC"] == 1104.0


def test_agx_orin_no_input_rail_sums_connected_rails():
    line = parse_line(_lines("agx-orin-r35-constructed.txt")[0])
    assert line.total_rule == SUM_RULE
    assert line.total_mw == 2774 + 554 + 4038 + 402  # NC left out
    assert "NC" not in line.rails_cur_mw  # an unconnected channel is not a rail
    assert line.gpu_freq_mhz == (305, 305)
    assert "CV0" not in line.temps_c and line.temps_c["Tboard"] == 33.0
    assert line.cpu_load_pct.count(None) == 8


def test_triples_keep_current_not_average_or_max():
    line = parse_line(_lines("jetpack7-triples-constructed.txt")[0])
    assert line.rails_cur_mw["VDD_IN"] == 20000.0
    assert line.rails_avg_mw["VDD_IN"] == 18000.0
    assert line.rails_max_mw["VDD_IN"] == 25000.0
    assert line.total_mw == 20000.0 and line.gpu_load_pct == 12.0


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared reference lines not present on this machine")
def test_every_shared_reference_line_parses_with_a_total():
    for path in sorted(REFERENCE.glob("*.txt")):
        for raw in path.read_text().splitlines():
            if raw.strip() and not raw.startswith("#"):
                line = parse_line(raw)
                assert line.total_rule in ("VDD_IN", "POM_5V_IN"), path.name
                assert line.total_mw > 0


def test_not_a_tegrastats_line_is_bad_input():
    with pytest.raises(BadInput, match="not a tegrastats line"):
        parse_line("hello world")
    with pytest.raises(BadInput, match="impossible date"):
        parse_line("13-45-2025 16:02:59 VDD_IN 1mW/1mW")


def test_log_with_timestamps_uses_them():
    log = read_log(DATA / "orin-nano-r36.txt")
    assert "timestamps in the lines" in log.time_source
    assert [s.t_ns - log.samples[0].t_ns for s in log.samples] == [0, 1_000_000_000, 2_000_000_000]
    assert [s.total_mw for s in log.samples] == [4968.0, 9968.0, 4968.0]
    assert log.total_rule == "VDD_IN"


def test_log_without_timestamps_needs_interval(tmp_path):
    with pytest.raises(BadInput, match="--interval-ms"):
        read_log(DATA / "jetson-nano-r32.txt")
    log = read_log(DATA / "jetson-nano-r32.txt", interval_ms=250)
    assert [s.t_ns for s in log.samples] == [0, 250_000_000, 500_000_000]
    assert "250 ms" in log.time_source
    with pytest.raises(BadInput, match="no such tegrastats log"):
        read_log(tmp_path / "missing.log")


def test_log_with_repeated_seconds_needs_interval(tmp_path):
    line = _lines("orin-nano-r36.txt")[0]
    log_file = tmp_path / "fast.log"
    log_file.write_text(f"{line}\n{line}\n")
    with pytest.raises(BadInput, match="timestamps repeat"):
        read_log(log_file)
    log = read_log(log_file, interval_ms=100)
    assert log.samples[1].t_ns - log.samples[0].t_ns == 100_000_000
    assert log.samples[0].t_ns == int(dt.datetime(2025, 1, 4, 16, 2, 59).timestamp() * 1e9)


def _fake_tegrastats(tmp_path: Path, source: Path, exit_after: int | None = None) -> str:
    """An executable that behaves like tegrastats: prints the lines of `source` every --interval ms."""
    script = tmp_path / "tegrastats"
    limit = "None" if exit_after is None else str(exit_after)
    write_program(script,
        f"#!{sys.executable}\n"
        "import itertools, sys, time\n"
        "args = sys.argv[1:]\n"
        "interval = int(args[args.index('--interval') + 1]) / 1000 if '--interval' in args else 1.0\n"
        f"lines = [l for l in open({str(source)!r}) if l.strip() and not l.startswith('#')]\n"
        f"limit = {limit}\n"
        "for i, line in enumerate(itertools.cycle(lines)):\n"
        "    if limit is not None and i >= limit:\n"
        "        sys.stderr.write('fake tegrastats: out of lines\\n'); sys.exit(3)\n"
        "    sys.stdout.write(line); sys.stdout.flush(); time.sleep(interval)\n"
    )
    return str(script)


def test_live_sensor_through_a_real_subprocess(tmp_path):
    cmd = _fake_tegrastats(tmp_path, DATA / "orin-nano-r36.txt")
    sensor = TegrastatsSensor(cmd, interval_ms=20)
    try:
        assert sensor.rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
        assert sensor.total_rule == "VDD_IN"
        samples = [sensor.read() for _ in range(4)]
    finally:
        sensor.close()
    assert all(b.t_ns > a.t_ns for a, b in zip(samples, samples[1:], strict=False))
    assert {s.total_mw for s in samples} <= {4968.0, 9968.0}
    assert sensor._proc.poll() is not None  # closed means the subprocess is gone


def test_live_sensor_reports_a_dead_process(tmp_path):
    from edgebench.errors import DeviceError

    cmd = _fake_tegrastats(tmp_path, DATA / "xavier-nx-r35.txt", exit_after=2)
    sensor = TegrastatsSensor(cmd, interval_ms=10)
    try:
        with pytest.raises(DeviceError, match="stopped printing.*exited with 3: fake tegrastats: out of lines"):
            for _ in range(5):
                sensor.read()
    finally:
        sensor.close()


def test_missing_command_is_a_reason(tmp_path):
    with pytest.raises(SensorUnavailable, match="not found"):
        TegrastatsSensor(str(tmp_path / "nope"), interval_ms=10)
    assert not os.path.exists(tmp_path / "nope")


def test_sampler_on_the_live_sensor_covers_a_window(tmp_path):
    import time

    from test_sampler import Reads

    from edgebench.agent.sensors.sampler import Sampler

    cmd = _fake_tegrastats(tmp_path, DATA / "xavier-nx-r35.txt")
    sensor = Reads(TegrastatsSensor(cmd, interval_ms=20))
    try:
        sampler = Sampler(sensor, period_s=0.02)
        sampler.start()
        start = time.time_ns()
        sensor.wait_for(3)  # a reading of the sampler's thread inside the window
        end = time.time_ns()
        samples = sampler.stop()
    finally:
        sensor.close()
    assert len(samples) >= 3
    energy = sampler.window_energy(samples, start, end)
    assert energy is not None and energy.total_rule == "VDD_IN"
    assert energy.energy_j == pytest.approx(5.079 * (end - start) / 1e9, rel=1e-6)  # constant 5079 mW


def _on_path(tmp_path: Path, monkeypatch, source: Path) -> Path:
    """A fake `tegrastats` and a fake `sudo` (records its argv, then runs it) in a folder put first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    made = Path(_fake_tegrastats(tmp_path, source))
    made.rename(bindir / "tegrastats")
    sudo = bindir / "sudo"
    write_program(sudo,
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"open({str(tmp_path / 'sudo.argv')!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        "args = [a for a in sys.argv[1:] if a != '-n']\n"
        "os.execvp(args[0], args)\n"
    )
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


def test_command_line_is_split_like_a_shell(tmp_path, monkeypatch):
    _on_path(tmp_path, monkeypatch, DATA / "orin-nano-r36.txt")
    sensor = TegrastatsSensor("sudo -n tegrastats", interval_ms=20)  # found on PATH, not by an absolute path
    try:
        assert sensor.rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
        assert sensor.read().total_mw in (4968.0, 9968.0)
    finally:
        sensor.close()
    assert (tmp_path / "sudo.argv").read_text() == "-n tegrastats --interval 20"


def test_quoted_path_with_a_space(tmp_path):
    folder = tmp_path / "my tools"
    folder.mkdir()
    cmd = _fake_tegrastats(folder, DATA / "xavier-nx-r35.txt")
    sensor = TegrastatsSensor(f"'{cmd}'", interval_ms=20)
    try:
        assert sensor.read().total_mw == 5079.0
    finally:
        sensor.close()


def test_malformed_or_empty_command_is_bad_input(tmp_path):
    from edgebench.agent.sensors.base import probe

    with pytest.raises(BadInput, match="cannot be split.*check its quotes"):
        probe("tegrastats", tegrastats_cmd="sudo 'tegrastats")
    with pytest.raises(BadInput, match="tegrastats command is empty"):
        probe("tegrastats", tegrastats_cmd="  ")
    with pytest.raises(BadInput, match="`no-such-tegrastats-here` not found on PATH"):
        probe("tegrastats", tegrastats_cmd="no-such-tegrastats-here --verbose")


def test_sensors_cli_uses_a_sudo_command_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from edgebench.cli import cli

    _on_path(tmp_path, monkeypatch, DATA / "xavier-nx-r35.txt")
    root = tmp_path / "root"  # no INA3221, no RAPL, no /proc: tegrastats is the first usable source
    root.mkdir()
    args = ["sensors", "--sysfs-root", str(root), "--tegrastats", "sudo -n tegrastats", "--vcgencmd",
            str(tmp_path / "none"), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["used"] == "tegrastats" and data["total_rule"] == "VDD_IN"
    assert data["reading"]["total_mw"] == 5079.0
    assert (tmp_path / "sudo.argv").read_text() == "-n tegrastats --interval 100"


def test_a_command_that_exits_at_once_says_why(tmp_path):
    script = tmp_path / "refuses"
    write_program(script, f"#!{sys.executable}\nimport sys\nsys.stderr.write('sudo: a password is required\\n')\nsys.exit(1)\n")
    with pytest.raises(SensorUnavailable, match="refuses` exited before printing a rail line: exited with 1: sudo: a password is req"):
        TegrastatsSensor(str(script), interval_ms=10)


# --- hostile input (issue 9, item 6) -------------------------------------------------------------------------


def _best_of_3(fn) -> float:
    import time

    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.parametrize(
    "unit",
    ["CPU [", "CPU [1%@1,", "GR3D_FREQ 1%@[1,", "RAM 1/", "a@1", "a@-", "VDD_IN 1/", "VDD_IN 1mW/1mW/", "A", "1"],
)
def test_adversarial_lines_parse_in_linear_time(unit):
    # 16,000 characters of one repeated regex prefix: the old CPU pattern rescanned to the line end from every
    # `CPU [` (0.4 s here, a 10 MB line hours); a linear parser takes about a millisecond.
    line = unit * (16_000 // len(unit))

    def parse():
        try:
            parse_line(line)
        except BadInput:
            pass

    assert _best_of_3(parse) < 0.05, unit


def test_a_10_mb_line_in_a_log_is_skipped_and_counted(tmp_path):
    good = _lines("xavier-nx-r35.txt")[0]
    log_file = tmp_path / "hostile.log"
    log_file.write_text(f"{good}\n{'CPU [' * 2_000_000}\n{good}\n# a comment\n\n{good}\n")
    spent = _best_of_3(lambda: read_log(log_file, interval_ms=100))
    log = read_log(log_file, interval_ms=100)
    assert spent < 2.0
    assert len(log.samples) == 3 and log.bad_lines == 1
    assert log.first_bad_line == 2 and "longer than" in log.first_bad


@pytest.mark.parametrize("stamp", ["01-01-0001 00:00:00", "12-31-9999 23:59:59", "06-15-1969 12:00:00"])
def test_timestamps_outside_sane_years_are_bad_lines(stamp, tmp_path):
    with pytest.raises(BadInput, match="year"):
        parse_line(f"{stamp} VDD_IN 1000mW/1000mW")
    log_file = tmp_path / "years.log"
    good = _lines("orin-nano-r36.txt")
    log_file.write_text(f"{good[0]}\n{stamp} VDD_IN 1000mW/1000mW\n{good[1]}\n")
    log = read_log(log_file)
    assert log.bad_lines == 1 and log.first_bad_line == 2
    assert [s.total_mw for s in log.samples] == [4968.0, 9968.0]


@pytest.mark.parametrize(
    "line",
    [
        "RAM " + "9" * 5000 + "/3956MB CPU [1%@100]",
        "RAM 1/2MB CPU [1%@" + "9" * 5000 + "]",
        "RAM 1/2MB CPU [" + "9" * 5000 + "%@100]",
        "RAM 1/2MB CPU [101%@100]",
        "RAM 1/2MB GR3D_FREQ 1%@[" + "9" * 5000 + "]",
        "RAM 1/2MB GR3D_FREQ " + "9" * 400 + "%",
        "RAM 1/2MB CPU [1%@100] GPU@" + "9" * 5000 + "C",
        "RAM 1/2MB CPU [1%@100] GPU@-300C",
        "VDD_IN " + "9" * 400 + "/1",
        "VDD_IN 1mW/" + "9" * 400 + "mW",
        "VDD_IN 1/1/" + "9" * 400,
        "VDD_IN 1000001mW/1000mW",
    ],
)
def test_absurd_numbers_make_a_bad_line(line):
    with pytest.raises(BadInput):
        parse_line(line)


def test_rail_bound_is_named_and_inclusive():
    from edgebench.agent.sensors.base import MAX_RAIL_MW

    assert MAX_RAIL_MW == 1_000_000.0  # 1 kW: AGX Thor, the largest Jetson, draws about 130 W at its input
    assert parse_line(f"VDD_IN {MAX_RAIL_MW:.0f}/0").total_mw == MAX_RAIL_MW


def test_bad_lines_are_counted_not_fatal(tmp_path):
    bad = tmp_path / "bad.log"
    good = _lines("xavier-nx-r35.txt")[0]
    bad.write_text(f"{good}\ngarbage here\n{good}\nVDD_IN {'9' * 400}/1\n")
    log = read_log(bad, interval_ms=100)
    assert (log.bad_lines, log.first_bad_line) == (2, 2) and "not a tegrastats line" in log.first_bad
    assert [s.total_mw for s in log.samples] == [5079.0, 5079.0]
    only_bad = tmp_path / "only-bad.log"
    only_bad.write_text("garbage\nmore garbage\n")
    with pytest.raises(BadInput, match=r"no tegrastats lines in it \(2 bad lines, the first at line 1"):
        read_log(only_bad, interval_ms=100)


@pytest.mark.parametrize("interval_ms", [float("nan"), float("inf"), 1e300, -1.0, 0.0])
def test_read_log_refuses_an_absurd_interval(interval_ms):
    with pytest.raises(BadInput, match="interval"):
        read_log(DATA / "jetson-nano-r32.txt", interval_ms=interval_ms)


def test_timestamps_that_go_backwards_need_an_interval(tmp_path):
    lines = _lines("orin-nano-r36.txt")
    log_file = tmp_path / "ntp-jump.log"
    log_file.write_text(f"{lines[1]}\n{lines[0]}\n{lines[2]}\n")  # 16:03:00, 16:02:59, 16:03:01
    with pytest.raises(BadInput, match="go backwards.*--interval-ms"):
        read_log(log_file)
    assert len(read_log(log_file, interval_ms=1000).samples) == 3


def test_unreadable_log_is_bad_input(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    locked = tmp_path / "locked.log"
    locked.write_text(_lines("xavier-nx-r35.txt")[0] + "\n")
    locked.chmod(0)
    with pytest.raises(BadInput, match="cannot read"):
        read_log(locked, interval_ms=100)


def test_rail_names_are_bounded_per_line_and_per_log(tmp_path):
    from edgebench.agent.sensors.tegrastats import MAX_RAILS

    many = " ".join(f"R{k} 1/1" for k in range(MAX_RAILS + 1))
    with pytest.raises(BadInput, match="rails, more than"):
        parse_line(many)
    # each line a fresh set of names: every name becomes a column and an integral, so the log stops taking them
    log_file = tmp_path / "names.log"
    log_file.write_text("\n".join(" ".join(f"L{i}R{k} 1/1" for k in range(8)) for i in range(5000)) + "\n")
    log = read_log(log_file, interval_ms=100)
    assert len({r for s in log.samples for r in s.rails_mw}) == MAX_RAILS
    assert log.bad_lines == 5000 - MAX_RAILS // 8 and log.first_bad_line == MAX_RAILS // 8 + 1
