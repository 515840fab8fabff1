"""`tweetawatt`: a Kill-a-Watt with an XBee Series 1 radio, heard through a receiver XBee in API mode 1.

Frames are API id 0x83 (RX I/O sample, 16-bit source address); the layout and the conversion follow the
original receiver program (see docs/meters.md). Integer division: the original is Python 2 and floors
`avgv = (max + min) / 2` and `V_i = (raw - avgv) * MAINSVPP / vpp`. By default this decoder does float math
(no bias from flooring, which shifts V by up to one step of 340/vpp volts); `py2_compat=True` floors both like
the original, for figures that must match old logs exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import BadInput
from edgebench.host.meters.base import MeterBase, plausible
from edgebench.records import MeterReading

START = 0x7E
API_RX_IO_16 = 0x83
MAINSVPP = 340.0  # 170 V peak x 2
CURRENTNORM = 15.5  # ADC counts per amp
VREF_BY_ADDRESS = (492, 498, 489, 492, 501, 493)  # the original per-sensor current zero offsets
DEFAULT_VREF = 492  # for addresses past the original table
AVG_SAMPLES = 17  # one 60 Hz cycle is about 16.6 samples at 1 ms
MAX_AMPS = 13.0  # the original discards readings above this as glitches
MAX_FRAME_LEN = 512  # an XBee API frame is far shorter; a bigger length field is a false start byte
# The Kill-a-Watt P4400's rating (its label and manual): 15 A at 125 V, so 1875 W. The conversion normalises
# the voltage to MAINSVPP whatever the mains, so watts above the rating are a damaged or miscalibrated packet.
RATED_A, RATED_V = 15.0, 125.0
MAX_W = RATED_A * RATED_V
# Sane calibration values: (low, high) for each key, checked when a calibration is loaded. vref is a zero offset
# on the 10-bit ADC (0..1023 counts); current_norm is ADC counts per amp (the original 15.5: at least one count
# per amp, at most the whole ADC range); mains_vpp is the mains' peak-to-peak volts, from 90 V RMS (254 Vpp) to
# 264 V RMS (747 Vpp), 100 V mains -10 % to 240 V mains +10 %.
CALIBRATION_RANGES = {"vref": (0.0, 1023.0), "current_norm": (1.0, 1023.0), "mains_vpp": (254.0, 747.0)}


@dataclass(frozen=True)
class Calibration:
    """Constants for one sensor: current zero offset (ADC counts), counts per amp, mains peak-to-peak volts."""

    vref: float
    current_norm: float = CURRENTNORM
    mains_vpp: float = MAINSVPP


def calibration_problem(key: str, value: object) -> str | None:
    """What is wrong with one calibration value (None if it is a finite number in its sane range)."""
    low, high = CALIBRATION_RANGES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"is {value!r}, not a number"
    if not math.isfinite(value):
        return f"is {value!r}, not a finite number"
    if not low <= value <= high:
        return f"is {value:g}, outside the sane range {low:g}..{high:g}"
    return None


def check_calibration(calibration: dict[int, Calibration], where: str = "calibration") -> None:
    """BadInput naming the address, the key and the fix when a value is not a finite number in its range."""
    for address, cal in calibration.items():
        for key in CALIBRATION_RANGES:
            problem = calibration_problem(key, getattr(cal, key))
            if problem is not None:
                raise BadInput(f"{where}: address {address}: {key} {problem}: {_CALIBRATION_FIX[key]}")


_CALIBRATION_FIX = {
    "vref": "set the ADC counts the current reads with no load (about 490-500)",
    "current_norm": "set the ADC counts per amp (15.5 in the original program)",
    "mains_vpp": "set the mains peak-to-peak volts (340 for 120 V mains, 650 for 230 V)",
}


def default_calibration(address: int) -> Calibration:
    """The original program's constants for a source address."""
    vref = VREF_BY_ADDRESS[address] if 0 <= address < len(VREF_BY_ADDRESS) else DEFAULT_VREF
    return Calibration(vref=float(vref))


