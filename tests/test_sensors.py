"""INA3221 on fake sysfs trees (both L4T layouts), the estimate on a fake /proc, probe order and reasons."""

from pathlib import Path

import pytest

from edgebench.agent.sensors.base import (
    PROBE_ORDER,
    SUM_RULE,
    NullSensor,
    PowerSensor,
    probe,
)
from edgebench.agent.sensors.estimate import EstimateSensor, tdp_for
from edgebench.agent.sensors.ina3221 import Ina3221Sensor, open_sensor
from edgebench.errors import BadInput, DeviceError


def make_nano_iio(root: Path, power_mw=(4531, 1113, 539)) -> Path:
    """Jetson Nano, L4T r32: ina3221x IIO device 6-0040 with power files."""
    dev = root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    dev.mkdir(parents=True)
    for k, (name, p) in enumerate(zip(("POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"), power_mw, strict=True)):
        (dev / f"rail_name_{k}").write_text(name + "\n")
        (dev / f"in_power{k}_input").write_text(f"{p}\n")
        (dev / f"in_voltage{k}_input").write_text("5000\n")
        (dev / f"in_current{k}_input").write_text(f"{p / 5}\n")
    return dev


def make_orin_hwmon(root: Path, hwmon: str = "hwmon3") -> Path:
    """Orin Nano, L4T r36: upstream ina3221 hwmon on 1-0040, one NC channel and in7 (sum of shunt voltages)."""
    dev = root / f"sys/bus/i2c/drivers/ina3221/1-0040/hwmon/{hwmon}"
    dev.mkdir(parents=True)
    rails = {1: ("VDD_IN", 5000, 1000), 2: ("VDD_CPU_GPU_CV", 5000, 100), 3: ("VDD_SOC", 5000, 300)}
    for k, (label, mv, ma) in rails.items():
        (dev / f"in{k}_label").write_text(label + "\n")
        (dev / f"in{k}_input").write_text(f"{mv}\n")
        (dev / f"curr{k}_input").write_text(f"{ma}\n")
    (dev / "in7_label").write_text("sum of shunt voltages\n")
    (dev / "in7_input").write_text("12\n")
    return dev


def test_nano_iio_layout_reads_power_files(tmp_path):
    dev = make_nano_iio(tmp_path)
    sensor = open_sensor(tmp_path)
    try:
        assert isinstance(sensor, PowerSensor)
        assert sensor.rails == ("POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU")
        assert sensor.total_rule == "POM_5V_IN"
        first = sensor.read()
        assert first.rails_mw == {"POM_5V_IN": 4531.0, "POM_5V_GPU": 1113.0, "POM_5V_CPU": 539.0}
        assert first.total_mw == 4531.0
        # files stay open and are re-read from offset 0: a new value shows on the next read
        (dev / "in_power0_input").write_text("6000\n")
        assert sensor.read().total_mw == 6000.0
    finally:
        sensor.close()


def test_iio_without_power_file_uses_v_times_i(tmp_path):
    dev = make_nano_iio(tmp_path)
    for k in range(3):
        (dev / f"in_power{k}_input").unlink()
    sensor = open_sensor(tmp_path)
    try:
        assert sensor.read().rails_mw["POM_5V_IN"] == pytest.approx(5000 * 4531 / 5 / 1000)
    finally:
        sensor.close()


def test_orin_hwmon_layout_skips_nc_and_in7(tmp_path):
    dev = make_orin_hwmon(tmp_path)
    nc = dev.parent / "hwmon3"
    (nc / "in4_label").write_text("NC\n")
    (nc / "in4_input").write_text("0\n")
    (nc / "curr4_input").write_text("0\n")
    sensor = open_sensor(tmp_path)
    try:
        assert sensor.rails == ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
        sample = sensor.read()
        assert sample.rails_mw == {"VDD_IN": 5000.0, "VDD_CPU_GPU_CV": 500.0, "VDD_SOC": 1500.0}  # mV x mA / 1000
        assert (sensor.total_rule, sample.total_mw) == ("VDD_IN", 5000.0)
        assert "hwmon" in sensor.describe()
    finally:
        sensor.close()


