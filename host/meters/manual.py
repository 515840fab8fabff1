"""The manual meter: a plain Kill-a-Watt (no data port) read by a person, who types what its display shows.

`--meter manual` on `measure`, `run` and `meter log`. Each reading is timed when Enter is pressed. At each
window the terminal says what runs and asks for the display's watts; the person types one or more readings
(`12.3` or `12.3 W`), `u` undoes the last one, `c 12.4` corrects it (keeping its time), and an empty line says
the window's readings are done. The last reading stays correctable until the next one is typed, the window
ends or an empty line is typed; then it is written to the store. A window's power is the mean of its readings
(`edgebench.host.spot`: "spot" sampling); a window with fewer than two is invalid (one says nothing of how much
the display moves), never guessed.

`--kwh` (counter mode, for long runs and training): the person types the cumulative kWh instead, at the start
and end of each window (and whenever they like in between; the first before anything is measured); the energy
is the counter's advance, and windows too short for its 0.01 kWh steps are refused with the figure ("counter"
sampling).

Readings written on paper are entered later as a CSV that `pair` (and anything reading a meter log) takes:
a header naming a time column (`time`, `timestamp` or `datetime`: ISO 8601, local time unless it says its zone,
or unix seconds) and a value column (`watts`, `w` or `power_w` for display readings; `kwh` for the counter).
"""

from __future__ import annotations

import csv
import math
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from edgebench.console import warn
from edgebench.errors import BadInput
from edgebench.host.logger import BaseLogger, LoggerStats
from edgebench.records import MeterReading, MeterTrace

if TYPE_CHECKING:
    from edgebench.host.measure import MeterSource, Plan

# The P4400 shows watts to 0.1 W and is rated 15 A at 125 V: a typed value beyond 1875 W is a typo.
DISPLAY_RESOLUTION_W = 0.1
MAX_W = 1875.0
MAX_KWH = 9999.99  # the display's largest kWh figure
PERIOD_S = 5.0  # a person reads the display about every 5 s: 10 readings x 5 s x 1.2 is the 60 s window
WINDOW_S = 60.0  # shortest window by default: a steady display and about six readings at a person's pace
KWH_WINDOW_S = 3600.0  # 0.01 kWh steps: an hour is one step at 10 W (`spot.MIN_COUNTER_STEPS` decide validity)
COUNTER_WAIT_S = 900.0  # how long a session waits for the kWh typed at a window's end
IDENTITY = "manual Kill-a-Watt"
HELP = (
    "type the watts on the display (12.3), Enter after each; u: undo the last; c 12.4: correct it; "
    "an empty line: done with this window; ?: this help"
)
KWH_HELP = (
    "type the kWh counter on the display (0.37), Enter after each; u: undo the last; c 0.38: correct it; "
    "?: this help"
)


