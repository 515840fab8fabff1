"""Meter emulators: a thread that speaks a meter's real wire protocol on a pty (or a TCP port).

Tests and demos open `handle.port` exactly as they would open /dev/ttyUSB0, so the logger, the decoders and
the store run unchanged. Power comes from a profile (constant, steps, a CSV, or this machine's CPU load); the
Tweet-a-Watt emulator synthesises raw 10-bit ADC samples that the real conversion turns back into the
profile's watts (within one quantisation step).
"""

from __future__ import annotations

import csv
import errno
import math
import os
import select
import socket
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgebench.errors import BadInput
from edgebench.host.meters.tweetawatt import Calibration, build_frame, convert, default_calibration

if TYPE_CHECKING:
    from edgebench.host.meters.plug_emulate import PlugFaults

# --- profiles -----------------------------------------------------------------------------------------------


class Profile(Protocol):
    """The load an emulated meter measures: watts at each moment after it started. A profile may also say the
    most watts it reaches (`top_w()`), which an encoder with a range checks."""

    identity: str  # in words, for the meter's identity

    def watts_at(self, t_s: float) -> float:
        """Power at `t_s` seconds after the emulator started."""


class ConstantProfile:
    """The same watts forever."""

    def __init__(self, watts: float) -> None:
        if not (math.isfinite(watts) and watts >= 0):
            raise BadInput(f"emulated power must be a finite number >= 0 W, got {watts}")
        self.watts = float(watts)
        self.identity = f"emulated constant {self.watts:g} W"

    def watts_at(self, t_s: float) -> float:
        """Power at `t_s` seconds after the emulator started."""
        return self.watts

    def top_w(self) -> float:
        """The most watts the profile reaches."""
        return self.watts


class RampProfile:
    """Watts rising linearly with time, `watts0 + watts_per_s x t`: the trapezoid rule is exact on it, so a test
    comparing integrated energy with the closed form sees only edgebench's own errors."""

    def __init__(self, watts0: float, watts_per_s: float) -> None:
        if not (math.isfinite(watts0) and math.isfinite(watts_per_s) and watts0 >= 0):
            raise BadInput(f"ramp needs finite watts >= 0 and a finite slope, got {watts0}, {watts_per_s}")
        self.watts0, self.slope = float(watts0), float(watts_per_s)
        self.identity = f"emulated ramp {self.watts0:g} W + {self.slope:g} W/s"

    def watts_at(self, t_s: float) -> float:
        """Power at `t_s` seconds after the emulator started (never below 0 W)."""
        return max(0.0, self.watts0 + self.slope * t_s)


class StepsProfile:
    """Piecewise constant: [(t_s, watts), ...]; each level holds from its time until the next."""

    def __init__(self, steps: Iterable[tuple[float, float]]) -> None:
        self.steps = sorted((float(t), float(w)) for t, w in steps)
        if not self.steps:
            raise BadInput('steps profile is empty: give "t_s:watts,..." such as "0:5,10:8"')
        if not all(math.isfinite(t) and math.isfinite(w) for t, w in self.steps):
            raise BadInput(
                "steps profile has a time or power that is not a finite number: give t_s:watts numbers"
            )
        if any(w < 0 for _, w in self.steps):
            raise BadInput("steps profile has negative watts: power must be >= 0 W")
        self.identity = "emulated steps " + ",".join(f"{t:g}:{w:g}" for t, w in self.steps)

    @classmethod
    def parse(cls, text: str) -> StepsProfile:
        """From "0:5,10:8" (seconds:watts pairs)."""
        try:
            pairs = [part.split(":") for part in text.split(",") if part.strip()]
            return cls((float(t), float(w)) for t, w in pairs)
        except ValueError:
            raise BadInput(f'steps {text!r} are not "t_s:watts,..." pairs such as "0:5,10:8"') from None

    def top_w(self) -> float:
        """The most watts the profile reaches."""
        return max(w for _, w in self.steps)

    def watts_at(self, t_s: float) -> float:
        """Power at `t_s`: the last step at or before it (the first step before that)."""
        level = self.steps[0][1]
        for t, w in self.steps:
            if t <= t_s:
                level = w
        return level


