"""`um`: RuiDeng UM24C / UM25C / UM34C USB meters over Bluetooth serial (rfcomm).

Request/response: the host writes 0xF0 and the meter answers with a 130-byte big-endian record (layout in
docs/meters.md). Records are found by their model word and, for UM24C/UM25C, the 0xFF 0xF1 end marker; the
UM34C's last bytes are not publicly confirmed, so its records are accepted on the model word and sane values.
"""

from __future__ import annotations

import struct

from edgebench.host.meters.base import MeterBase
from edgebench.records import MeterReading

POLL = b"\xf0"
RECORD_LEN = 130
END_MARKER = b"\xff\xf1"
MODELS = {0x0963: "UM24C", 0x09C9: "UM25C", 0x0D4C: "UM34C"}
_MODEL_BYTES = {struct.pack(">H", m): name for m, name in MODELS.items()}
MAX_VOLTS = 30.0  # the meters' input range is about 4.5-24 V; far above means we are misaligned


def _divisors(model: str) -> tuple[int, int]:
    """(counts per volt, counts per amp): the UM25C reports one more decimal."""
    return (1000, 10000) if model == "UM25C" else (100, 1000)


class UMMeter(MeterBase):
    """Decoder for UM24C/UM25C/UM34C records; `poll()` is the 0xF0 request."""

    name = "um"
    baudrate = 9600  # irrelevant over rfcomm; the HC-05 style module's default
    nominal_period_s = 0.1  # poll no faster than every 100 ms
    resolution_w = 0.001  # power in mW

    def __init__(self, nominal_period_s: float = 0.1) -> None:
        super().__init__()
        self.nominal_period_s = max(0.1, float(nominal_period_s))
        self.model: str | None = None
        self._buffer = b""
        self._lost = False

    @property
    def identity(self) -> str:
        return self.model or "um"

    def poll(self) -> bytes:
        return POLL

    def feed(self, data: bytes, t_ns: int) -> list[MeterReading]:
        self._buffer += data
        out = []
        while len(self._buffer) >= 2:
            model = _MODEL_BYTES.get(self._buffer[:2])
            if model is None:
                self._buffer = self._buffer[1:]
                self._lose_sync()
                continue
            if len(self._buffer) < RECORD_LEN:
                break
            record = self._buffer[:RECORD_LEN]
            reading = self._record(record, model, t_ns)
            if reading is None:
                self._buffer = self._buffer[1:]  # a model word inside junk: resync past it
                self._lose_sync()
                continue
            self._buffer = self._buffer[RECORD_LEN:]
            self._lost = False
            out.append(reading)
        return out

    def _lose_sync(self) -> None:
        # One bad frame per stretch of unusable bytes, however many reads it is skipped over in.
        if not self._lost:
            self.bad_frames += 1
            self._lost = True

    def _record(self, record: bytes, model: str, t_ns: int) -> MeterReading | None:
        if model != "UM34C" and record[128:130] != END_MARKER:
            return None
        v_div, a_div = _divisors(model)
        volts = struct.unpack_from(">H", record, 2)[0] / v_div
        amps = struct.unpack_from(">H", record, 4)[0] / a_div
        watts = struct.unpack_from(">I", record, 6)[0] / 1000
        group = struct.unpack_from(">H", record, 14)[0]
        if volts > MAX_VOLTS or group > 9:
            return None
        mwh = struct.unpack_from(">I", record, 16 + group * 8 + 4)[0]
        self.model = model
        return MeterReading(
            t_ns=t_ns, power_w=watts, meter=model, voltage_v=volts, current_a=amps, energy_wh=mwh / 1000
        )


def build_record(model: str, volts: float, amps: float, watts: float, mwh: int = 0, mah: int = 0) -> bytes:
    """A 130-byte record as the meter sends it (group 0 holds the totals)."""
    code = next(c for c, name in MODELS.items() if name == model)
    v_div, a_div = _divisors(model)
    rec = bytearray(RECORD_LEN)
    counts_v, counts_a = (
        min(0xFFFF, round(volts * v_div)),
        min(0xFFFF, round(amps * a_div)),
    )  # u16 fields clip
    struct.pack_into(">HHHI", rec, 0, code, counts_v, counts_a, round(watts * 1000))
    struct.pack_into(">HHH", rec, 10, 25, 77, 0)  # temperature C/F, selected group 0
    struct.pack_into(">II", rec, 16, mah, mwh)
    struct.pack_into(">I", rec, 122, min(9999999, round(volts / amps * 10)) if amps > 0 else 9999999)
    if model == "UM34C":
        rec[129] = sum(rec[:129]) & 0xFF  # a stand-in checksum: the real one is unconfirmed and never checked
    else:
        rec[128:130] = END_MARKER
    return bytes(rec)