def load_calibration(path: str | Path) -> dict[int, Calibration]:
    """Read a calibration JSON file: {"<address>": {"vref": .., "current_norm": .., "mains_vpp": ..}, ...}.

    Addresses may be decimal ("1") or hex ("0x0001"); omitted keys keep the original defaults.
    """
    from edgebench.files import read_json

    path = Path(path)
    if not path.exists():
        raise BadInput(f"calibration file {path} does not exist: give a JSON file of per-address constants")
    # read_json: non-UTF-8, deep nesting and huge integers are one line too, never a traceback
    doc = read_json(path, "fix or regenerate the calibration file")
    if not isinstance(doc, dict):
        raise BadInput(f"calibration file {path}: expected an object keyed by sensor address")
    out = {}
    for key, value in doc.items():
        try:
            address = int(str(key), 0)
        except ValueError:
            address = -1
        if not 0 <= address <= 0xFFFF or not isinstance(value, dict):
            raise BadInput(
                f"calibration file {path}: entry {key!r} must be an address (0..0xFFFF) with "
                '{"vref": counts, "current_norm": counts_per_amp, "mains_vpp": volts}'
            )
        unknown = sorted(set(value) - set(CALIBRATION_RANGES))
        if unknown:
            raise BadInput(
                f"calibration file {path}: entry {key!r} has unknown key {unknown[0]!r}: use "
                f"{', '.join(CALIBRATION_RANGES)}"
            )
        for name, given in value.items():
            problem = calibration_problem(name, given)
            if problem is not None:
                raise BadInput(
                    f"calibration file {path}: entry {key!r}: {name} {problem}: {_CALIBRATION_FIX[name]}"
                )
        base = default_calibration(address)
        out[address] = Calibration(
            vref=float(value.get("vref", base.vref)),
            current_norm=float(value.get("current_norm", base.current_norm)),
            mains_vpp=float(value.get("mains_vpp", base.mains_vpp)),
        )
    return out


@dataclass(frozen=True)
class IOSample:
    """One decoded 0x83 frame: source address, RSSI and per-sample ADC values by channel."""

    address: int
    rssi_dbm: int
    adc: dict[int, list[int]]  # channel -> samples


def checksum(body: bytes | bytearray) -> int:
    """XBee API checksum over the bytes from the API id to the end of the data."""
    return 0xFF - (sum(body) & 0xFF)


def _next_valid_frame(buf: bytearray, start: int) -> int:
    """Index of the first 0x7E at or after `start` that begins a complete frame with a good checksum; -1 if none."""
    i = buf.find(START, start)
    while i >= 0:
        if i + 3 <= len(buf):
            length = (buf[i + 1] << 8) | buf[i + 2]
            end = i + 3 + length
            if (
                0 < length <= MAX_FRAME_LEN
                and end < len(buf)
                and checksum(bytes(buf[i + 3 : end])) == buf[end]
            ):
                return i
        i = buf.find(START, i + 1)
    return -1


def parse_io_frame(body: bytes) -> IOSample | None:
    """Decode the body (API id .. last sample byte) of an 0x83 frame; None if it is not a well-formed one."""
    if len(body) < 8 or body[0] != API_RX_IO_16:
        return None
    address = (body[1] << 8) | body[2]
    count = body[5]
    dio_mask = ((body[6] & 0x01) << 8) | body[7]
    channels = [ch for ch in range(6) if body[6] & (1 << (ch + 1))]
    per_sample = (2 if dio_mask else 0) + 2 * len(channels)
    if count == 0 or len(body) != 8 + count * per_sample:
        return None
    adc: dict[int, list[int]] = {ch: [] for ch in channels}
    pos = 8
    for _ in range(count):
        if dio_mask:
            pos += 2
        for ch in channels:
            adc[ch].append(((body[pos] << 8) | body[pos + 1]) & 0x3FF)
            pos += 2
    return IOSample(address=address, rssi_dbm=-body[3], adc=adc)