class CsvProfile(StepsProfile):
    """Steps read from a CSV with columns t_s and power_w (or watts); held after the last row."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        try:
            with open(path, newline="", encoding="utf-8") as stream:
                rows = list(csv.DictReader(stream))
        except OSError as exc:
            raise BadInput(
                f"profile CSV {path} cannot be read ({exc.strerror}): give a CSV of t_s,power_w"
            ) from None
        except UnicodeDecodeError as exc:
            raise BadInput(
                f"profile CSV {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8, columns t_s,power_w"
            ) from None
        except csv.Error as exc:
            raise BadInput(f"profile CSV {path} is not CSV ({exc}): give columns t_s,power_w") from None
        try:
            steps = [(float(r["t_s"]), float(r.get("power_w") or r["watts"])) for r in rows]
        except (KeyError, ValueError, TypeError):
            raise BadInput(f"profile CSV {path} needs numeric columns t_s and power_w") from None
        super().__init__(steps)
        self.identity = f"emulated csv {path.name}"


def _cpu_times(stat_path: str) -> tuple[int, int]:
    with open(stat_path) as stream:
        fields = [int(x) for x in stream.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class CpuLoadProfile:
    """Watts that follow this machine's real CPU load (/proc/stat): idle_w at 0 %, max_w at 100 %."""

    def __init__(self, idle_w: float, max_w: float, *, stat_path: str = "/proc/stat") -> None:
        if not (math.isfinite(idle_w) and math.isfinite(max_w) and 0 <= idle_w <= max_w):
            raise BadInput(f"cpu-load profile needs 0 <= idle <= max watts, got {idle_w}:{max_w}")
        self.idle_w, self.max_w, self.stat_path = float(idle_w), float(max_w), stat_path
        try:
            self._last = _cpu_times(stat_path)
        except (OSError, ValueError, IndexError):
            raise BadInput(f"cpu-load profile needs a readable {stat_path} (Linux)") from None
        self.identity = f"emulated cpu-load {idle_w:g}-{max_w:g} W"

    def top_w(self) -> float:
        """The most watts the profile reaches (at 100 % CPU)."""
        return self.max_w

    def watts_at(self, t_s: float) -> float:
        """Power from the CPU busy fraction since the previous call."""
        busy, total = _cpu_times(self.stat_path)
        d_busy, d_total = busy - self._last[0], total - self._last[1]
        self._last = (busy, total)
        load = d_busy / d_total if d_total > 0 else 0.0
        return self.idle_w + (self.max_w - self.idle_w) * min(1.0, max(0.0, load))


# --- encoders: profile watts -> the bytes a real meter sends ----------------------------------------------------


class Encoder(Protocol):
    """Profile watts -> the bytes one protocol's real meter sends (and its answers to requests). An encoder with
    a range also has `check(top_w)`."""

    streams: bool  # sends readings unasked (else answers requests)
    default_interval_s: float

    def frame(self, watts: float, t_s: float) -> bytes:
        """The reading `watts` at `t_s` as the meter sends it."""

    def corrupt(self, frame: bytes) -> bytes:
        """`frame` damaged the way a line or a radio damages it."""

    def respond(self, request: bytes, watts: float, t_s: float) -> tuple[bytes, bool]:
        """The answer to `request` (bytes the logger sent) and whether it carries a reading."""


class LinesEncoder:
    """`lines`: "12.34\\n" per reading."""

    streams = True
    default_interval_s = 1.0

    def frame(self, watts: float, t_s: float) -> bytes:
        return f"{watts:.2f}\n".encode()

    junk = b"\x00\x13\xa5garbage\xff\n"  # a line of noise; it must not merge into the next reading

    def corrupt(self, frame: bytes) -> bytes:
        return b"#!?garbled-line\n" if frame else frame

    def respond(self, request: bytes, watts: float, t_s: float) -> tuple[bytes, bool]:
        return b"", False


