"""NVML on a real NVIDIA GPU when there is one; here (no GPU, no driver) the absence must be a stated reason.

Below that, our translation of NVML's errors and counters, through a stand-in `pynvml` module in sys.modules.
"""

import json
import sys
import time

import pytest

from edgebench.agent.sensors.base import SensorUnavailable
from edgebench.errors import DeviceError, PermissionDenied


def _nvml_ready() -> str | None:
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return f"no NVIDIA driver ({exc})"
    pynvml.nvmlShutdown()
    return None


REASON = _nvml_ready()


@pytest.mark.skipif(REASON is not None, reason=f"needs an NVIDIA GPU and driver: {REASON}")
def test_nvml_reads_every_gpu():
    from edgebench.agent.sensors.nvml import open_sensor

    sensor = open_sensor()
    try:
        sensor.read()
        time.sleep(0.2)
        sample = sensor.read()
    finally:
        sensor.close()
    assert sensor.rails[0] == "GPU0"
    assert 1_000 < sample.total_mw < 2_000_000  # an idle-to-busy datacenter GPU draws 1 W .. 2 kW
    assert sample.total_mw == pytest.approx(sum(sample.rails_mw.values()))


@pytest.mark.skipif(REASON is None, reason="an NVIDIA driver is present: the absence path cannot be seen here")
def test_nvml_absent_is_a_reason():
    from edgebench.agent.sensors.nvml import open_sensor

    with pytest.raises(SensorUnavailable) as info:
        open_sensor()
    assert info.value.reason and ("nvidia-ml-py" in info.value.reason or "NVML" in info.value.reason)


# --- our translation of NVML's answers, through a stand-in `pynvml` (a fake of the third-party library) ------------


class FakeNvml:
    """A stand-in for the `pynvml` module: `gpus` energy counters (mJ), optional failures by function name."""

    NVML_ERROR_NO_PERMISSION = 4
    NVML_ERROR_GPU_IS_LOST = 15
    NVML_ERROR_NOT_SUPPORTED = 3

    class NVMLError(Exception):
        _text = {3: "Not Supported", 4: "Insufficient Permissions", 15: "GPU is lost", 999: "Unknown Error"}

        def __init__(self, value: int) -> None:
            super().__init__(value)
            self.value = value

        def __str__(self) -> str:
            return self._text[self.value]

    def __init__(self, energy_mj, fail=None):
        self.energy_mj = list(energy_mj)
        self.fail = dict(fail or {})
        self.shutdowns = 0

    def _maybe_fail(self, name, index=None):
        code = self.fail.get(name if index is None else (name, index))
        if code is not None:
            raise self.NVMLError(code)

    def nvmlInit(self):
        self._maybe_fail("nvmlInit")

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.energy_mj)

    def nvmlDeviceGetHandleByIndex(self, i):
        self._maybe_fail("nvmlDeviceGetHandleByIndex", i)
        return i

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        self._maybe_fail("nvmlDeviceGetTotalEnergyConsumption")
        return self.energy_mj[handle]

    def nvmlDeviceGetPowerUsage(self, handle):
        return 50_000


@pytest.fixture
def fake_nvml(monkeypatch):
    def install(energy_mj=(0,), fail=None):
        import types

        fake = FakeNvml(energy_mj, fail)
        module = types.ModuleType("pynvml")
        for name in dir(fake):
            if not name.startswith("_"):
                setattr(module, name, getattr(fake, name))
        module.state = fake
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return fake

    return install


@pytest.mark.parametrize(
    ("code", "error", "words"),
    [
        (4, PermissionDenied, "NVML may not open GPU 1 (Insufficient Permissions): give this user access to /dev/nvidia1"),
        (15, DeviceError, "NVML lost GPU 1 (GPU is lost): it fell off the bus"),
        (999, DeviceError, "NVML cannot open GPU 1 (Unknown Error): check that GPU with `nvidia-smi -i 1`"),
    ],
)
def test_handle_failure_is_one_clear_edgebench_error(fake_nvml, code, error, words):
    from edgebench.agent.sensors.base import probe

    fake = fake_nvml(energy_mj=(0, 0), fail={("nvmlDeviceGetHandleByIndex", 1): code})
    with pytest.raises(error) as info:
        probe("nvml")  # asked for by name: the reason becomes the user's error
    assert str(info.value).startswith(f"sensor nvml: {words}")
    assert "\n" not in str(info.value) and info.value.exit_code == (2 if error is PermissionDenied else 1)
    assert fake.shutdowns == 1  # NVML is released on the way out
    skipped = dict(probe(["nvml"]).tried)  # in auto, the same reason is listed and the probe goes on
    assert skipped["nvml"].startswith(words)


def test_handle_failure_through_the_cli_is_one_line(fake_nvml, tmp_path):
    from click.testing import CliRunner

    from edgebench.cli import cli

    fake_nvml(energy_mj=(0,), fail={("nvmlDeviceGetHandleByIndex", 0): 4})
    result = CliRunner().invoke(cli, ["sensors", "--sysfs-root", str(tmp_path), "--tegrastats", str(tmp_path / "x"),
                                      "--vcgencmd", str(tmp_path / "x"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    nvml = next(s for s in json.loads(result.output)["sources"] if s["name"] == "nvml")
    assert nvml["status"] == "skipped" and "Insufficient Permissions" in nvml["detail"]


def test_energy_counter_difference_is_power(fake_nvml):
    from edgebench.agent.sensors.nvml import NvmlSensor

    fake = fake_nvml(energy_mj=(1_000, 5_000))
    sensor = NvmlSensor()
    t0 = sensor._last[0]
    fake.energy_mj[:] = [1_000 + 300, 5_000 + 600]  # mJ since the first read
    sample = sensor.read()
    dt_s = (sample.t_ns - t0) / 1e9
    assert sample.rails_mw == pytest.approx({"GPU0": 300 / dt_s, "GPU1": 600 / dt_s})
    assert sample.total_mw == pytest.approx(900 / dt_s)
    fake.fail["nvmlDeviceGetTotalEnergyConsumption"] = 15
    with pytest.raises(DeviceError, match="NVML read failed: GPU is lost"):
        sensor.read()
    sensor.close()
    assert fake.shutdowns == 1


def test_a_counter_that_goes_backwards_is_a_device_error_not_negative_power(fake_nvml):
    from edgebench.agent.sensors.nvml import NvmlSensor

    fake = fake_nvml(energy_mj=(10_000,))
    sensor = NvmlSensor()
    fake.energy_mj[:] = [500]  # the driver was reloaded: its counter restarted from 0
    with pytest.raises(DeviceError, match="energy counter went backwards"):
        sensor.read()
    fake.energy_mj[:] = [900]  # the next interval is fine again
    assert sensor.read().rails_mw["GPU0"] > 0
    sensor.close()
