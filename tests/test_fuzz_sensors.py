"""Fuzzing every text the sensors read from outside: tegrastats lines and logs, INA3221 and RAPL sysfs files,
/proc/stat, `vcgencmd pmic_read_adc` output, jtop's power dict, and a live tegrastats printing garbage.

Inputs are seeded random bytes and mutations of real lines (tests/data/tegrastats, shared/reference), so every run
sees the same cases. Whatever comes in, a parser either gives values that are finite, non-negative and within the
named bounds, or raises one of the project's own one-line errors (an EdgebenchError, or SensorUnavailable, which
the probe turns into one): never a traceback from inside, never an inf or NaN energy.
"""

import math
import os
import random
import sys
from pathlib import Path

import pytest
from programs import write_program
from test_sensors import make_nano_iio, make_orin_hwmon, write_proc
from test_sensors_sources import PMIC_OUTPUT, make_rapl

from edgebench.agent.sensors.base import MAX_RAIL_MW, SensorUnavailable
from edgebench.agent.sensors.cli import log_energy
from edgebench.agent.sensors.estimate import EstimateSensor
from edgebench.agent.sensors.ina3221 import open_sensor as open_ina3221
from edgebench.agent.sensors.jtop import power_from_jtop
from edgebench.agent.sensors.pi5 import PMIC_MAX_A, PMIC_MAX_V, parse_pmic
from edgebench.agent.sensors.pi5 import open_sensor as open_pi5
from edgebench.agent.sensors.rapl import open_sensor as open_rapl
from edgebench.agent.sensors.tegrastats import (
    MAX_FREQ_MHZ,
    MAX_RAM_MB,
    TEMP_RANGE_C,
    YEARS,
    TegrastatsSensor,
    parse_line,
    read_log,
)
from edgebench.errors import EdgebenchError, ProtocolError
from edgebench.records import PowerSample

DATA = Path(__file__).parent / "data" / "tegrastats"
REFERENCE = Path("/work/shared/reference/tegrastats")
OWN_ERRORS = (EdgebenchError, SensorUnavailable)

# Replacements for a number: what garbage writers, broken drivers and hostile files put where digits belong.
WILD_NUMBERS = [
    "nan", "inf", "-inf", "-1", "-0", "1e999", "1e308", "9" * 400, "9" * 5000, "0x10", "1_000", "", " ",
    "\x00", "\xff", "1.2.3", "--5", "+7", "3e", "٣", "1000001", "99999999999999999999999", "0",
]  # fmt: skip
TOKENS = [
    "CPU [", "]", "[", "%@", "@", "C ", "mW", "/", "GR3D_FREQ ", "RAM ", "MB", "VDD_IN ", "POM_5V_IN ", "NC ",
    "off", ",", " ", "12-31-9999 23:59:59 ", "01-01-0001 00:00:00 ", "\t", "-256C", "PMIC@100C", "\r",
]  # fmt: skip


def _real_lines() -> list[str]:
    out = []
    for folder in (DATA, REFERENCE):
        for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            out += [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return out


def _mutate(rng: random.Random, text: str) -> str:
    """One to four edits of `text`: a number replaced by a wild one, a token inserted, a cut, a repeat, bytes."""
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        if kind == 0 or not text:  # replace a run of digits
            import re

            runs = [m.span() for m in re.finditer(r"\d+(?:\.\d+)?", text)]
            if runs:
                a, b = rng.choice(runs)
                text = text[:a] + rng.choice(WILD_NUMBERS) + text[b:]
        elif kind == 1:
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice(TOKENS) * rng.randint(1, 50) + text[i:]
        elif kind == 2:
            a = rng.randrange(len(text))
            text = text[:a] + text[a + rng.randint(1, 40) :]
        elif kind == 3:
            a = rng.randrange(len(text))
            text = text[:a] + text[a : a + rng.randint(1, 30)] * rng.randint(2, 20) + text[a:]
        elif kind == 4:
            i = rng.randrange(len(text) + 1)
            text = text[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))).decode("latin-1") + text[i:]
        else:
            text = text.swapcase() if rng.random() < 0.2 else text.replace(" ", rng.choice(["  ", "\t", ""]), 1)
    return text


def _random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


def _one_line(exc: BaseException) -> None:
    assert isinstance(exc, OWN_ERRORS), f"{type(exc).__name__}: {exc}"
    assert "\n" not in str(exc), str(exc)