class TweetAWattEncoder:
    """`tweetawatt`: XBee 0x83 frames with 19 synthesised voltage (ADC0) and current (ADC4) samples."""

    streams = True
    default_interval_s = 2.0  # the real mod
    SAMPLES = 19
    V_CENTER, V_AMPLITUDE = 512, 300  # ADC counts; the conversion normalises the voltage swing anyway

    def __init__(
        self, addresses: Iterable[int] = (1,), calibration: dict[int, Calibration] | None = None
    ) -> None:
        self.addresses = tuple(addresses)
        self.calibration = calibration or {}

    def samples(self, watts: float, t_s: float, address: int) -> tuple[list[int], list[int]]:
        """Raw ADC samples (60 Hz, 1 ms apart, in phase) whose conversion gives `watts` within quantisation."""
        cal = self.calibration.get(address) or default_calibration(address)
        phase = 2 * math.pi * 60 * t_s
        sines = [math.sin(phase + 2 * math.pi * 60 * k / 1000) for k in range(self.SAMPLES)]
        volts = [round(self.V_CENTER + self.V_AMPLITUDE * s) for s in sines]
        center = round(cal.vref)

        def current(amplitude: float) -> list[int]:
            return [min(1023, max(0, round(center + amplitude * s))) for s in sines]

        def power(amplitude: float) -> float:
            return convert(volts, current(amplitude), cal)[0]

        # Power is monotone in the current amplitude; bisect, then take the closer of the two bracketing levels.
        lo, hi = 0.0, 511.0
        if watts <= 0:
            return volts, current(0.0)
        for _ in range(40):
            mid = (lo + hi) / 2
            if power(mid) < watts:
                lo = mid
            else:
                hi = mid
        best = min((lo, hi), key=lambda a: abs(power(a) - watts))
        return volts, current(best)

    def frame(self, watts: float, t_s: float) -> bytes:
        out = b""
        for address in self.addresses:
            v, i = self.samples(watts, t_s, address)
            out += build_frame(address, v, i)
        return out

    def corrupt(self, frame: bytes) -> bytes:
        bad = bytearray(frame)
        if len(bad) > 20:
            bad[20] ^= 0x55  # a sample byte: the checksum no longer matches
        return bytes(bad)

    def respond(self, request: bytes, watts: float, t_s: float) -> tuple[bytes, bool]:
        return b"", False


