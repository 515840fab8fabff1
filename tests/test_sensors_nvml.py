"""NVML on a real NVIDIA GPU when there is one; here (no GPU, no driver) the absence must be a stated reason."""

import time

import pytest
from edgebench.agent.sensors.base import SensorUnavailable


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
