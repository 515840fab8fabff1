"""`um`: RuiDeng UM24C / UM25C / UM34C USB meters over Bluetooth serial (rfcomm).

Request/response: the host writes 0xF0 and the meter answers with a 130-byte big-endian record (layout in
docs/meters.md). Records are found by their model word and, for UM24C/UM25C, the 0xFF 0xF1 end marker; the
UM34C's last bytes are not publicly confirmed, so its records are accepted on the model word and values within
the model's ratings. Every record must also be physically possible (see `RATINGS` and `base.plausible`).
"""

from __future__ import annotations

import re
import struct

from edgebench.host.meters.base import MeterBase, plausible
from edgebench.records import MeterReading

POLL = b"\xf0"
RECORD_LEN = 130
END_MARKER = b"\xff\xf1"
MODELS = {0x0963: "UM24C", 0x09C9: "UM25C", 0x0D4C: "UM34C"}
_MODEL_BYTES = {struct.pack(">H", m): name for m, name in MODELS.items()}
# Any model word: one regex search finds the next candidate record start, so resynchronising after junk scans
# every byte once (slicing the buffer a byte at a time was quadratic: 1 MiB of junk took 25.8 s).
_MODEL_START = re.compile(b"|".join(re.escape(word) for word in _MODEL_BYTES))
_FIRST_BYTES = {word[:1] for word in _MODEL_BYTES}
# Ratings (maximum input volts, maximum amps) from the manufacturer's spec sheets (RuiDeng product pages; the
# wire-format notes in /work/shared/reference/meters.md give no ratings): UM24C 4.5-24 V, 0-3 A; UM25C
# 4.5-24 V, 0-5 A; UM34C 4.5-36 V, 0-4 A. A record beyond them is a misaligned or damaged one.
RATINGS = {"UM24C": (24.0, 3.0), "UM25C": (24.0, 5.0), "UM34C": (36.0, 4.0)}


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
        buf = self._buffer + data
        out = []
        pos = 0
        while True:
            found = _MODEL_START.search(buf, pos)
            if found is None:
                # Keep a last byte that may begin a model word; everything before it is junk.
                keep = len(buf) - 1 if buf[-1:] in _FIRST_BYTES else len(buf)
                if keep > pos:
                    self._lose_sync()
                pos = max(pos, keep)
                break
            start = found.start()
            if start > pos:
                self._lose_sync()
            if len(buf) - start < RECORD_LEN:
                pos = start
                break
            record = buf[start : start + RECORD_LEN]
            model = _MODEL_BYTES[found.group()]
            reading = self._record(record, model, t_ns)
            if reading is None:
                if model != "UM34C" and record[128:130] == END_MARKER:
                    # a whole record, framed at both ends, whose values cannot be real: one bad frame each (not one
                    # per stretch, which counted seven over-range records as one), and the next starts after it
                    self.bad_frames += 1
                    self._lost = False
                    pos = start + RECORD_LEN
                    continue
                self._lose_sync()  # a model word inside junk, or a damaged record: resync past its first byte
                pos = start + 1
                continue
            pos = start + RECORD_LEN
            self._lost = False
            out.append(reading)
        self._buffer = buf[pos:]
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
        max_v, max_a = RATINGS[model]
        # The meter computes power as volts x amps (DC): a record whose power is not that product, within one
        # step of each field, is damaged (a flipped bit in the u32 power word once stored 16,819 W for 42 W).
        if group > 9 or not plausible(
            watts, max_w=max_v * max_a, volts=volts, amps=amps, max_v=max_v, max_a=max_a,
            step_w=self.resolution_w, step_v=1 / v_div, step_a=1 / a_div, dc=True,
        ):  # fmt: skip
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