def _check_sample(sample: PowerSample) -> None:
    for rail, mw in sample.rails_mw.items():
        assert math.isfinite(mw) and 0.0 <= mw <= MAX_RAIL_MW, (rail, mw)
    assert math.isfinite(sample.total_mw) and sample.total_mw >= 0.0


def _check_line(line) -> None:
    for values in (line.rails_cur_mw, line.rails_avg_mw, line.rails_max_mw):
        assert all(math.isfinite(v) and 0.0 <= v <= MAX_RAIL_MW for v in values.values()), values
    if line.rails_cur_mw:
        assert math.isfinite(line.total_mw) and line.total_mw >= 0.0
    assert all(v is None or 0.0 <= v <= 100.0 for v in line.cpu_load_pct)
    assert all(v is None or 0 <= v <= MAX_FREQ_MHZ for v in line.cpu_freq_mhz)
    assert all(0 <= v <= MAX_FREQ_MHZ for v in line.gpu_freq_mhz)
    assert line.gpu_load_pct is None or 0.0 <= line.gpu_load_pct <= 100.0
    assert all(TEMP_RANGE_C[0] <= v <= TEMP_RANGE_C[1] for v in line.temps_c.values())
    for mb in (line.ram_used_mb, line.ram_total_mb):
        assert mb is None or 0 <= mb <= MAX_RAM_MB
    assert line.time is None or YEARS[0] <= line.time.year <= YEARS[1]


def test_fuzz_tegrastats_line_parser():
    rng = random.Random(9_006)
    real = _real_lines()
    assert len(real) >= 8
    parsed = refused = 0
    for i in range(3000):
        if i % 5 == 0:
            text = _random_bytes(rng, rng.randint(0, 300)).decode("utf-8", "replace")
        elif i % 5 == 1:
            text = "".join(rng.choice(TOKENS + WILD_NUMBERS + ["1", "42", "5079"]) for _ in range(rng.randint(1, 60)))
        else:
            text = _mutate(rng, rng.choice(real))
        try:
            line = parse_line(text)
        except Exception as exc:  # noqa: BLE001 - the point: nothing but our own errors may escape
            _one_line(exc)
            refused += 1
            continue
        _check_line(line)
        parsed += 1
    assert parsed > 300 and refused > 300  # both paths were exercised


def test_fuzz_tegrastats_log_reader(tmp_path):
    rng = random.Random(9_106)
    real = _real_lines()
    for case in range(40):
        lines = []
        for _ in range(rng.randint(0, 12)):
            roll = rng.random()
            if roll < 0.4:
                lines.append(rng.choice(real))
            elif roll < 0.8:
                lines.append(_mutate(rng, rng.choice(real)))
            else:
                lines.append(_random_bytes(rng, rng.randint(0, 80)).decode("latin-1"))
        path = tmp_path / f"case{case}.log"
        data = "\n".join(lines).encode("utf-8", "surrogateescape")
        if case % 7 == 0:
            data += _random_bytes(rng, 200)  # invalid UTF-8 at the end, no final newline
        path.write_bytes(data)
        interval = rng.choice([None, 100.0, 1000.0, 3_600_000.0])
        try:
            log = read_log(path, interval_ms=interval)
        except Exception as exc:  # noqa: BLE001
            _one_line(exc)
            continue
        assert log.bad_lines >= 0 and (log.first_bad_line > 0) == (log.bad_lines > 0)
        for sample in log.samples:
            _check_sample(sample)
        assert all(b.t_ns > a.t_ns for a, b in zip(log.samples, log.samples[1:], strict=False))
        energy = log_energy(log.samples, sorted({r for s in log.samples for r in s.rails_mw}))
        if energy is not None:
            assert math.isfinite(energy.energy_j) and energy.energy_j >= 0
            assert all(math.isfinite(j) and j >= 0 for j in energy.rails_j.values())


def _read_once(open_sensor, before_read=None) -> None:
    """Open a sensor, read one sample (after `before_read`, if given) and close it: every failure is one line."""
    try:
        sensor = open_sensor()
    except Exception as exc:  # noqa: BLE001
        _one_line(exc)
        return
    try:
        if before_read is not None:
            before_read()
        _check_sample(sensor.read())
    except Exception as exc:  # noqa: BLE001
        _one_line(exc)
    finally:
        sensor.close()


def _ina_value_files(dev: Path) -> list[Path]:
    return sorted(p for p in dev.iterdir() if p.name.endswith("_input"))


