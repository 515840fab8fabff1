"""NVIDIA discrete GPUs through NVML (nvidia-ml-py, imported lazily).

`nvmlDeviceGetTotalEnergyConsumption` (mJ since driver load, Volta and later) is preferred: differenced, it is
exact energy. Older GPUs fall back to `nvmlDeviceGetPowerUsage` (mW, a board-averaged instant). Not usable on a
Jetson (NVML answers not supported there).
"""

from __future__ import annotations

import math
from typing import Any

from edgebench.errors import DeviceError
from edgebench.records import PowerSample

from .base import SensorUnavailable, now_ns


class NvmlSensor:
    """Every GPU's power as one rail each (GPU0, GPU1, ...); total = their sum."""

    name = "nvml"
    estimate = False
    total_rule = "sum of GPUs"

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise SensorUnavailable("nvidia-ml-py not installed: `pip install nvidia-ml-py`", "dependency") from None
        self._nv: Any = pynvml
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            raise SensorUnavailable(f"NVML unavailable ({exc}): no NVIDIA driver loaded?") from None
        if count == 0:
            pynvml.nvmlShutdown()
            raise SensorUnavailable("NVML found no GPU")
        handles = []
        for i in range(count):
            try:
                handles.append(pynvml.nvmlDeviceGetHandleByIndex(i))
            except pynvml.NVMLError as exc:
                self._shutdown()
                raise _handle_error(pynvml, i, exc) from None
        self._handles = handles
        self.rails = tuple(f"GPU{i}" for i in range(count))
        self._energy = True
        self.counter_based = True  # total-energy counter: rail_energy takes its difference over a window
        try:
            self._last = (now_ns(), [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles])
        except pynvml.NVMLError:
            self._energy = False  # pre-Volta: instant power only
            self.counter_based = False
            try:
                pynvml.nvmlDeviceGetPowerUsage(self._handles[0])
            except pynvml.NVMLError as exc:
                pynvml.nvmlShutdown()
                raise SensorUnavailable(f"NVML has no power reading for this GPU ({exc}): a Jetson?") from None

    def read(self) -> PowerSample:
        nv = self._nv
        t_ns = now_ns()
        try:
            if self._energy:
                energy_mj = [nv.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles]
                t0, prev = self._last
                self._last = (t_ns, energy_mj)
                dt_s = max(t_ns - t0, 1) / 1e9
                powers = [(e - p) / dt_s for e, p in zip(energy_mj, prev, strict=True)]  # mJ/s = mW
            else:
                powers = [float(nv.nvmlDeviceGetPowerUsage(h)) for h in self._handles]  # mW
        except nv.NVMLError as exc:
            raise DeviceError(f"NVML read failed: {exc}") from None
        for rail, mw in zip(self.rails, powers, strict=True):
            if not (math.isfinite(mw) and mw >= 0):  # a counter that went back: the driver was reloaded
                what = "energy counter went backwards" if self._energy else f"power reads {mw} mW"
                raise DeviceError(f"NVML {rail}: {what}: was the driver reloaded? measure again")
        rails = dict(zip(self.rails, powers, strict=True))
        return PowerSample(t_ns=t_ns, rails_mw=rails, total_mw=float(sum(powers)))

    def _shutdown(self) -> None:
        try:
            self._nv.nvmlShutdown()
        except self._nv.NVMLError:
            pass  # already torn down; nothing left to release

    def close(self) -> None:
        self._shutdown()


# NVML return codes (nvml.h) that have a fix the user can apply.
_NO_PERMISSION = 4
_GPU_IS_LOST = 15


def _handle_error(nv: Any, index: int, exc: Exception) -> SensorUnavailable:
    """nvmlDeviceGetHandleByIndex's failure for GPU `index` as a reason that says what to do."""
    code = getattr(exc, "value", None)
    if code == getattr(nv, "NVML_ERROR_NO_PERMISSION", _NO_PERMISSION):
        return SensorUnavailable(
            f"NVML may not open GPU {index} ({exc}): give this user access to /dev/nvidia{index} "
            "(group video, or the driver's NVreg_DeviceFileMode) or run as root", "permission")
    if code == getattr(nv, "NVML_ERROR_GPU_IS_LOST", _GPU_IS_LOST):
        return SensorUnavailable(
            f"NVML lost GPU {index} ({exc}): it fell off the bus; check `nvidia-smi` and dmesg, reset or reboot",
            "failed")
    return SensorUnavailable(
        f"NVML cannot open GPU {index} ({exc}): check that GPU with `nvidia-smi -i {index}`", "failed")


def open_sensor() -> NvmlSensor:
    """NVML power of every GPU (SensorUnavailable without the package, a driver or a GPU)."""
    return NvmlSensor()
