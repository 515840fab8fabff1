"""Raspberry Pi 5 PMIC rails through `vcgencmd pmic_read_adc`.

Lines read `   VDD_CORE_A current(7)=0.71440000A` and `  VDD_CORE_V volt(15)=0.72097620V`; a rail's power is
V x I where both `<rail>_A` and `<rail>_V` exist (names vary by firmware, so they are paired, not listed).
The total is the sum of the paired rails: it misses USB peripherals and PMIC losses.
"""

from __future__ import annotations

import re
import subprocess

from edgebench.errors import DeviceError
from edgebench.records import PowerSample

from .base import SensorUnavailable, now_ns, split_command

TOTAL_RULE = "sum of PMIC rails V x I (no USB peripherals, no PMIC losses)"
_LINE = re.compile(r"^\s*(\S+)_([AV])\s+\w+\(\d+\)=([-\d.eE+]+)[AV]\s*$")


def parse_pmic(text: str) -> dict[str, float]:
    """Rail -> power in mW from `vcgencmd pmic_read_adc` output (rails with both current and voltage)."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            (amps if m.group(2) == "A" else volts)[m.group(1)] = float(m.group(3))
    return {rail: volts[rail] * amps[rail] * 1000.0 for rail in amps if rail in volts}  # W -> mW


class Pi5Sensor:
    """Runs `vcgencmd pmic_read_adc` on every read."""

    name = "pi5"
    estimate = False
    total_rule = TOTAL_RULE

    def __init__(self, cmd: str = "vcgencmd") -> None:
        self.cmd = cmd
        self._argv = [*split_command(cmd, "vcgencmd"), "pmic_read_adc"]  # "sudo -n vcgencmd" works too
        self.rails = tuple(self._read_rails())

    def _read_rails(self) -> dict[str, float]:
        try:
            done = subprocess.run(self._argv, capture_output=True, text=True, timeout=5)
        except FileNotFoundError:
            raise SensorUnavailable(f"`{self.cmd}` not found: not a Raspberry Pi (or raspi-utils missing)") from None
        except PermissionError:
            raise SensorUnavailable(f"`{self.cmd}` is not executable by this user", "permission") from None
        except subprocess.TimeoutExpired:
            raise SensorUnavailable(f"`{self.cmd} pmic_read_adc` did not answer in 5 s", "failed") from None
        if done.returncode != 0:
            raise SensorUnavailable(
                f"`{self.cmd} pmic_read_adc` failed ({done.stderr.strip() or done.returncode}): Pi 5 only; "
                "older Pis have no current sensor, use a wall or USB meter", "missing")
        rails = parse_pmic(done.stdout)
        if not rails:
            raise SensorUnavailable(f"`{self.cmd} pmic_read_adc` printed no paired _A/_V rails")
        return rails

    def read(self) -> PowerSample:
        t_ns = now_ns()
        try:
            rails = self._read_rails()
        except SensorUnavailable as exc:
            raise DeviceError(f"Pi 5 PMIC read failed: {exc.reason}") from None
        return PowerSample(t_ns=t_ns, rails_mw=rails, total_mw=float(sum(rails.values())))

    def close(self) -> None:
        pass


def open_sensor(cmd: str = "vcgencmd") -> Pi5Sensor:
    """The Pi 5 PMIC sensor through `cmd` (SensorUnavailable when it is not a Pi 5)."""
    return Pi5Sensor(cmd)