class WattsupEncoder:
    """`wattsup`: answers #V/#H/#C, streams `#d` records once `#L,W,3,E,...;` arrives (CRLF, stray NULs)."""

    default_interval_s = 1.0
    junk = b"\x00\x00\r\n\x00"  # the NUL bytes real meters emit between records

    def __init__(self, volts: float = 120.0, pf: float = 0.95) -> None:
        self.streams = False  # the real meter stays quiet until told to log
        self.commanded_interval_s: float | None = None
        self.volts, self.pf = volts, pf
        self.selected = [True] * 18
        self.wh = 0.0
        self._last_t: float | None = None
        self._pending = b""

    def frame(self, watts: float, t_s: float) -> bytes:
        from edgebench.host.meters.wattsup import data_record

        if self._last_t is not None:
            self.wh += watts * (t_s - self._last_t) / 3600
        self._last_t = t_s
        record = data_record(watts, self.volts, self.pf, self.wh)
        if not all(self.selected):
            head, _, body = record.decode().rstrip(";\r\n").partition(",-,18,")
            cells = [c if keep else "_" for c, keep in zip(body.split(","), self.selected, strict=True)]
            record = f"{head},-,18,{','.join(cells)};\r\n".encode()
        return record

    def corrupt(self, frame: bytes) -> bytes:
        return frame[: len(frame) // 2]  # cut short: the next record's '#' arrives before a ';'

    def respond(self, request: bytes, watts: float, t_s: float) -> tuple[bytes, bool]:
        self._pending += request.replace(b"\x00", b"")
        reply = b""
        while b";" in self._pending:
            packet, _, self._pending = self._pending.partition(b";")
            packet = packet[
                packet.rfind(b"#") + 1 :
            ]  # line noise before the command is ignored, as the meter does
            fields = packet.strip().decode("ascii", "replace").split(",")
            cmd = fields[0].upper() if fields else ""
            if cmd == "V":
                reply += b"#v,-,8,1,0,1,2,1,5,20110101,0;\r\n"  # model 1 = PRO
            elif cmd == "H":
                reply += (
                    b"#h,-,18,W,V,A,WH,Cost,WH/Mo,Cost/Mo,Wmax,Vmax,Amax,Wmin,Vmin,Amin,PF,DC,PC,Hz,VA;\r\n"
                )
            elif cmd == "C" and len(fields) == 21:
                self.selected = [f.strip() == "1" for f in fields[3:]]
            elif cmd == "L" and len(fields) >= 6:  # #L,W,3,E,,<interval> or #L,W,3,E,1,<interval>
                try:
                    self.commanded_interval_s = max(1.0, float(fields[5]))
                except ValueError:
                    continue
                self.streams = True
        return reply, False


# The bus voltages a USB charger offers (USB PD fixed levels, and 24 V for the UM meters' upper input range).
USB_VOLTS = (5.1, 9.0, 12.0, 15.0, 20.0, 24.0, 28.0, 36.0)


class UMEncoder:
    """`um`: one 130-byte record per 0xF0 byte received; 0xF4 clears the energy total.

    The bus voltage is the lowest USB level at which the profile's watts stay within the model's current rating
    (a charger negotiates a higher voltage for more power), so the records are what the meter and the decoder
    accept: at 5.1 V a UM25C's 5 A is only 25.5 W. `volts` fixes the voltage instead."""

    streams = False
    default_interval_s = 0.1

    def __init__(self, model: str = "UM25C", volts: float | None = None) -> None:
        from edgebench.host.meters.um import MODELS, RATINGS

        if model not in MODELS.values():
            raise BadInput(f"unknown UM model {model!r}: use UM24C, UM25C or UM34C")
        self.model, self.volts = model, volts
        self.max_v, self.max_a = RATINGS[model]
        self.mwh = 0.0
        self._last_t: float | None = None

    @property
    def max_w(self) -> float:
        return (self.volts or self.max_v) * self.max_a

    def check(self, top_w: float) -> None:
        """BadInput when a profile reaching `top_w` watts is beyond what the model measures."""
        if top_w > self.max_w:
            volts = self.volts or self.max_v
            raise BadInput(
                f"{top_w:g} W is beyond what a {self.model} measures ({volts:g} V x {self.max_a:g} A = {self.max_w:g} W):"
                f" give at most {self.max_w:g} W"
            )

    def bus_volts(self, watts: float) -> float:
        if self.volts is not None:
            return self.volts
        levels = [v for v in USB_VOLTS if v <= self.max_v]
        return next((v for v in levels if watts / v <= self.max_a), levels[-1])

    def frame(self, watts: float, t_s: float) -> bytes:
        from edgebench.host.meters.um import build_record

        if self._last_t is not None:
            self.mwh += watts * 1000 * (t_s - self._last_t) / 3600
        self._last_t = t_s
        volts = self.bus_volts(watts)
        return build_record(self.model, volts, watts / volts, watts, mwh=round(self.mwh))

    def corrupt(self, frame: bytes) -> bytes:
        return frame[:128] + b"\x00\x00" if self.model != "UM34C" else frame[:64]

    def respond(self, request: bytes, watts: float, t_s: float) -> tuple[bytes, bool]:
        reply = b""
        for byte in request:
            if byte == 0xF0:
                reply += self.frame(watts, t_s)
            elif byte == 0xF4:
                self.mwh = 0.0
        return reply, bool(reply)


ENCODERS = {
    "lines": LinesEncoder,
    "tweetawatt": TweetAWattEncoder,
    "wattsup": WattsupEncoder,
    "um": UMEncoder,
}


@dataclass
class Faults:
    """Misbehaviour to inject: every Nth frame corrupted, junk bytes before every Nth frame, silent spans,
    and (TCP) the connection dropped after `drop_after_s` seconds of each client."""

    corrupt_every: int = 0
    garbage_every: int = 0
    silence: tuple[tuple[float, float], ...] = ()
    drop_after_s: float | None = None

    @classmethod
    def of(cls, value: Faults | dict[str, Any] | None) -> Faults:
        if value is None:
            return cls()
        return value if isinstance(value, Faults) else cls(**value)


SENT_KEPT = 200_000  # about 11 h at 5 frames/s, 15 MB


@dataclass
class EmulatorHandle:
    """A running emulator: open `.port`; `.sent` holds (t_ns, watts, corrupted) of the frames written (the last
    SENT_KEPT of them, so an emulator left running for days stays small); `.frames` counts them all."""

    port: str
    protocol: str
    identity: str
    interval_s: float
    sent: deque[tuple[int, float, bool]] = field(default_factory=lambda: deque(maxlen=SENT_KEPT))
    frames: int = 0
    connections: int = 0
    served: int = 0  # HTTP plugs: status answers given
    t0_ns: int = 0  # HTTP plugs: host time of the start (refresh k is at t0 + k x interval)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _close: list = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stop the thread and close the port (a pty vanishes; a TCP port or HTTP server stops listening)."""
        self._stop.set()
        if self.port.startswith(("shelly://", "tasmota://", "kasa://")):
            self._close_all()  # an HTTP server's thread ends once it is shut down
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_all()

    def _close_all(self) -> None:
        for close in self._close:
            try:
                close()
            except OSError:
                pass
        self._close.clear()

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


GARBAGE = b"\x00\x13\xa5garbage\xff"  # no 0x7E, no newline: pure junk for the resync paths


class _Emitter:
    """Shared timing: what to send at each tick, with faults applied."""

    def __init__(
        self, encoder: Encoder, profile: Profile, interval_s: float, faults: Faults, handle: EmulatorHandle
    ) -> None:
        self.encoder, self.profile, self.interval_s, self.faults, self.handle = (
            encoder, profile, interval_s, faults, handle,
        )  # fmt: skip
        self.t0 = time.monotonic()
        self.count = 0
        self.explicit_interval = False

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def silent(self, t_s: float) -> bool:
        return any(a <= t_s < b for a, b in self.faults.silence)

    def next_frame(self) -> bytes:
        t_s = self.elapsed()
        if self.silent(t_s):
            return b""
        self.count += 1
        watts = self.profile.watts_at(t_s)
        data = self.encoder.frame(watts, t_s)
        corrupted = bool(self.faults.corrupt_every and self.count % self.faults.corrupt_every == 0)
        if corrupted:
            data = self.encoder.corrupt(data)
        if self.faults.garbage_every and self.count % self.faults.garbage_every == 0:
            data = getattr(self.encoder, "junk", GARBAGE) + data
        self.handle.sent.append((time.time_ns(), watts, corrupted))
        self.handle.frames += 1
        return data

    def respond(self, request: bytes) -> bytes:
        t_s = self.elapsed()
        if self.silent(t_s):
            return b""
        watts = self.profile.watts_at(t_s)
        data, is_reading = self.encoder.respond(request, watts, t_s)
        if is_reading:
            self.count += 1
            corrupted = bool(self.faults.corrupt_every and self.count % self.faults.corrupt_every == 0)
            if corrupted:
                data = self.encoder.corrupt(data)
            self.handle.sent.append((time.time_ns(), watts, corrupted))
            self.handle.frames += 1
        return data

    def period(self) -> float:
        """Seconds between streamed frames: the emulator's own, else what the host commanded, else default."""
        if self.explicit_interval:
            return self.interval_s
        return getattr(self.encoder, "commanded_interval_s", None) or self.interval_s


def _write_all(fd: int, data: bytes, stop: threading.Event) -> None:
    view = memoryview(data)
    while view and not stop.is_set():
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            return  # nobody reads the port: a real UART would drop these bytes too
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADF):
                return
            raise


