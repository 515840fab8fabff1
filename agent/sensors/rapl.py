"""Intel/AMD RAPL through powercap: cumulative energy counters, differenced into power.

`/sys/class/powercap/intel-rapl:N/{name,energy_uj,max_energy_range_uj}` per package, with subzones
(`intel-rapl:N:M`, e.g. `dram`). Package counters already include their core/uncore subzones, so the total is
the sum of the packages plus the dram subzones (dram sits outside the package domain): nothing counted twice.
Where a `psys` zone exists (platform, laptops) it contains the packages and is the total by itself.
A counter wraps at max_energy_range_uj: a negative difference gets the range added.
Since 2020 (PLATYPUS, CVE-2020-8694: energy readings leak secrets through power side channels) energy_uj is
readable by root only.
A counter or range that is no reading (not digits, more than a u64, a counter past its range) is
SensorUnavailable when opening and a DeviceError when reading, never a rail. The power between two reads is not
bounded: the counters move in about 1 ms steps, so two reads 0.1 ms apart can honestly show ten times the power.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import DeviceError
from edgebench.records import PowerSample

from .base import SensorUnavailable, now_ns

POWERCAP_DIR = "sys/class/powercap"
PERMISSION_FIX = (
    "energy_uj is root-only since PLATYPUS (CVE-2020-8694): grant read access with "
    "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj` (until reboot) or a udev rule that does the same"
)
# The kernel's counters are u64 in µJ; a longer text is not one.
MAX_COUNTER_DIGITS = 20


def _counter(text: bytes | str, what: str, high: int = (1 << 64) - 1) -> int:
    """A µJ counter or range from sysfs text: digits only, within 0..high; ValueError naming `what` otherwise."""
    raw = text.strip()
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_COUNTER_DIGITS or int(raw) > high:
        raise ValueError(f"{what}: {raw[:24]!r} is not a counter from 0 to {high}")
    return int(raw)


def _name(path: Path, default: str) -> str:
    if not path.exists():
        return default
    with path.open("rb") as f:
        return f.read(64).decode("ascii", "replace").strip() or default


@dataclass(frozen=True)
class Zone:
    """One counted RAPL zone: its rail name, counter file and wrap range (µJ)."""

    rail: str
    energy_file: Path
    max_range_uj: int


def counter_delta_uj(previous_uj: int, current_uj: int, max_range_uj: int) -> int:
    """Energy between two counter reads, across one wrap at max_range_uj."""
    delta = current_uj - previous_uj
    return delta + max_range_uj if delta < 0 else delta


def discover(root: Path = Path("/")) -> list[Zone]:
    """Package zones and their dram subzones under `root` (SensorUnavailable when none)."""
    base = root / POWERCAP_DIR
    zones: list[Zone] = []

    def max_range(zone: Path) -> int:
        path = zone / "max_energy_range_uj"
        value = _counter(path.read_bytes()[:64], str(path))
        if value == 0:
            raise ValueError(f"{path}: a range of 0")
        return value

    try:
        for pkg in sorted(base.glob("intel-rapl:*")):
            parts = pkg.name.split(":")
            if len(parts) != 2 or not (pkg / "energy_uj").exists():
                continue  # subzones are visited under their package; `intel-rapl` (no index) is the control type
            name = _name(pkg / "name", pkg.name)
            zones.append(Zone(f"{name}", pkg / "energy_uj", max_range(pkg)))
            for sub in sorted(pkg.glob(f"{pkg.name}:*")):
                if _name(sub / "name", "") == "dram" and (sub / "energy_uj").exists():
                    zones.append(Zone(f"{name}-dram", sub / "energy_uj", max_range(sub)))
    except (OSError, ValueError) as exc:
        raise SensorUnavailable(f"cannot read the RAPL zones under {base} ({exc}): is powercap intact?",
                                "failed") from None
    if not zones:
        raise SensorUnavailable(f"no RAPL zones under {base}: not an Intel/AMD machine, or powercap not loaded")
    return zones


class RaplSensor:
    """Mean power of every zone since the previous read, from the energy counters."""

    name = "rapl"
    estimate = False
    counter_based = True  # each read() is the mean power since the previous one: rail_energy differences it

    def __init__(self, zones: list[Zone]) -> None:
        self.zones = zones
        self.rails = tuple(z.rail for z in zones)
        # psys (laptops, since Skylake) is the whole platform and already contains the packages: when present it
        # is the total on its own, otherwise packages + dram.
        self._total_rails = tuple(r for r in self.rails if r == "psys") or self.rails
        self.total_rule = "psys (platform)" if self._total_rails == ("psys",) else "sum of package + dram zones"
        self._files: list[io.FileIO] = []
        try:
            for z in zones:
                self._files.append(io.FileIO(z.energy_file, "r"))
            self._last = (now_ns(), self._counters())
        except PermissionError as exc:
            self.close()
            raise SensorUnavailable(f"permission denied on {exc.filename or 'energy_uj'}: {PERMISSION_FIX}",
                                    "permission") from None
        except (OSError, ValueError) as exc:
            self.close()
            raise SensorUnavailable(f"cannot read RAPL counters: {exc}", "failed") from None

    def _counters(self) -> list[int]:
        values = []
        for f, z in zip(self._files, self.zones, strict=True):
            f.seek(0)
            values.append(_counter(f.read(64), str(z.energy_file), z.max_range_uj))
        return values

    def read(self) -> PowerSample:
        """Mean power per zone since the previous read (the first read follows the open)."""
        t_ns = now_ns()
        try:
            counters = self._counters()
        except (OSError, ValueError) as exc:
            raise DeviceError(f"RAPL read failed: {exc}") from None
        t0, previous = self._last
        self._last = (t_ns, counters)
        dt_s = max(t_ns - t0, 1) / 1e9
        rails = {
            z.rail: counter_delta_uj(p, c, z.max_range_uj) / dt_s / 1000.0  # µJ/s = µW -> mW
            for z, p, c in zip(self.zones, previous, counters, strict=True)
        }
        return PowerSample(t_ns=t_ns, rails_mw=rails, total_mw=float(sum(rails[r] for r in self._total_rails)))

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []


def open_sensor(root: Path = Path("/")) -> RaplSensor:
    """Discover and open the RAPL counters under `root`."""
    return RaplSensor(discover(root))