def test_hwmon_number_is_globbed(tmp_path):
    make_orin_hwmon(tmp_path, hwmon="hwmon7")
    sensor = open_sensor(tmp_path)
    sensor.close()
    assert sensor.rails[0] == "VDD_IN"


def test_board_without_input_rail_sums_rails(tmp_path):
    dev = make_orin_hwmon(tmp_path)
    (dev / "in1_label").write_text("VDD_GPU_SOC\n")
    sensor = open_sensor(tmp_path)
    try:
        assert sensor.total_rule == SUM_RULE
        assert sensor.read().total_mw == 5000.0 + 500.0 + 1500.0
        assert "no input rail" in sensor.describe()
    finally:
        sensor.close()


def test_vanished_file_is_a_device_error(tmp_path):
    dev = make_orin_hwmon(tmp_path)
    sensor = open_sensor(tmp_path)
    try:
        (dev / "curr1_input").write_text("")
        with pytest.raises(DeviceError, match="INA3221 read failed"):
            sensor.read()
    finally:
        sensor.close()


def test_empty_channel_list_is_refused():
    from edgebench.agent.sensors.base import SensorUnavailable

    with pytest.raises(SensorUnavailable):
        Ina3221Sensor([])


def write_proc(root: Path, busy: int, idle: int, model: str = "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz") -> None:
    (root / "proc").mkdir(exist_ok=True)
    # user nice system idle iowait irq softirq steal
    (root / "proc/stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n")
    (root / "proc/cpuinfo").write_text(f"processor\t: 0\nmodel name\t: {model}\n")


def _model_mw(util: float, tdp_w: float = 15.0, idle_share: float = 0.2) -> float:
    return tdp_w * (idle_share + (1 - idle_share) * util) * 1000  # W -> mW


def test_estimate_is_util_times_tdp_above_an_idle_floor_and_flagged(tmp_path):
    write_proc(tmp_path, busy=100, idle=300)
    sensor = EstimateSensor(tmp_path)
    assert (sensor.tdp_w, sensor.estimate, sensor.idle_share) == (15.0, True, 0.2)
    assert "estimate" in sensor.total_rule and "idle floor of 0.2 x TDP" in sensor.total_rule
    assert sensor.read().total_mw == pytest.approx(_model_mw(0.25))  # since boot: 100 / 400 -> 6 W
    assert sensor.read().total_mw == pytest.approx(6000.0)
    write_proc(tmp_path, busy=100 + 75, idle=300 + 25)
    assert sensor.read().total_mw == pytest.approx(_model_mw(0.75))  # delta: 75 / 100 -> 12 W
    assert tdp_for("mystery cpu") == (15.0, "default")
    assert tdp_for("AMD EPYC 7763 64-Core Processor", logical_cpus=2)[0] == pytest.approx(4.4)  # a 2-vCPU VM
    assert tdp_for("Raspberry Pi 5 Model B Rev 1.0")[0] == 8.0


def test_probe_order_reasons_and_choice(tmp_path):
    write_proc(tmp_path, busy=1, idle=1)
    missing = tmp_path / "no-such-command"
    result = probe(root=tmp_path, tegrastats_cmd=str(missing), vcgencmd_cmd=str(missing))
    names = [name for name, _ in result.tried]
    assert names == list(PROBE_ORDER)
    assert result.sensor.name == "estimate" and result.found
    reasons = dict(result.tried)
    assert "INA3221" in reasons["ina3221"]
    assert "not found" in reasons["tegrastats"]
    assert "RAPL" in reasons["rapl"]
    assert reasons["estimate"].startswith("used")
    result.sensor.close()

    make_nano_iio(tmp_path)
    first = probe(root=tmp_path, tegrastats_cmd=str(missing))
    assert first.sensor.name == "ina3221" and first.tried == [("ina3221", "used (total: POM_5V_IN)")]
    first.sensor.close()


