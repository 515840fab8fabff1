"""`wattsup`: Watts up? PRO / .net over USB serial (115200 8N1), ASCII packets `#<cmd>,<sub>,<argc>,<args>;`.

On open the logger sends `#V,R,0;` (version: learns the model) and `#L,W,3,E,,<interval>;` (start external
logging: one `#d` record per interval). Records arrive with CRLF and stray NUL bytes; unselected fields come
back as `_`. The version reply's model is read from the first argument (model 0 Standard, 1 PRO, 2 ES,
3 .net); that position is not confirmed by public documentation, so an unknown value leaves the identity as
plain "wattsup".
"""

from __future__ import annotations

from edgebench.host.meters.base import MeterBase
from edgebench.records import MeterReading

MODELS = {"0": "Standard", "1": "PRO", "2": "ES", "3": ".net"}
FIELDS = (
    "W", "V", "A", "WH", "Cost", "WH/Mo", "Cost/Mo", "Wmax", "Vmax", "Amax", "Wmin", "Vmin", "Amin", "PF", "DC",
    "PC", "Hz", "VA",
)  # fmt: skip
MAX_PACKET = 512  # a data record is under 100 bytes


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
        self._buffer += data.replace(b"\x00", b"")
        out = []
        while True:
            start = self._buffer.find(b"#")
            if start < 0:
                if self._buffer.strip():
                    self.bad_frames += 1
                self._buffer = b""
                break
            if self._buffer[:start].strip():
                self.bad_frames += 1  # bytes before a packet start that are not line ends
            self._buffer = self._buffer[start:]
            end = self._buffer.find(b";")
            nested = self._buffer.find(b"#", 1)
            if 0 < nested < (end if end >= 0 else len(self._buffer)):
                self.bad_frames += 1  # a packet cut short by the next one
                self._buffer = self._buffer[nested:]
                continue
            if end < 0:
                if len(self._buffer) > MAX_PACKET:
                    self.bad_frames += 1
                    self._buffer = b""
                break
            packet = self._buffer[1:end].decode("ascii", "replace")
            self._buffer = self._buffer[end + 1 :]
            reading = self._packet(packet, t_ns)
            if reading is not None:
                out.append(reading)
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
