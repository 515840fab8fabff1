"""`wattsup`: Watts up? PRO / .net over USB serial (115200 8N1), ASCII packets `#<cmd>,<sub>,<argc>,<args>;`.

On open the logger sends `#V,R,0;` (version: learns the model) and `#L,W,3,E,,<interval>;` (start external
logging: one `#d` record per interval). Records arrive with CRLF and stray NUL bytes; unselected fields come
back as `_`. The version reply's model is read from the first argument (model 0 Standard, 1 PRO, 2 ES,
3 .net); that position is not confirmed by public documentation, so an unknown value leaves the identity as
plain "wattsup".
"""

from __future__ import annotations

from edgebench.host.meters.base import MeterBase, plausible
from edgebench.records import MeterReading

MODELS = {"0": "Standard", "1": "PRO", "2": "ES", "3": ".net"}
FIELDS = (
    "W", "V", "A", "WH", "Cost", "WH/Mo", "Cost/Mo", "Wmax", "Vmax", "Amax", "Wmin", "Vmin", "Amin", "PF", "DC",
    "PC", "Hz", "VA",
)  # fmt: skip
MAX_PACKET = 512  # a data record is under 100 bytes
# Ratings: the Watts up? PRO takes at most 15 A (its manual; the US model at 120 V is a 1800 W meter). The
# reference's real record (/work/shared/reference/meters.md) reads 227.7 V at 50 Hz, so 230 V models exist:
# volts are bounded by 230 V mains plus its 10 % tolerance, and watts by both limits together. Within them,
# real power can never exceed volts x amps (power factor <= 1).
MAX_A = 15.0
MAX_V = 253.0
MAX_W = MAX_A * MAX_V
STEP_V, STEP_A = 0.1, 0.001  # volts in tenths, amps in milliamps


def start_logging_command(interval_s: int) -> bytes:
    """The command that makes the meter stream one record every `interval_s` seconds."""
    return f"#L,W,3,E,,{int(interval_s)};".encode()


class WattsupMeter(MeterBase):
    """Decoder for Watts up? data records (and the version reply, for the model)."""

    name = "wattsup"
    baudrate = 115200
    resolution_w = 0.1  # W comes in tenths of a watt

    def __init__(self, interval_s: int = 1) -> None:
        super().__init__()
        self.interval_s = max(1, int(interval_s))  # the meter logs in whole seconds
        self.nominal_period_s = float(self.interval_s)
        self.model: str | None = None
        self.packets = 0  # well-formed packets of any kind (the auto probe counts these)
        self._buffer = b""

    @property
    def identity(self) -> str:
        return f"wattsup {self.model}" if self.model else "wattsup"

    def open_commands(self) -> bytes:
        return b"#V,R,0;" + start_logging_command(self.interval_s)

    def feed(self, data: bytes, t_ns: int) -> list[MeterReading]:
        buf = self._buffer + data.replace(b"\x00", b"")
        out = []
        pos = 0
        # One pass with an index: each search starts where the last one stopped, so a megabyte of '#' junk is
        # scanned once, not once per byte.
        while True:
            start = buf.find(b"#", pos)
            if start < 0:
                if buf[pos:].strip():
                    self.bad_frames += 1
                pos = len(buf)
                break
            if buf[pos:start].strip():
                self.bad_frames += 1  # bytes before a packet start that are not line ends
            nested = buf.find(b"#", start + 1)
            end = buf.find(b";", start + 1, nested if nested >= 0 else len(buf))
            if end < 0 and nested >= 0:
                self.bad_frames += 1  # a packet cut short by the next one
                pos = nested
                continue
            if end < 0:
                pos = start
                if len(buf) - start > MAX_PACKET:
                    self.bad_frames += 1
                    pos = len(buf)
                break
            packet = buf[start + 1 : end].decode("ascii", "replace")
            pos = end + 1
            reading = self._packet(packet, t_ns)
            if reading is not None:
                out.append(reading)
        self._buffer = buf[pos:]
        return out

    def _packet(self, packet: str, t_ns: int) -> MeterReading | None:
        fields = [f.strip() for f in packet.split(",")]
        if len(fields) < 3:
            self.bad_frames += 1
            return None
        cmd = fields[0]
        if cmd == "v":
            self.packets += 1
            if len(fields) > 3:
                self.model = MODELS.get(fields[3], self.model)
            return None
        if cmd != "d":
            if cmd[:1].islower():
                self.packets += 1  # header and other replies: legal, no reading
            # Upper case is a host command (our own, echoed by a loopback or a half-duplex adapter): ignored.
            return None
        values = fields[3:]
        try:
            argc = int(fields[2])
        except ValueError:
            argc = -1
        if argc != len(values) or len(values) < len(FIELDS):
            self.bad_frames += 1
            return None

        def num(name: str, divisor: float) -> float | None:
            text = values[FIELDS.index(name)]
            if text in ("_", ""):
                return None  # field not selected with #C
            return float(text) / divisor  # divide: 972 / 10 is exactly 97.2, 972 * 0.1 is not

        try:
            watts = num("W", 10)
            volts, amps, pf, wh = num("V", 10), num("A", 1000), num("PF", 100), num("WH", 10)
        except ValueError:
            self.bad_frames += 1
            return None
        if watts is None:
            self.bad_frames += 1  # a record without power is useless here; select W with #C
            return None
        if not plausible(
            watts, max_w=MAX_W, volts=volts, amps=amps, max_v=MAX_V, max_a=MAX_A,
            step_w=self.resolution_w, step_v=STEP_V, step_a=STEP_A, extra=(pf, wh),
        ) or (pf is not None and not 0 <= pf <= 1):  # fmt: skip
            self.bad_frames += 1  # nan, inf, negative, or beyond what the meter can measure
            return None
        self.packets += 1
        return MeterReading(
            t_ns=t_ns,
            power_w=watts,
            meter=self.identity,
            voltage_v=volts,
            current_a=amps,
            power_factor=pf,
            energy_wh=wh,
        )


def data_record(
    watts: float, volts: float = 120.0, pf: float = 1.0, wh: float = 0.0, hz: float = 60.0
) -> bytes:
    """A `#d` record as the meter sends it (CRLF-terminated), from physical values."""
    amps = watts / (volts * pf) if volts > 0 and pf > 0 else 0.0
    va = volts * amps
    values = [
        round(watts * 10), round(volts * 10), round(amps * 1000), round(wh * 10), 0, 0, 0,
        round(watts * 10), round(volts * 10), round(amps * 1000), round(watts * 10), round(volts * 10),
        round(amps * 1000), round(pf * 100), 0, 0, round(hz * 10), round(va * 10),
    ]  # fmt: skip
    return ("#d,-,18," + ",".join(str(v) for v in values) + ";\r\n").encode()