def convert(
    voltage_raw: list[int], current_raw: list[int], cal: Calibration, *, py2_compat: bool = False
) -> tuple[float, float, float]:
    """The original receiver's conversion: (avg_watts, avg_amps, vrms_estimate) from one packet's samples."""
    v = voltage_raw[1:]  # sample 0 is usually corrupt
    i = current_raw[1:]
    max_v, min_v = max(v), min(v)
    vpp = max_v - min_v
    avgv: float
    volts: list[float]
    if py2_compat:
        avgv = (max_v + min_v) // 2
        volts = [((x - avgv) * int(cal.mains_vpp)) // vpp if vpp else 0 for x in v]
    else:
        avgv = (max_v + min_v) / 2
        volts = [(x - avgv) * cal.mains_vpp / vpp if vpp else 0.0 for x in v]
    amps = [(x - cal.vref) / cal.current_norm for x in i]
    n = min(AVG_SAMPLES, len(v))
    avg_amps = sum(abs(a) for a in amps[:n]) / n
    avg_watts = sum(abs(volts[k] * amps[k]) for k in range(n)) / n
    vrms = (sum(float(x) * x for x in volts[:n]) / n) ** 0.5
    return avg_watts, avg_amps, vrms


class TweetAWattMeter(MeterBase):
    """Decoder for XBee 0x83 frames from one or more Tweet-a-Watt senders."""

    name = "tweetawatt"
    nominal_period_s = 2.0  # the mod's radio sends about one packet every 2 s
    baudrate = 9600

    def __init__(
        self,
        calibration: dict[int, Calibration] | str | Path | None = None,
        *,
        py2_compat: bool = False,
        voltage_channel: int = 0,
        current_channel: int = 4,
    ) -> None:
        super().__init__()
        if isinstance(calibration, (str, Path)):
            calibration = load_calibration(calibration)
        self.calibration = dict(calibration or {})
        check_calibration(self.calibration)
        self.py2_compat = py2_compat
        self.voltage_channel = voltage_channel
        self.current_channel = current_channel
        self.glitches = 0  # well-formed packets dropped for avg_amps > 13
        self._buffer = bytearray()
        self._lost = False
        self._last: dict[int, tuple[int, float]] = {}  # address -> (t_ns, energy_wh)

    # One current count in one of 17 samples at peak volts: the finest step the average can take.
    resolution_w = MAINSVPP / 2 / CURRENTNORM / AVG_SAMPLES

    def calibration_for(self, address: int) -> Calibration:
        """Constants used for a source address (the file's entry, else the original defaults)."""
        return self.calibration.get(address) or default_calibration(address)

    def _lose_sync(self) -> None:
        # One bad frame per stretch of unusable bytes: a corrupt frame is skipped byte by byte and may hold
        # false 0x7E starts, which are the same bad frame, not new ones.
        if not self._lost:
            self.bad_frames += 1
            self._lost = True

    def feed(self, data: bytes, t_ns: int) -> list[MeterReading]:
        self._buffer += data
        out = []
        buf = self._buffer
        while True:
            start = buf.find(START)
            if start < 0:
                if buf:
                    self._lose_sync()  # garbage with no frame start
                buf.clear()
                break
            if start > 0:
                self._lose_sync()
                del buf[:start]
            if len(buf) < 3:
                break
            length = (buf[1] << 8) | buf[2]
            if length == 0 or length > MAX_FRAME_LEN:
                self._lose_sync()
                del buf[:1]  # a false start byte; resync on the next 0x7E
                continue
            if len(buf) < 3 + length + 1:
                later = _next_valid_frame(buf, 1)
                if later > 0:  # a complete good frame further on: this start byte was noise, do not wait
                    self._lose_sync()
                    del buf[:later]
                    continue
                break
            body = bytes(buf[3 : 3 + length])
            if checksum(body) != buf[3 + length]:
                self._lose_sync()
                del buf[:1]
                continue
            del buf[: 4 + length]
            self._lost = False
            if body[0] != API_RX_IO_16:
                continue  # other API frames (modem status, TX status) are legal and carry no reading
            reading = self._reading(body, t_ns)
            if reading is not None:
                out.append(reading)
        return out

    def _reading(self, body: bytes, t_ns: int) -> MeterReading | None:
        sample = parse_io_frame(body)
        if (
            sample is None
            or self.voltage_channel not in sample.adc
            or self.current_channel not in sample.adc
            or len(sample.adc[self.voltage_channel]) < 3
        ):
            self.bad_frames += 1
            return None
        cal = self.calibration_for(sample.address)
        watts, amps, vrms = convert(
            sample.adc[self.voltage_channel],
            sample.adc[self.current_channel],
            cal,
            py2_compat=self.py2_compat,
        )
        if amps > MAX_AMPS:
            self.glitches += 1
            return None
        # No volts x amps check: the average of |V_i x I_i| over a cycle is not vrms x mean |I| (a sine's form
        # factor), and the voltage is normalised, not measured.
        if not plausible(watts, max_w=MAX_W, extra=(vrms, amps)):
            self.bad_frames += 1  # beyond the Kill-a-Watt's rating (or not a number): not a real load
            return None
        last_t, energy_wh = self._last.get(sample.address, (t_ns, 0.0))
        energy_wh += watts * max(0, t_ns - last_t) / 1e9 / 3600
        self._last[sample.address] = (t_ns, energy_wh)
        return MeterReading(
            t_ns=t_ns,
            power_w=watts,
            meter=self.identity,
            address=f"{sample.address:04x}",
            voltage_v=vrms,
            current_a=amps,
            energy_wh=energy_wh,
        )


def build_frame(address: int, voltage_raw: list[int], current_raw: list[int], *, rssi: int = 44) -> bytes:
    """An 0x83 frame carrying ADC0 (voltage) and ADC4 (current) samples, as a sender XBee would emit it."""
    body = bytearray([API_RX_IO_16, (address >> 8) & 0xFF, address & 0xFF, rssi & 0xFF, 0, len(voltage_raw)])
    body += bytes([0x22, 0x00])  # ADC0 + ADC4, no DIO
    for v, i in zip(voltage_raw, current_raw, strict=True):
        body += bytes([(v >> 8) & 0x03, v & 0xFF, (i >> 8) & 0x03, i & 0xFF])
    return bytes([START, (len(body) >> 8) & 0xFF, len(body) & 0xFF]) + bytes(body) + bytes([checksum(body)])