def _serve_pty(emitter: _Emitter, master: int, stop: threading.Event) -> None:
    next_t = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if not emitter.encoder.streams:
            next_t = now  # a meter told to start logging sends its first record at once
        elif now >= next_t:
            _write_all(master, emitter.next_frame(), stop)
            next_t += emitter.period()
            if next_t < now:
                next_t = now + emitter.period()  # fell behind (suspended): do not burst
        timeout = max(0.0, min(0.05, next_t - time.monotonic())) if emitter.encoder.streams else 0.05
        try:
            ready, _, _ = select.select([master], [], [], timeout)
        except (OSError, ValueError):
            return
        if ready:
            try:
                request = os.read(master, 4096)
            except OSError:
                continue  # EIO while no one holds the slave open
            reply = emitter.respond(request)
            if reply:
                _write_all(master, reply, stop)


def _serve_tcp(
    emitter: _Emitter, server: socket.socket, stop: threading.Event, handle: EmulatorHandle
) -> None:
    server.settimeout(0.05)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        handle.connections += 1
        started = time.monotonic()
        next_t = started
        conn.setblocking(False)
        with conn:
            while not stop.is_set():
                now = time.monotonic()
                if emitter.faults.drop_after_s is not None and now - started >= emitter.faults.drop_after_s:
                    break  # the bridge drops the client; the logger must reconnect
                try:
                    if not emitter.encoder.streams:
                        next_t = now
                    elif now >= next_t:
                        conn.sendall(emitter.next_frame())
                        next_t = max(next_t + emitter.period(), now)
                    ready, _, _ = select.select([conn], [], [], 0.01)
                    if ready:
                        request = conn.recv(4096)
                        if not request:
                            break
                        reply = emitter.respond(request)
                        if reply:
                            conn.sendall(reply)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    break


