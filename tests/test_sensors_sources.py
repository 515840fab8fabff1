"""RAPL on a fake powercap tree (counter wrap, no double counting), Pi 5 through a fake vcgencmd, jtop's dict."""

import os
import sys
import time
from pathlib import Path

import pytest
from programs import write_program

from edgebench.agent.sensors.base import SensorUnavailable, probe
from edgebench.agent.sensors.jtop import power_from_jtop
from edgebench.agent.sensors.pi5 import TOTAL_RULE, parse_pmic
from edgebench.agent.sensors.pi5 import open_sensor as open_pi5
from edgebench.agent.sensors.rapl import PERMISSION_FIX, counter_delta_uj
from edgebench.agent.sensors.rapl import open_sensor as open_rapl
from edgebench.errors import BadInput, DeviceError

MAX_UJ = 262_143_328_850


def make_rapl(root: Path, pkg_uj: int = 1_000_000, dram_uj: int = 500_000, psys: bool = False) -> Path:
    base = root / "sys/class/powercap"
    pkg = base / "intel-rapl:0"
    for d, name, uj in ((pkg, "package-0", pkg_uj), (pkg / "intel-rapl:0:0", "core", 10),
                        (pkg / "intel-rapl:0:1", "dram", dram_uj)):
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{uj}\n")
        (d / "max_energy_range_uj").write_text(f"{MAX_UJ}\n")
    if psys:
        z = base / "intel-rapl:1"
        z.mkdir()
        (z / "name").write_text("psys\n")
        (z / "energy_uj").write_text("0\n")
        (z / "max_energy_range_uj").write_text(f"{MAX_UJ}\n")
    # the top level also lists subzones by their own names, as the kernel does
    (base / "intel-rapl:0:0").symlink_to(pkg / "intel-rapl:0:0")
    return pkg


def test_counter_delta_wraps():
    assert counter_delta_uj(100, 250, MAX_UJ) == 150
    assert counter_delta_uj(MAX_UJ - 50, 30, MAX_UJ) == 80


def test_rapl_power_from_counters_with_wrap_and_no_double_count(tmp_path):
    pkg = make_rapl(tmp_path, pkg_uj=MAX_UJ - 1_000_000)
    opened = time.perf_counter()
    sensor = open_rapl(tmp_path)
    try:
        assert sensor.rails == ("package-0", "package-0-dram")  # core sits inside the package: not a rail
        assert sensor.total_rule == "sum of package + dram zones"
        time.sleep(0.05)
        (pkg / "energy_uj").write_text("4000000\n")  # wrapped: 1 J before the wrap + 4 J after
        (pkg / "intel-rapl:0:1/energy_uj").write_text("1500000\n")  # +1 J
        sample = sensor.read()
        read_s = time.perf_counter() - opened  # longer than the interval between the two counter reads
    finally:
        sensor.close()
    ratio = sample.rails_mw["package-0"] / sample.rails_mw["package-0-dram"]
    assert ratio == pytest.approx(5.0)  # 5 J vs 1 J over the same interval
    assert sample.total_mw == pytest.approx(sample.rails_mw["package-0"] + sample.rails_mw["package-0-dram"])
    # 6 J over a bit more than 50 ms: at most 120 W, and at least 6 J over the whole time the test took
    assert 6.0 / read_s * 1000 <= sample.total_mw <= 6.0 / 0.05 * 1000


def test_rapl_psys_is_the_total_alone(tmp_path):
    make_rapl(tmp_path, psys=True)
    sensor = open_rapl(tmp_path)
    try:
        assert sensor.total_rule == "psys (platform)"
        (tmp_path / "sys/class/powercap/intel-rapl:1/energy_uj").write_text("2000000\n")
        sample = sensor.read()
        assert sample.total_mw == sample.rails_mw["psys"] > 0
    finally:
        sensor.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: the permission path needs an ordinary user")
def test_rapl_permission_names_the_fix(tmp_path):
    pkg = make_rapl(tmp_path)
    (pkg / "energy_uj").chmod(0o400)
    with pytest.raises(SensorUnavailable) as info:
        open_rapl(tmp_path)
    assert info.value.kind == "permission" and "CVE-2020-8694" in info.value.reason


