"""`lines`: one reading per text line, the simplest meter bridge (an Arduino, a script, a smart-plug poller).

Accepted lines: `12.3`, `W=12.3` (also `watts=`, `power=`, `power_w=`, `:` instead of `=`), `12.3 W`, or CSV
with a header line naming a watts column (`power_w`, `watts`, `w`, `power`); other CSV columns named
`voltage_v`/`volts`/`v`, `current_a`/`amps`/`a`, `pf`/`power_factor` are read too. Blank lines and `#`
comments are skipped; a line that is none of these counts as a bad frame, and so does a reading that cannot be
real (negative, beyond MAX_W, or more watts than its own volts x amps).
"""

from __future__ import annotations

import math
import re

from edgebench.host.meters.base import MeterBase, plausible
from edgebench.records import MeterReading

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PLAIN = re.compile(rf"^({_NUMBER})\s*(?:w|watts?)?$", re.IGNORECASE)
_KEYED = re.compile(rf"^(?:w|watts?|power|power_w)\s*[=:]\s*({_NUMBER})\s*(?:w)?$", re.IGNORECASE)
_WATT_NAMES = ("power_w", "watts", "watt", "w", "power")
_VOLT_NAMES = ("voltage_v", "volts", "voltage", "v")
_AMP_NAMES = ("current_a", "amps", "current", "a")
_PF_NAMES = ("power_factor", "pf")
MAX_LINE = 4096  # a stream with no newline for this long is garbage, not a line
# A text bridge can front any meter, so the bound is the largest supply one meter sees: a three-phase 400 V
# 63 A feed carries sqrt(3) x 400 x 63 = 43.6 kW. More is a misread line (or a unit in mW), not a load.
MAX_W = 50_000.0


def _decimals(text: str) -> int:
    mantissa = text.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


class LinesMeter(MeterBase):
    """Decoder for newline-terminated text readings."""

    name = "lines"

    def __init__(self, nominal_period_s: float = 1.0) -> None:
        super().__init__()
        self.nominal_period_s = nominal_period_s
        self.resolution_w = 1.0  # refined down to the finest decimal seen
        self._buffer = bytearray()
        self._columns: dict[str, int] | None = None

    def feed(self, data: bytes, t_ns: int) -> list[MeterReading]:
        if b"\n" not in data:
            self._buffer += data  # amortised append: byte-at-a-time reads stay linear
            if len(self._buffer) > MAX_LINE:
                self.bad_frames += 1
                self._buffer.clear()
            return []
        *lines, rest = (bytes(self._buffer) + data).split(b"\n")
        self._buffer = bytearray(rest)
        if len(self._buffer) > MAX_LINE:
            self.bad_frames += 1
            self._buffer.clear()
        out = []
        for raw in lines:
            reading = self._line(raw.replace(b"\x00", b"").decode("ascii", "replace").strip(), t_ns)
            if reading is not None:
                out.append(reading)
        return out

    def _checked(self, reading: MeterReading, steps: tuple[float, float, float]) -> MeterReading | None:
        step_w, step_v, step_a = steps
        if plausible(
            reading.power_w, max_w=MAX_W, volts=reading.voltage_v, amps=reading.current_a,
            step_w=step_w, step_v=step_v, step_a=step_a, extra=(reading.power_factor,),
        ):  # fmt: skip
            return reading
        self.bad_frames += 1
        return None

    def _see(self, text: str) -> float:
        value = float(text)
        if math.isfinite(value) and value >= 0:  # a rejected line must not refine the resolution
            self.resolution_w = min(self.resolution_w, 10.0 ** -_decimals(text))
        return value

    def _line(self, line: str, t_ns: int) -> MeterReading | None:
        if not line or line.startswith("#"):
            return None
        match = _PLAIN.match(line) or _KEYED.match(line)
        if match:
            reading = MeterReading(t_ns=t_ns, power_w=float(match.group(1)), meter=self.identity)
            if self._checked(reading, (0.0, 0.0, 0.0)) is None:
                return None
            self._see(match.group(1))
            return reading
        if "," in line:
            return self._csv(line, t_ns)
        self.bad_frames += 1
        return None

    def _csv(self, line: str, t_ns: int) -> MeterReading | None:
        cells = [c.strip() for c in line.split(",")]
        names = [c.lower() for c in cells]
        if any(n in _WATT_NAMES for n in names) and not any(re.fullmatch(_NUMBER, c) for c in cells):
            self._columns = {n: i for i, n in enumerate(names)}  # a header (again, e.g. after a restart)
            return None
        columns = self._columns
        if columns is None:
            self.bad_frames += 1
            return None

        def cell(options: tuple[str, ...]) -> str | None:
            for name in options:
                i = columns.get(name)
                if i is not None and i < len(cells) and re.fullmatch(_NUMBER, cells[i]):
                    return cells[i]
            return None

        def step(text: str | None) -> float:
            return 10.0 ** -_decimals(text) if text is not None else 0.0

        volts, amps, pf = cell(_VOLT_NAMES), cell(_AMP_NAMES), cell(_PF_NAMES)

        watts_i = next((columns[n] for n in _WATT_NAMES if n in columns), None)
        if watts_i is None or watts_i >= len(cells) or not re.fullmatch(_NUMBER, cells[watts_i]):
            self.bad_frames += 1
            return None
        reading = MeterReading(
            t_ns=t_ns,
            power_w=float(cells[watts_i]),
            meter=self.identity,
            voltage_v=float(volts) if volts is not None else None,
            current_a=float(amps) if amps is not None else None,
            power_factor=float(pf) if pf is not None else None,
        )
        if self._checked(reading, (step(cells[watts_i]), step(volts), step(amps))) is None:
            return None
        self._see(cells[watts_i])
        return reading