@pytest.mark.parametrize("layout", ["iio", "hwmon"])
def test_fuzz_ina3221_sysfs_values(tmp_path, layout):
    rng = random.Random(9_206 if layout == "iio" else 9_207)
    for case in range(60):
        root = tmp_path / f"{layout}{case}"
        dev = make_nano_iio(root) if layout == "iio" else make_orin_hwmon(root)
        if layout == "iio" and case % 2:
            for p in dev.glob("in_power*_input"):
                p.unlink()  # the V x I path
        for p in rng.sample(_ina_value_files(dev), rng.randint(1, 3)):
            roll = rng.random()
            if roll < 0.5:
                p.write_text(rng.choice(WILD_NUMBERS) + "\n")
            elif roll < 0.8:
                p.write_bytes(_random_bytes(rng, rng.randint(0, 70)))
            else:
                p.write_text(_mutate(rng, p.read_text()))
        if case % 10 == 0:  # a garbage label as well
            label = next(iter(sorted(dev.glob("rail_name_*") if layout == "iio" else dev.glob("in*_label"))))
            label.write_bytes(_random_bytes(rng, rng.randint(0, 200)))
        _read_once(lambda root=root: open_ina3221(root))


def test_fuzz_rapl_counters(tmp_path):
    rng = random.Random(9_306)
    for case in range(60):
        root = tmp_path / f"r{case}"
        pkg = make_rapl(root)
        files = [pkg / "energy_uj", pkg / "max_energy_range_uj", pkg / "name", pkg / "intel-rapl:0:1/energy_uj",
                 pkg / "intel-rapl:0:1/max_energy_range_uj", pkg / "intel-rapl:0:1/name"]  # fmt: skip
        target = rng.choice(files)
        when = rng.choice(["open", "read"])

        def spoil(path: Path = target) -> None:
            if rng.random() < 0.6:
                path.write_text(rng.choice(WILD_NUMBERS) + "\n")
            else:
                path.write_bytes(_random_bytes(rng, rng.randint(0, 80)))

        if when == "open":
            spoil()
        _read_once(lambda root=root: open_rapl(root), spoil if when == "read" else None)


def test_fuzz_proc_stat_for_the_estimate(tmp_path):
    rng = random.Random(9_406)
    for case in range(80):
        root = tmp_path / f"p{case}"
        root.mkdir()
        write_proc(root, busy=100, idle=100)
        stat_file = root / "proc/stat"
        good = stat_file.read_text()
        bad = _mutate(rng, good) if case % 2 else _random_bytes(rng, rng.randint(0, 120)).decode("latin-1")
        if case % 3 == 0:
            stat_file.write_text(bad)  # garbage from the start
        try:
            sensor = EstimateSensor(root)
        except Exception as exc:  # noqa: BLE001
            _one_line(exc)
            continue
        stat_file.write_bytes(bad.encode("latin-1", "replace"))
        try:
            sample = sensor.read()
        except Exception as exc:  # noqa: BLE001
            _one_line(exc)
            continue
        _check_sample(sample)
        low, high = sensor.tdp_w * sensor.idle_share * 1000, sensor.tdp_w * 1000
        assert low - 1e-9 <= sample.total_mw <= high + 1e-9