def test_rapl_permission_fix_text():
    assert "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in PERMISSION_FIX
    assert "udev" in PERMISSION_FIX and "PLATYPUS" in PERMISSION_FIX


def test_rapl_missing_is_a_reason(tmp_path):
    with pytest.raises(BadInput, match="sensor rapl: no RAPL zones"):
        probe("rapl", root=tmp_path)


PMIC_OUTPUT = """\
     3V7_WL_SW_A current(0)=0.00000000A
   3V3_SYS_A current(1)=0.06050000A
  VDD_CORE_A current(7)=0.71440000A
  3V7_WL_SW_V volt(8)=3.70000000V
   3V3_SYS_V volt(9)=3.31000000V
  VDD_CORE_V volt(15)=0.72097620V
  EXT5V_V volt(24)=5.15000000V
  BATT_V volt(25)=0.00000000V
"""


def _fake_vcgencmd(tmp_path: Path, text: str, rc: int = 0) -> str:
    data = tmp_path / "pmic.txt"
    data.write_text(text)
    script = tmp_path / "vcgencmd"
    write_program(script,
        f"#!{sys.executable}\n"
        "import sys\n"
        "if sys.argv[1:] != ['pmic_read_adc']:\n"
        "    print('bad command', file=sys.stderr); sys.exit(1)\n"
        f"sys.stdout.write(open({str(data)!r}).read())\n"
        f"sys.exit({rc})\n"
    )
    return str(script)


def test_parse_pmic_pairs_a_with_v():
    rails = parse_pmic(PMIC_OUTPUT)
    assert set(rails) == {"3V7_WL_SW", "3V3_SYS", "VDD_CORE"}  # EXT5V and BATT have no current
    assert rails["VDD_CORE"] == pytest.approx(0.71440000 * 0.72097620 * 1000)
    assert rails["3V3_SYS"] == pytest.approx(0.0605 * 3.31 * 1000)


def test_pi5_through_a_fake_vcgencmd(tmp_path):
    cmd = _fake_vcgencmd(tmp_path, PMIC_OUTPUT)
    sensor = open_pi5(cmd)
    sample = sensor.read()
    assert sensor.total_rule == TOTAL_RULE
    assert sample.total_mw == pytest.approx(sum(parse_pmic(PMIC_OUTPUT).values()))
    (tmp_path / "pmic.txt").write_text("garbage\n")
    with pytest.raises(DeviceError, match="no paired"):
        sensor.read()


def test_pi4_vcgencmd_without_pmic_is_a_reason(tmp_path):
    cmd = _fake_vcgencmd(tmp_path, "error=1 error_msg=\"Command not registered\"\n", rc=255)
    with pytest.raises(SensorUnavailable, match="Pi 5 only"):
        open_pi5(cmd)


def test_jtop_power_uses_instant_power_never_avg():
    power = {
        "rail": {
            "VDD_GPU_SOC": {"volt": 5000, "curr": 400, "power": 2000, "online": True, "avg": 1500},
            "VDD_CPU_CV": {"volt": 5000, "curr": 100, "power": 500, "online": True, "avg": 900},
            "NC": {"volt": 0, "curr": 0, "power": 0, "online": False, "avg": 0},
        },
        "tot": {"power": 2500, "avg": 2400},
    }
    rails, total, rule = power_from_jtop(power)
    assert rails == {"VDD_GPU_SOC": 2000.0, "VDD_CPU_CV": 500.0}
    assert total == 2500.0 and "no input rail" in rule
    # with an input rail, jtop moves it from `rail` to `tot` and names it: it comes back as a rail and the total
    power["tot"] = {"volt": 5000, "curr": 1000, "power": 5000, "avg": 4000, "online": True, "name": "VDD_IN"}
    rails, total, rule = power_from_jtop(power)
    assert (total, rule) == (5000.0, "VDD_IN")
    assert rails == {"VDD_IN": 5000.0, "VDD_GPU_SOC": 2000.0, "VDD_CPU_CV": 500.0}
    del power["tot"]
    assert power_from_jtop(power)[1:] == (2500.0, "sum of rails (no input rail)")
