"""INA3221 rails read straight from sysfs: the fastest source on a Jetson, no service needed.

Two layouts (onboard-power.md):
- L4T r32, NVIDIA IIO driver: `sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:deviceN/` with `rail_name_K`,
  `in_powerK_input` (mW), `in_voltageK_input` (mV), `in_currentK_input` (mA), K = 0..2.
- L4T r34+, upstream hwmon driver: `sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmonN/` with `inK_label`,
  `inK_input` (bus mV), `currK_input` (mA); no power file, so mW = mV x mA / 1000. `in7` ("sum of shunt
  voltages") and rails labelled `NC` are skipped; hwmonN changes between boots, so it is globbed.

Files are discovered once and kept open; each read() seeks to 0 and re-reads them (sysfs regenerates the value
on every read from offset 0). A value that is no reading (not a number, negative, above INA3221_MAX_BUS_MV or
INA3221_MAX_CURRENT_MA, a rail above MAX_RAIL_MW) is a DeviceError, never a rail; open_sensor() takes one reading
so that a tree that already reads garbage is skipped by the probe with its reason.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import DeviceError
from edgebench.records import PowerSample

from .base import MAX_RAIL_MW, SUM_RULE, SensorUnavailable, now_ns, total_mw, total_rule_for

IIO_DIR = "sys/bus/i2c/drivers/ina3221x"
HWMON_DIR = "sys/bus/i2c/drivers/ina3221"
# The INA3221's bus-voltage register tops out at 32.76 V; its shunt range (163.8 mV) over the smallest shunt
# Jetson carriers fit (about 5 mOhm) is about 33 A. Readings past these are not from the chip.
INA3221_MAX_BUS_MV = 32_760.0
INA3221_MAX_CURRENT_MA = 40_000.0
MAX_LABEL_CHARS = 64


@dataclass(frozen=True)
class Channel:
    """One rail: either a power file (mW) or a voltage (mV) and current (mA) file pair."""

    rail: str
    device: str  # "<bus>-<addr>" it sits on
    power_file: Path | None = None
    voltage_file: Path | None = None
    current_file: Path | None = None


def _text(path: Path) -> str:
    with path.open("rb") as f:
        return f.read(MAX_LABEL_CHARS + 1).decode("ascii", "replace").strip()[:MAX_LABEL_CHARS]


def _iio_channels(base: Path) -> list[Channel]:
    channels: list[Channel] = []
    for dev in sorted(base.glob("*-*/iio:device*")):
        for name_file in sorted(dev.glob("rail_name_*")):
            k = name_file.name.rsplit("_", 1)[1]
            rail = _text(name_file)
            if not rail or rail == "NC":
                continue
            power = dev / f"in_power{k}_input"
            volt, curr = dev / f"in_voltage{k}_input", dev / f"in_current{k}_input"
            if power.exists():
                channels.append(Channel(rail, dev.parent.name, power_file=power))
            elif volt.exists() and curr.exists():
                channels.append(Channel(rail, dev.parent.name, voltage_file=volt, current_file=curr))
    return channels


def _hwmon_channels(base: Path) -> list[Channel]:
    channels: list[Channel] = []
    for dev in sorted(base.glob("*-*/hwmon/hwmon*")):
        for label_file in sorted(dev.glob("in*_label")):
            k = label_file.name[2:].split("_", 1)[0]
            rail = _text(label_file)
            curr = dev / f"curr{k}_input"
            # in7 is the "sum of shunt voltages" channel: a voltage with no current, not a rail.
            if not rail or rail == "NC" or "shunt" in rail.lower() or not curr.exists():
                continue
            volt = dev / f"in{k}_input"
            if volt.exists():
                channels.append(Channel(rail, dev.parent.parent.name, voltage_file=volt, current_file=curr))
    return channels


def discover(root: Path = Path("/")) -> tuple[list[Channel], str]:
    """The INA3221 channels under `root` and which layout gave them ("iio (L4T r32)" or "hwmon (L4T r34+)")."""
    iio, hwmon = root / IIO_DIR, root / HWMON_DIR
    try:
        if iio.is_dir():
            channels = _iio_channels(iio)
            if channels:
                return channels, "iio (L4T r32)"
        if hwmon.is_dir():
            channels = _hwmon_channels(hwmon)
            if channels:
                return channels, "hwmon (L4T r34+)"
    except PermissionError as exc:
        raise SensorUnavailable(f"permission denied reading {exc.filename}: run as root or `sudo chmod o+r` "
                                "the INA3221 files", "permission") from None
    except OSError as exc:
        raise SensorUnavailable(f"cannot read INA3221 rail names ({exc.filename}: {exc.strerror})", "failed") from None
    if iio.is_dir() or hwmon.is_dir():
        raise SensorUnavailable(f"INA3221 driver present under {root} but no connected rail files found")
    raise SensorUnavailable(f"no INA3221 driver in sysfs ({iio} or {hwmon} missing): not a Jetson?")


class Ina3221Sensor:
    """Reads every connected INA3221 rail from open sysfs files."""

    name = "ina3221"
    estimate = False

    def __init__(self, channels: list[Channel], layout: str = "") -> None:
        if not channels:
            raise SensorUnavailable("no INA3221 rails to read")
        self.channels = channels
        self.layout = layout
        names = [c.rail for c in channels]
        # Two INA3221 chips can each carry a rail of the same name on some carriers: keep them apart.
        seen: dict[str, int] = {}
        self.rails = tuple(self._unique(n, seen) for n in names)
        self.total_rule = total_rule_for(self.rails)
        self._files: list[tuple[io.FileIO, ...]] = []
        try:
            for c in channels:
                paths = [c.power_file] if c.power_file else [c.voltage_file, c.current_file]
                self._files.append(tuple(io.FileIO(p, "r") for p in paths if p is not None))
        except PermissionError as exc:
            self.close()
            raise SensorUnavailable(
                f"permission denied reading {exc.filename}: run as root or `sudo chmod o+r` the INA3221 files",
                "permission",
            ) from None
        except OSError as exc:
            self.close()
            raise SensorUnavailable(f"cannot open {exc.filename}: {exc.strerror}", "failed") from None

    @staticmethod
    def _unique(name: str, seen: dict[str, int]) -> str:
        seen[name] = seen.get(name, 0) + 1
        return name if seen[name] == 1 else f"{name}#{seen[name]}"

    @staticmethod
    def _value(f: io.FileIO, high: float, unit: str) -> float:
        f.seek(0)
        data = f.read(64)
        if not data or not data.strip():
            raise ValueError(f"{f.name}: empty read")
        try:
            value = float(data)
        except ValueError:
            raise ValueError(f"{f.name}: {data[:24]!r} is not a number") from None
        if not 0.0 <= value <= high:  # NaN fails too
            raise ValueError(f"{f.name}: {data.strip()[:24].decode('ascii', 'replace')} is not a reading "
                             f"from 0 to {high:g} {unit}")
        return value

    def read(self) -> PowerSample:
        """All rails now, in mW, and the total under `total_rule`."""
        t_ns = now_ns()
        rails: dict[str, float] = {}
        try:
            for rail, files in zip(self.rails, self._files, strict=True):
                if len(files) == 1:
                    mw = self._value(files[0], MAX_RAIL_MW, "mW")
                else:
                    mv = self._value(files[0], INA3221_MAX_BUS_MV, "mV")
                    mw = mv * self._value(files[1], INA3221_MAX_CURRENT_MA, "mA") / 1000.0  # mV x mA -> mW
                if not mw <= MAX_RAIL_MW:
                    raise ValueError(f"rail {rail} reads {mw / 1000:g} W, above any Jetson rail")
                rails[rail] = mw
        except (OSError, ValueError) as exc:
            raise DeviceError(f"INA3221 read failed ({exc}): is the sensor driver still loaded?") from None
        return PowerSample(t_ns=t_ns, rails_mw=rails, total_mw=total_mw(rails, self.total_rule))

    def close(self) -> None:
        for files in self._files:
            for f in files:
                f.close()
        self._files = []

    def describe(self) -> str:
        total = "sum of the rails, no input rail on this board" if self.total_rule == SUM_RULE else self.total_rule
        return f"INA3221 {self.layout}: {', '.join(self.rails)}; total = {total}"


def open_sensor(root: Path = Path("/")) -> Ina3221Sensor:
    """Discover the INA3221 rails under `root` and open them (SensorUnavailable when there are none)."""
    channels, layout = discover(root)
    sensor = Ina3221Sensor(channels, layout)
    try:
        sensor.read()
    except DeviceError as exc:
        sensor.close()
        raise SensorUnavailable(str(exc), "failed") from None
    return sensor