def test_negative_jiffies_never_give_a_power_below_the_idle_floor(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/stat").write_text("cpu  -1000 0 0 5000 0 0 0 0 0 0\n")
    (tmp_path / "proc/cpuinfo").write_text("processor : 0\nmodel name : test cpu\n")
    with pytest.raises(SensorUnavailable, match="not jiffy counts"):
        EstimateSensor(tmp_path)


def test_fuzz_pmic_output_parser():
    rng = random.Random(9_506)
    parsed = refused = 0
    for i in range(1500):
        if i % 4 == 0:
            text = _random_bytes(rng, rng.randint(0, 400)).decode("utf-8", "replace")
        else:
            text = "\n".join(_mutate(rng, ln) if rng.random() < 0.3 else ln for ln in PMIC_OUTPUT.splitlines())
        try:
            rails = parse_pmic(text)
        except Exception as exc:  # noqa: BLE001
            _one_line(exc)
            refused += 1
            continue
        parsed += 1
        for rail, mw in rails.items():
            assert math.isfinite(mw) and 0.0 <= mw <= min(MAX_RAIL_MW, PMIC_MAX_V * PMIC_MAX_A * 1000), (rail, mw)
    assert parsed > 100 and refused > 50


@pytest.mark.parametrize(
    "value", ["nan", "inf", "-0.5", "1e999", "1.2.3", "9" * 400, "51", "-1e-3"]
)
def test_pmic_values_that_are_no_reading_are_protocol_errors(value):
    text = PMIC_OUTPUT.replace("0.71440000A", f"{value}A")
    with pytest.raises(ProtocolError, match="VDD_CORE_A"):
        parse_pmic(text)


def _executable(path: Path, body: str) -> str:
    write_program(path, f"#!{sys.executable}\n{body}")
    return str(path)


def test_pi5_through_a_vcgencmd_printing_garbage(tmp_path):
    rng = random.Random(9_606)
    for case in range(4):
        out = tmp_path / f"out{case}.bin"
        out.write_bytes(_random_bytes(rng, 300) + PMIC_OUTPUT.replace("0.71440000A", "nanA").encode())
        cmd = _executable(tmp_path / f"vcgencmd{case}", f"import sys\nsys.stdout.buffer.write(open({str(out)!r}, 'rb').read())\n")
        with pytest.raises(SensorUnavailable) as info:
            open_pi5(cmd)
        _one_line(info.value)
    not_a_program = tmp_path / "not-a-program"
    write_program(not_a_program, _random_bytes(rng, 64))
    with pytest.raises(SensorUnavailable, match="cannot be run"):
        open_pi5(str(not_a_program))


def _jtop_dict(rng: random.Random):
    def value():
        return rng.choice([1.0, 5000, -1, float("nan"), float("inf"), "12", None, [], {}, True, 10**400, 2e6, 0])

    shape = rng.randrange(5)
    if shape == 0:
        return rng.choice([None, [], "power", 5])
    rails = {f"R{k}": {"power": value(), "online": rng.choice([True, False, 1])} for k in range(rng.randint(0, 3))}
    if shape == 1:
        rails["X"] = rng.choice([None, 5, "x", {}])
    power = {"rail": rails if shape != 2 else rng.choice([None, [], "x"])}
    if rng.random() < 0.7:
        power["tot"] = rng.choice([{"power": value()}, {"power": value(), "name": "VDD_IN"}, None, 7])
    return power


def test_fuzz_jtop_power_dict():
    rng = random.Random(9_706)
    for _ in range(1500):
        power = _jtop_dict(rng)
        try:
            rails, total, rule = power_from_jtop(power)
        except Exception as exc:  # noqa: BLE001
            _one_line(exc)
            continue
        assert all(math.isfinite(v) and 0.0 <= v <= MAX_RAIL_MW for v in rails.values())
        assert math.isfinite(total) and total >= 0.0 and rule


def test_live_tegrastats_printing_garbage_reads_only_good_lines(tmp_path):
    rng = random.Random(9_806)
    good = (DATA / "jetson-nano-r32.txt").read_text().splitlines()[1]  # POM_5V_IN 4531 mW
    feed = tmp_path / "feed.bin"
    chunks = [_random_bytes(rng, 200) + b"\n", ("CPU [" * 5000).encode() + b"\n", good.encode() + b"\n"]
    feed.write_bytes(b"".join(chunks))
    cmd = _executable(
        tmp_path / "tegrastats",
        "import sys, time\n"
        f"data = open({str(feed)!r}, 'rb').read()\n"
        "while True:\n"
        "    sys.stdout.buffer.write(data); sys.stdout.flush(); time.sleep(0.02)\n",
    )
    sensor = TegrastatsSensor(cmd, interval_ms=20)
    try:
        samples = [sensor.read() for _ in range(3)]
    finally:
        sensor.close()
    for s in samples:
        _check_sample(s)
        assert s.total_mw == 4531.0


def test_live_tegrastats_that_is_not_a_program(tmp_path):
    path = tmp_path / "tegrastats"
    write_program(path, bytes(range(1, 64)))
    with pytest.raises(SensorUnavailable, match="cannot be run") as info:
        TegrastatsSensor(str(path), interval_ms=10)
    _one_line(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="garbage in a root-only file is only readable as root")
def test_probe_auto_never_crashes_on_a_garbage_tree(tmp_path):
    from edgebench.agent.sensors.base import probe

    rng = random.Random(9_906)
    make_orin_hwmon(tmp_path)
    make_rapl(tmp_path)
    write_proc(tmp_path, busy=1, idle=1)
    for p in sorted(tmp_path.rglob("*")):
        if p.is_file() and not p.is_symlink() and rng.random() < 0.5:
            p.write_bytes(_random_bytes(rng, 40))
    missing = str(tmp_path / "none")
    found = probe(root=tmp_path, tegrastats_cmd=missing, vcgencmd_cmd=missing)
    if found.found:
        try:
            _check_sample(found.sensor.read())
        except Exception as exc:  # noqa: BLE001
            _one_line(exc)
        finally:
            found.sensor.close()