def test_probe_names_none_and_unknown(tmp_path):
    null = probe("none")
    assert isinstance(null.sensor, NullSensor) and not null.found
    with pytest.raises(DeviceError, match="no on-board power reading"):
        null.sensor.read()
    with pytest.raises(BadInput, match="unknown sensor 'kill-a-watt'"):
        probe("kill-a-watt")
    # a source asked for by name raises its reason instead of falling through
    with pytest.raises(BadInput, match="sensor ina3221: no INA3221 driver"):
        probe("ina3221", root=tmp_path)
    # nothing usable at all: the null sensor carries every reason
    nothing = probe(["ina3221", "rapl"], root=tmp_path)
    assert not nothing.found and "ina3221" in nothing.sensor.reason and "rapl" in nothing.sensor.reason


def test_estimate_holds_its_figure_between_jiffies(tmp_path):
    write_proc(tmp_path, busy=100, idle=100, model="mystery")
    sensor = EstimateSensor(tmp_path)
    assert sensor.read().total_mw == pytest.approx(_model_mw(0.5))  # since boot
    write_proc(tmp_path, busy=110, idle=130, model="mystery")
    assert sensor.read().total_mw == pytest.approx(_model_mw(10 / 40))
    assert sensor.read().total_mw == pytest.approx(_model_mw(10 / 40))  # no jiffy elapsed: held, not 0


def test_estimate_idle_cpu_draws_the_floor_not_zero(tmp_path):
    write_proc(tmp_path, busy=50, idle=50)
    sensor = EstimateSensor(tmp_path, tdp_w=10.0)
    sensor.read()
    write_proc(tmp_path, busy=50, idle=50 + 400)  # 400 idle jiffies, none busy: 0 %
    assert sensor.read().total_mw == pytest.approx(2000.0)  # 0.2 x 10 W
    write_proc(tmp_path, busy=50 + 300, idle=450)  # all busy: 100 %
    assert sensor.read().total_mw == pytest.approx(10_000.0)  # the full TDP, never above
    plain = EstimateSensor(tmp_path, tdp_w=10.0, idle_share=0.0)  # the floor can be turned off explicitly
    assert "idle floor of 0 x TDP" in plain.total_rule
    write_proc(tmp_path, busy=350, idle=450 + 100)
    assert plain.read().total_mw == pytest.approx(0.0)
    for bad in (-0.1, 1.5):
        with pytest.raises(BadInput, match="idle share"):
            EstimateSensor(tmp_path, idle_share=bad)
    with pytest.raises(BadInput, match="TDP"):
        EstimateSensor(tmp_path, tdp_w=0.0)


@pytest.mark.parametrize("text", ["nan", "inf", "-5", "1e999", "9" * 400, "40001", "0x10", "\xff\xfe"])
def test_ina3221_values_that_are_no_reading_are_refused(tmp_path, text):
    dev = make_orin_hwmon(tmp_path)
    sensor = open_sensor(tmp_path)
    try:
        (dev / "curr1_input").write_bytes(text.encode("latin-1") + b"\n")
        with pytest.raises(DeviceError, match="INA3221 read failed.*curr1_input"):
            sensor.read()
    finally:
        sensor.close()


def test_ina3221_reading_garbage_at_open_is_skipped_by_the_probe(tmp_path):
    dev = make_orin_hwmon(tmp_path)
    (dev / "in1_input").write_text("nan\n")
    write_proc(tmp_path, busy=10, idle=10)
    found = probe(root=tmp_path, tegrastats_cmd=str(tmp_path / "none"), vcgencmd_cmd=str(tmp_path / "none"))
    try:
        reasons = dict(found.tried)
        assert "in1_input" in reasons["ina3221"] and "not a reading" in reasons["ina3221"]
        assert found.sensor.name == "estimate"
    finally:
        found.sensor.close()