class ManualLogger(BaseLogger):
    """Readings typed on `stream` (default: standard input) into the store at `out`; prompts on stderr.

    `window(label, kind)` opens a window (the session's prompt) and `window(None)` closes it; in `meter log`
    there are no windows and every reading is logged as typed.
    """

    manual = True
    protocol = "manual"

    def __init__(
        self,
        out: str | Path | None = None,
        *,
        kwh: bool = False,
        stream: IO[str] | IO[bytes] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__("manual", out)
        self.kwh = kwh
        self.sampling = "counter" if kwh else "spot"
        self.stream = stream
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self.period_s = PERIOD_S
        self.min_window_s = KWH_WINDOW_S if kwh else WINDOW_S
        self.typos = 0
        self.corrections = 0
        self.input_ended = False
        self._pending: MeterReading | None = None
        self._window: str | None = None
        self._window_values: list[float] = []
        self._counter_last: MeterReading | None = None  # the last counter reading committed (kwh mode)
        self._mutex = threading.RLock()
        self._fd: int | None = None
        self._buffer = b""

    @property
    def identity(self) -> str:
        return IDENTITY + (" kWh counter" if self.kwh else "")

    def _nominal_period_s(self) -> float:
        return self.period_s

    @property
    def resolution_w(self) -> float:
        return DISPLAY_RESOLUTION_W

    def introduction(self) -> str:
        """What the person is told once, at the start."""
        if self.kwh:
            return (
                f"manual meter, kWh counter: type the Kill-a-Watt's kWh figure at the start and end of each window "
                f"(windows of {self.min_window_s / 3600:g} h or more: its 0.01 kWh steps need them); {KWH_HELP}"
            )
        return (
            f"manual meter: windows of {self.min_window_s:g} s or more, so the display settles and you can type "
            f"several readings; {HELP}"
        )

    def silence_diagnosis(self, seconds: float) -> str | None:
        if self.stats.readings:
            return None
        return f"no reading typed in {seconds:.0f} s ({self.typos} lines were not readings)"

    # --- lifecycle ----------------------------------------------------------------------------------------

    def _opened(self) -> bool:
        return self._fd is not None or self.stream is not None and self._store is not None

    def open(self) -> None:
        """Open the store and the input (standard input unless a stream was given)."""
        self._stop.clear()
        if self.stream is None:
            self.stream = sys.stdin
        if self.stream is None or getattr(self.stream, "closed", False):
            raise BadInput("--meter manual reads the readings you type: run it in a terminal (standard input is closed)")
        try:
            self._fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None  # a Python stream without a descriptor (a test's StringIO): read lines from it
        self._open_store()
        self._record_meta()

    def stop(self) -> None:
        self.commit()
        super().stop()

    def run(
        self, duration_s: float | None = None, *, on_tick: Callable[[Any], None] | None = None, tick_s: float = 0.5
    ) -> LoggerStats:
        try:
            return super().run(duration_s, on_tick=on_tick, tick_s=tick_s)
        finally:
            self.commit()

    def _finish(self) -> None:
        self.commit()
        super()._finish()

    # --- input --------------------------------------------------------------------------------------------

    def _lines(self, timeout_s: float) -> list[str] | None:
        """Lines typed within `timeout_s` ([] if none); None once the input has ended."""
        if self._fd is None:
            assert self.stream is not None  # open() chose it
            line = self.stream.readline()
            if not line:
                return None
            return [line.decode(errors="replace") if isinstance(line, bytes) else line]
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout_s)
        except (OSError, ValueError):
            return None
        if not ready:
            return []
        try:
            data = os.read(self._fd, 4096)
        except OSError:
            return None
        if not data:
            return None
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def _loop(self, deadline: float | None, on_tick: Callable[[Any], None] | None = None, tick_s: float = 0.5) -> None:
        next_tick = time.monotonic() + tick_s
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            timeout = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            lines = self._lines(timeout)
            if lines is None:
                self.input_ended = True
                self.commit()
                if self._window is not None or deadline is None and on_tick is None:
                    warn("the input ended (Ctrl-D or a closed pipe): no more readings can be typed")
                if on_tick is not None or self._thread is None:  # `meter log`: the end of the input ends it
                    return
                self._stop.wait()  # a session goes on; its windows will say they have no reading
                return
            for line in lines:
                self.handle(line, time.time_ns())
            with self._mutex:
                self._flush_if_due()
            if on_tick is not None and time.monotonic() >= next_tick:
                on_tick(self)
                next_tick = time.monotonic() + tick_s

    def handle(self, line: str, t_ns: int) -> None:
        """One typed line, timed `t_ns` (when Enter was pressed)."""
        text = line.strip().replace("\r", "")
        word = text.lower()
        with self._mutex:
            if not text:
                self._done()
            elif word in ("?", "h", "help"):
                self.say("  " + (KWH_HELP if self.kwh else HELP))
            elif word in ("u", "undo"):
                self._undo()
            elif word in ("q", "quit") and self._thread is None:
                self.request_stop()
            elif word.startswith(("=", "c ", "c=")) or (word[:1] == "c" and word[1:2].isdigit()):
                self._correct(text[1:].strip().lstrip("=").strip())
            else:
                value = self._value(text)
                if value is not None:
                    self._new(value, t_ns)

    def _value(self, text: str) -> float | None:
        unit = "kwh" if self.kwh else "w"
        body = text.lower().replace(" ", "")
        for suffix in ((unit, "kw·h") if self.kwh else ("watts", "watt", "w")):
            if body.endswith(suffix):
                body = body[: -len(suffix)]
                break
        try:
            value = float(body.replace(",", "."))
        except ValueError:
            value = math.nan
        top = MAX_KWH if self.kwh else MAX_W
        what = "the kWh counter" if self.kwh else "the watts on the display"
        example = "0.37" if self.kwh else "12.3"
        if not math.isfinite(value) or value < 0:
            self.typos += 1
            self.say(f"  {text!r} is not a reading: type {what}, like {example} (? for help)")
            return None
        if value > top:
            self.typos += 1
            self.say(f"  {value:g} is beyond what the Kill-a-Watt shows ({top:g}): a typo? not kept")
            return None
        return value

    def _reading(self, value: float, t_ns: int) -> MeterReading:
        if not self.kwh:
            return MeterReading(t_ns=t_ns, power_w=value, meter=self.identity)
        last = self._counter_last
        power = 0.0
        if last is not None and t_ns > last.t_ns and last.energy_wh is not None:
            power = max(0.0, (value * 1000 - last.energy_wh) * 3600 / ((t_ns - last.t_ns) / 1e9))
        return MeterReading(t_ns=t_ns, power_w=power, meter=self.identity, energy_wh=value * 1000)

    def _new(self, value: float, t_ns: int) -> None:
        if self.kwh:
            floor = self._pending or self._counter_last
            if floor is not None and floor.energy_wh is not None and value * 1000 < floor.energy_wh - 1e-9:
                self.typos += 1
                self.say(f"  {value:g} kWh is below the last counter reading ({floor.energy_wh / 1000:g} kWh): a typo? "
                         "not kept (c VALUE corrects the last one)")  # fmt: skip
                return
        self.commit()
        self._pending = self._reading(value, t_ns)
        self._window_values.append(value)
        self.say("  " + self._summary(value))

    def _summary(self, value: float) -> str:
        values = self._window_values
        if self.kwh:
            return f"{value:g} kWh noted"
        where = "this window" if self._window is not None else "since the last empty line"
        mean = sum(values) / len(values)
        return f"{value:g} W noted ({where}: {len(values)} reading{'s' if len(values) != 1 else ''}, mean {mean:.4g} W)"

    def _undo(self) -> None:
        if self._pending is None:
            self.say("  nothing to undo: a reading is kept once the next one is typed or its window ends")
            return
        self.corrections += 1
        value = self._window_values.pop() if self._window_values else None
        self._pending = None
        self.say(f"  removed {value:g}" + (" kWh" if self.kwh else " W"))

    def _correct(self, text: str) -> None:
        if self._pending is None:
            self.say("  nothing to correct: a reading is kept once the next one is typed or its window ends")
            return
        value = self._value(text)
        if value is None:
            return
        self.corrections += 1
        old = self._pending
        self._pending = self._reading(value, old.t_ns)
        if self._window_values:
            self._window_values[-1] = value
        self.say(f"  corrected to {value:g}" + (" kWh" if self.kwh else f" W (mean {self._mean():.4g} W)"))

    def _mean(self) -> float:
        return sum(self._window_values) / len(self._window_values) if self._window_values else math.nan

    def _done(self) -> None:
        self.commit()
        n = len(self._window_values)
        if self.kwh:
            return
        if n:
            self.say(f"  done: {n} reading{'s' if n != 1 else ''}, mean {self._mean():.4g} W")
        else:
            self.say("  no reading yet" + (" in this window" if self._window is not None else ""))
        if self._window is None:
            self._window_values = []

    def commit(self) -> None:
        """Write the last reading to the store (it can no longer be undone or corrected)."""
        with self._mutex:
            reading, self._pending = self._pending, None
            if reading is None:
                return
            self._accept(reading)
            if self.kwh:
                self._counter_last = reading
            if self._store is not None:
                self._store.flush()

    # --- windows ------------------------------------------------------------------------------------------

    def window(self, label: str | None, kind: str = "run") -> None:
        """A window of the session opens (`label`; kind "run" or "idle") or closes (None): prompt accordingly."""
        with self._mutex:
            self.commit()
            if label is None:
                if self._window is not None:
                    n = len(self._window_values)
                    if self.kwh:
                        self.say("  window over: type the kWh counter now")
                    elif n:
                        self.say(f"  window over: {n} reading{'s' if n != 1 else ''}, mean {self._mean():.4g} W")
                    else:
                        self.say("  window over with no reading: it is invalid (measured again if --retry allows)")
                    if n == 1 and not self.kwh:
                        self.say("  one reading says nothing of how much the display moves: the window is invalid")
                self._window = None
                self._window_values = []
                return
            self._window = label
            self._window_values = []
            what = "keep the device idle" if kind == "idle" else "it is running"
            ask = "type the kWh counter now" if self.kwh else "type the display's watts two or more times"
            self.say(f"> {label}: {what}; {ask} (empty line: done)" if not self.kwh else f"> {label}: {what}; {ask}")

    def first_counter_reading(self) -> None:
        """Counter mode: the kWh shown before anything is measured (every window's start needs a reading before
        it); BadInput if none comes. Display readings need nothing first."""
        if not self.kwh:
            return
        self.say("> type the kWh counter shown now, to start")
        if not self.wait_reading_after(0, quiet=True):
            raise BadInput(
                f"no kWh counter reading typed in {COUNTER_WAIT_S:g} s: type the Kill-a-Watt's kWh figure to start"
            )

    def wait_reading_after(self, after_ns: int, timeout_s: float = COUNTER_WAIT_S, *, quiet: bool = False) -> bool:
        """Counter mode: wait until a counter reading later than `after_ns` is typed (the window's end needs one),
        reminding the person; True once there is one. Display readings need no wait."""
        if not self.kwh:
            return True
        deadline = time.monotonic() + timeout_s
        reminded = False
        while time.monotonic() < deadline and not self.input_ended and not self._stop.is_set():
            with self._mutex:
                if self._pending is not None and self._pending.t_ns > after_ns:
                    self.commit()
                latest = self._counter_last
                if latest is not None and latest.t_ns > after_ns:
                    return True
            if not reminded and not quiet:
                self.say("  waiting for the kWh counter typed now (the window's end needs it)")
                reminded = True
            time.sleep(0.1)
        return False