def start_emulator(
    protocol: str,
    profile: Profile,
    *,
    interval_s: float | None = None,
    transport: str = "pty",
    faults: Faults | PlugFaults | dict[str, Any] | None = None,
    tcp_port: int = 0,
    encoder: Encoder | None = None,
    plug: dict[str, Any] | None = None,
) -> EmulatorHandle:
    """Start an emulated meter in a thread; open `handle.port` with the logger. Stop it with `.stop()`.

    `transport` is "pty" (port is the slave's path, raw mode) or "tcp" (port is socket://127.0.0.1:PORT,
    `tcp_port` 0 picks a free one). `encoder` overrides the protocol's default (e.g. several XBee addresses).
    The smart plugs (`shelly`, `shelly-gen1`, `tasmota`; `kasa` on its legacy TCP protocol) serve 127.0.0.1:`tcp_port`; `plug`
    passes their options (faults, user, password, model, watt_decimals) to `plug_emulate.start_plug_emulator`.
    """
    from edgebench.host.meters.plug_emulate import FIRMWARES, PlugFaults, start_plug_emulator

    if protocol in FIRMWARES:
        if isinstance(faults, Faults):
            raise TypeError("a smart plug emulator takes PlugFaults (timeout, drop, error, stale), not Faults")
        interval = 1.0 if interval_s is None else float(interval_s)
        if not (math.isfinite(interval) and interval > 0):
            raise BadInput(f"emulator interval must be a finite number > 0 s, got {interval}")
        handle = EmulatorHandle(port="", protocol=protocol, identity="", interval_s=interval)
        return start_plug_emulator(protocol, profile, handle, interval_s=interval, faults=faults,
                                   port=tcp_port, **(plug or {}))  # fmt: skip
    if protocol not in ENCODERS:
        known = ", ".join(sorted([*ENCODERS, *FIRMWARES]))
        raise BadInput(f"no emulator for protocol {protocol!r}: use one of {known}")
    enc = encoder if encoder is not None else ENCODERS[protocol]()
    if hasattr(enc, "check") and hasattr(profile, "top_w"):
        enc.check(profile.top_w())  # the emulated meter must be able to measure the whole profile
    interval = float(interval_s if interval_s is not None else enc.default_interval_s)
    if not (math.isfinite(interval) and interval > 0):
        raise BadInput(f"emulator interval must be a finite number > 0 s, got {interval}")
    handle = EmulatorHandle(
        port="", protocol=protocol, identity=f"{protocol} ({profile.identity})", interval_s=interval
    )
    if isinstance(faults, PlugFaults):
        raise TypeError("a serial meter emulator takes Faults (corrupt, garbage, silence, drop), not PlugFaults")
    emitter = _Emitter(enc, profile, interval, Faults.of(faults), handle)
    emitter.explicit_interval = interval_s is not None
    target: Callable[..., None]
    args: tuple[object, ...]
    if transport == "pty":
        master, slave = os.openpty()
        tty.setraw(slave)  # bytes pass untouched: no echo, no CR/LF translation
        os.set_blocking(master, False)
        handle.port = os.ttyname(slave)
        # Keep the slave open ourselves so writes never hit EIO while the logger is between opens.
        handle._close += [lambda: os.close(master), lambda: os.close(slave)]
        target, args = _serve_pty, (emitter, master, handle._stop)
    elif transport == "tcp":
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", tcp_port))
        except OSError as exc:
            server.close()
            raise BadInput(
                f"cannot listen on 127.0.0.1:{tcp_port} ({exc.strerror}): pick another --tcp port"
            ) from None
        server.listen(1)
        handle.port = f"socket://127.0.0.1:{server.getsockname()[1]}"
        handle._close.append(server.close)
        target, args = _serve_tcp, (emitter, server, handle._stop, handle)
    else:
        raise BadInput(f"unknown emulator transport {transport!r}: use pty or tcp")
    handle._thread = threading.Thread(target=target, args=args, name=f"emulate-{protocol}", daemon=True)
    handle._thread.start()
    return handle
