"""Raspberry Pi 5 PMIC rails through `vcgencmd pmic_read_adc`.

Lines read `   VDD_CORE_A current(7)=0.71440000A` and `  VDD_CORE_V volt(15)=0.72097620V`; a rail's power is
V x I where both `<rail>_A` and `<rail>_V` exist (names vary by firmware, so they are paired, not listed).
The total is the sum of the paired rails: it misses USB peripherals and PMIC losses.
A value that is no reading (not a number, negative, or above PMIC_MAX_V / PMIC_MAX_A) is a ProtocolError naming
the line, never a rail: the command's output is text we do not control.
"""

from __future__ import annotations

import math
import re
import subprocess

from edgebench.errors import DeviceError, ProtocolError
from edgebench.records import PowerSample

from .base import MAX_RAIL_MW, SensorUnavailable, now_ns, split_command

TOTAL_RULE = "sum of PMIC rails V x I (no USB peripherals, no PMIC losses)"
# The value is everything between `=` and the closing unit, so `nanA` or `1.2.3V` is a bad reading, not a skipped line.
_LINE = re.compile(r"^\s*(\S+)_([AV])\s+\w+\(\d+\)=([^\s=]*)[AV]\s*$")
# The Pi 5 takes 5 V (EXT5V_V) and its PMIC rails are a few amps at most; far above that is garbage.
PMIC_MAX_V = 30.0
PMIC_MAX_A = 50.0
MAX_OUTPUT_CHARS = 1 << 20  # the real output is about 2 kB


def parse_pmic(text: str) -> dict[str, float]:
    """Rail -> power in mW from `vcgencmd pmic_read_adc` output (rails with both current and voltage).

    Lines that do not look like readings are ignored; a reading line with a value that is not a finite
    non-negative number within PMIC_MAX_V / PMIC_MAX_A (or a rail above MAX_RAIL_MW) is a ProtocolError.
    """
    if len(text) > MAX_OUTPUT_CHARS:
        raise ProtocolError(f"vcgencmd printed {len(text)} characters, not a PMIC reading: is it the Pi 5 vcgencmd?")
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        unit = m.group(2)
        try:
            value = float(m.group(3)) if len(m.group(3)) <= 32 else math.nan
        except ValueError:
            value = math.nan
        high = PMIC_MAX_A if unit == "A" else PMIC_MAX_V
        if not 0.0 <= value <= high:  # NaN fails too
            raise ProtocolError(
                f"vcgencmd pmic_read_adc line {line.strip()[:80]!r}: {m.group(3)[:24]!r} is not a reading "
                f"from 0 to {high:g} {unit}: check the firmware (`sudo rpi-eeprom-update`)"
            )
        (amps if unit == "A" else volts)[m.group(1)] = value
    rails = {rail: volts[rail] * amps[rail] * 1000.0 for rail in amps if rail in volts}  # W -> mW
    for rail, mw in rails.items():
        if mw > MAX_RAIL_MW:
            raise ProtocolError(f"vcgencmd pmic_read_adc: rail {rail} reads {mw / 1000:g} W, above any Pi 5 rail")
    return rails


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
            done = subprocess.run(
                self._argv, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=5
            )
        except FileNotFoundError:
            raise SensorUnavailable(f"`{self.cmd}` not found: not a Raspberry Pi (or raspi-utils missing)") from None
        except PermissionError:
            raise SensorUnavailable(f"`{self.cmd}` is not executable by this user", "permission") from None
        except subprocess.TimeoutExpired:
            raise SensorUnavailable(f"`{self.cmd} pmic_read_adc` did not answer in 5 s", "failed") from None
        except OSError as exc:  # e.g. ENOEXEC: not a program at all
            raise SensorUnavailable(f"`{self.cmd}` cannot be run ({exc.strerror or exc}): check the command",
                                    "failed") from None
        if done.returncode != 0:
            why = " ".join(done.stderr.split())[:200] or done.returncode
            raise SensorUnavailable(
                f"`{self.cmd} pmic_read_adc` failed ({why}): Pi 5 only; "
                "older Pis have no current sensor, use a wall or USB meter", "missing")
        try:
            rails = parse_pmic(done.stdout)
        except ProtocolError as exc:
            raise SensorUnavailable(str(exc), "failed") from None
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