# --- the session's view -----------------------------------------------------------------------------------------


class ManualProgress:
    """`measure --meter manual`: what `measure.Progress` shows, as prompts: no live line (it would write over
    what the person types), one prompt per window with what runs and about how long the session has left."""

    def __init__(self, source: MeterSource, plan: Plan) -> None:
        self.source = source
        self.label = ""
        self.windows_left = plan.windows
        self.window_cost_s = plan.duration_s + plan.warmup_s + 1.0

    def window(self, label: str) -> None:
        from edgebench.units import duration

        self.label = label
        kind = "idle" if label.startswith("idle") else "run"
        self.source.announce(f"{label} (about {duration(self.windows_left * self.window_cost_s)} left)", kind)

    def done(self, cost_s: float) -> None:
        self.windows_left = max(0, self.windows_left - 1)
        self.window_cost_s = 0.7 * self.window_cost_s + 0.3 * cost_s
        self.source.announce(None)

    def more(self, windows: int) -> None:
        self.windows_left = max(0, self.windows_left + windows)

    def clear(self) -> None:
        """Nothing drawn to clear."""

    def __enter__(self) -> ManualProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.announce(None)


# --- readings written on paper ------------------------------------------------------------------------------------

TIME_COLUMNS = ("time", "timestamp", "datetime")
WATT_COLUMNS = ("watts", "w", "power_w")
KWH_COLUMNS = ("kwh",)


def _header(path: Path) -> list[str] | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            for line in stream:
                if line.strip() and not line.lstrip().startswith("#"):
                    return [c.strip().lower() for c in next(csv.reader([line]))]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def is_paper_csv(path: str | Path) -> bool:
    """True for a CSV of paper readings: a time column and a watts or kWh column, and no t_ns column."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as stream:
            if stream.read(16) == b"SQLite format 3\x00":
                return False
    except OSError:
        return False
    header = _header(path)
    if not header or "t_ns" in header:
        return False
    return any(c in header for c in TIME_COLUMNS) and any(c in header for c in WATT_COLUMNS + KWH_COLUMNS)


def parse_time_ns(text: str) -> int:
    """ISO 8601 (local time unless it names its zone) or unix seconds -> ns since the epoch; ValueError else."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        if seconds < 1e8:  # a time of day or a count, not an epoch
            raise ValueError(text)
        return round(seconds * 1e9)
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.year < 1990:
        raise ValueError(text)
    return round(stamp.astimezone().timestamp() * 1e9)


def _paper_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(file line number, cells)]) of a paper CSV, blank lines and # comments skipped."""
    rows: list[tuple[int, list[str]]] = []
    header: list[str] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            for number, line in enumerate(stream, 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                cells = [c.strip() for c in next(csv.reader([line]))]
                if not header:
                    header = [c.lower() for c in cells]
                else:
                    rows.append((number, cells))
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text: save the paper readings as a UTF-8 CSV") from None
    except csv.Error as exc:
        raise BadInput(f"{path}: not CSV ({exc}): one line per reading, time,watts") from None
    return header, rows


def load_paper_trace(path: str | Path, start_ns: int | None = None, end_ns: int | None = None) -> MeterTrace:
    """The readings of a paper CSV as a "spot" (watts) or "counter" (kWh) MeterTrace; BadInput naming the line."""
    import numpy as np

    path = Path(path)
    header, lines = _paper_rows(path)
    time_i = next(header.index(c) for c in TIME_COLUMNS if c in header)
    kwh = not any(c in header for c in WATT_COLUMNS)
    value_name = next(c for c in (KWH_COLUMNS if kwh else WATT_COLUMNS) if c in header)
    value_i = header.index(value_name)
    top = MAX_KWH if kwh else MAX_W
    rows: list[tuple[int, float]] = []
    for number, cells in lines:
        when = cells[time_i] if time_i < len(cells) else ""
        try:
            t = parse_time_ns(when)
        except (ValueError, OverflowError):
            raise BadInput(
                f"{path}, line {number}: time {when!r} is not a date and time (2024-05-01 14:03:20, local time, "
                "or with its zone) nor unix seconds: fix that line"
            ) from None
        text = cells[value_i] if value_i < len(cells) else ""
        try:
            value = float(text.replace(",", "."))
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 <= value <= top):
            raise BadInput(f"{path}, line {number}: {value_name} {text!r} is not a number from 0 to {top:g}: "
                           "fix that line")  # fmt: skip
        rows.append((t, value))
    if not rows:
        raise BadInput(f"{path} holds no reading: one line per reading under the header, time,{value_name}")
    rows.sort()
    t_ns = np.array([r[0] for r in rows], dtype=np.int64)
    values = np.array([r[1] for r in rows], dtype=np.float64)
    keep = np.ones(len(t_ns), dtype=np.bool_)
    if start_ns is not None:
        keep &= t_ns >= start_ns
    if end_ns is not None:
        keep &= t_ns <= end_ns
    if kwh:
        energy = values * 1000
        if np.any(np.diff(energy) < 0):
            raise BadInput(f"{path}: the kWh counter goes down between two readings: a typo, or a reset meter")
        power = np.concatenate(([0.0], np.diff(energy) * 3600 / np.maximum(np.diff(t_ns) / 1e9, 1e-9)))
        return MeterTrace(t_ns[keep], power[keep], f"{IDENTITY} kWh counter (paper)", DISPLAY_RESOLUTION_W,
                          sampling="counter", energy_wh=energy[keep])  # fmt: skip
    return MeterTrace(t_ns[keep], values[keep], f"{IDENTITY} (paper)", DISPLAY_RESOLUTION_W, sampling="spot")
