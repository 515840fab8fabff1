"""Meter loggers: read a meter and append its readings to a store, surviving what real meters do.

`BaseLogger` holds what every kind of meter shares: the store, the counters, the latest reading, silence and
gap bookkeeping, the background thread and the foreground `run()`. Three kinds build on it:
- `MeterLogger` (here): a serial port, pty, socket://, loop:// or hwgrep:// URL, decoded by a `Meter`;
- `PlugLogger` (`edgebench.host.meters.plug`): a Shelly or Tasmota smart plug polled over HTTP, and
  `KasaLogger` (`edgebench.host.meters.kasa`): a TP-Link Kasa plug on its legacy protocol, the same polling loop;
- `ManualLogger` (`edgebench.host.meters.manual`): a person typing what a plain Kill-a-Watt's display shows.
`open_logger(url, ...)` picks the kind from the URL (`manual`, `shelly://`, `tasmota://`, `kasa://`, anything else is a
serial URL), so `measure`, `run` and `meter log` open every meter the same way.

The serial logger survives corrupt frames (counted by the decoder), silence (a gap is recorded once nothing
arrives for 3 nominal periods), the port vanishing and coming back (reopened with backoff; a socket:// bridge
dropping us is the same), and SIGINT (the store is flushed and closed). Errors a user can fix (no such port,
permission denied, a port another process holds) are raised once, at the first open, in plain words.

A serial port is opened exclusively (an advisory flock, which binds root too, as pyserial's `exclusive=True`
takes it): a second reader of the same port would split its byte stream and decode wrong values. A lost port is
said on stderr (once when it goes, once when it is back), and what answers on the path after it comes back is
checked before anything is logged: it must speak the same protocol and be the same meter (model, sensor
address) as before; another meter that got the same path (a reused /dev/pts number) is not logged.
"""

from __future__ import annotations

import errno
import math
import os
import select
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebench.console import warn
from edgebench.errors import BadInput, PermissionDenied
from edgebench.records import MeterReading

if TYPE_CHECKING:
    import serial

    from edgebench.host.meters.base import Meter
    from edgebench.host.meters.probe import ProbeResult
    from edgebench.host.store import StoreWriter

GAP_PERIODS = 3.0  # silence longer than this many reading periods is recorded as a gap
MIN_PERIOD_S = 0.1  # floor for the gap threshold, so scheduler jitter at 100 Hz is not a gap
BACKOFF_START_S, BACKOFF_MAX_S = 0.1, 5.0
READ_TIMEOUT_S = 0.1
POLL_TIMEOUT_S = 1.0  # re-poll a request/response meter that did not answer within this
CHORES_S = 0.05  # silence checks and the store's commit, at most this often (well under a gap's 3 periods)
# A meter streaming faster than BATCH_BELOW_S between readings is read at most every BATCH_S: in Python each
# wake-up costs more than the readings it brings (cold caches: ~150 us), so at 100 readings/s reading two at a
# time halves the logger's CPU. Slower meters are read the moment bytes arrive. Readings that arrive in one read
# (batched, or late on a busy machine) are spaced back from the arrival by the meter's period (`_spaced`).
BATCH_BELOW_S, BATCH_S = 0.04, 0.02
PLUG_SCHEMES = ("shelly://", "tasmota://", "kasa://")
MANUAL = "manual"


@dataclass
class LoggerStats:
    """Counters since start: readings stored, frames the decoder rejected (damaged, or impossible values; for a
    smart plug, answers that were errors or not its JSON), gaps recorded, reopens, readings the store could not
    hold (dropped), readings from a different meter that answered on the path after a reconnect (foreign, not
    logged), answers that repeated the reading already logged (repeats, smart plugs), and the energy the logged
    readings integrate to (trapezoid, not across gaps) in joules."""

    readings: int = 0
    bad_frames: int = 0
    gaps: int = 0
    reconnects: int = 0
    dropped: int = 0
    foreign: int = 0
    repeats: int = 0
    energy_j: float = 0.0


@dataclass(frozen=True)
class MeterOptions:
    """How to reach a meter beyond its URL: smart-plug credentials, the manual meter's kWh counter mode, and the
    Prometheus endpoint that serves its live watts. `password` is never printed (repr hides it)."""

    user: str | None = None
    password: str | None = None
    kwh: bool = False
    prometheus: str | None = None  # HOST:PORT
    prometheus_remote: bool = False  # allow an address off loopback

    def __repr__(self) -> str:
        hidden = "***" if self.password else None
        return (
            f"MeterOptions(user={self.user!r}, password={hidden!r}, kwh={self.kwh!r}, "
            f"prometheus={self.prometheus!r}, prometheus_remote={self.prometheus_remote!r})"
        )


def is_manual(url: str) -> bool:
    """True for the manual meter (`--meter manual`)."""
    return str(url).strip().lower() == MANUAL


def is_plug(url: str) -> bool:
    """True for a smart plug URL (shelly://HOST[:PORT], tasmota://HOST[:PORT], kasa://HOST[:PORT])."""
    return str(url).lower().startswith(PLUG_SCHEMES)


def open_logger(
    url: str,
    protocol: str = "auto",
    out: str | Path | None = None,
    *,
    options: MeterOptions | None = None,
    calibration: str | Path | dict[str, Any] | None = None,
    baudrate: int | None = None,
    probe_s: float | None = None,
) -> BaseLogger:
    """The logger for `url`: the manual meter (`manual`), a smart plug (`shelly://`, `tasmota://`, `kasa://`) or a serial
    meter (any pyserial URL). Options that do not apply to the kind of meter are refused in one line."""
    options = options or MeterOptions()
    url = str(url)
    serial_only = [name for name, value in (("--calibration", calibration), ("--baudrate", baudrate)) if value]
    if str(url).lower().startswith(("http://", "https://")):
        raise BadInput(
            f"--meter {url}: say which firmware the plug runs, shelly://HOST or tasmota://HOST (kasa://HOST for Kasa) "
            f"(`edgebench meter probe {url}` tells which)"
        )
    if is_manual(url) or is_plug(url):
        kind = "the manual meter" if is_manual(url) else "smart plugs"
        if serial_only:
            raise BadInput(f"{' and '.join(serial_only)} apply to serial meters, not {kind}: drop them")
        if protocol not in ("auto", "", None):
            raise BadInput(f"--protocol applies to serial meters, not {kind}: drop it (the URL says the firmware)")
    if options.kwh and not is_manual(url):
        raise BadInput("--kwh is the manual meter's counter mode: use it with --meter manual")
    if (options.user or options.password) and not is_plug(url):
        raise BadInput("--meter-user/--meter-password apply to smart plugs (shelly://, tasmota://): drop them")
    kasa = str(url).lower().startswith("kasa://")
    if (options.user or options.password) and kasa:
        raise BadInput("--meter-user/--meter-password: a Kasa plug's legacy protocol has no password: drop them")
    if is_manual(url):
        from edgebench.host.meters.manual import ManualLogger

        return ManualLogger(out, kwh=options.kwh)
    if kasa:
        from edgebench.host.meters.kasa import KasaLogger

        return KasaLogger(url, out)
    if is_plug(url):
        from edgebench.host.meters.plug import PlugLogger

        return PlugLogger(url, out, user=options.user, password=options.password)
    return MeterLogger(url, protocol, out, calibration=calibration, baudrate=baudrate, probe_s=probe_s)


class BaseLogger:
    """What every meter logger shares: a store at `out` (SQLite, or CSV by suffix; None keeps readings in memory
    only), counters, the latest reading, silence turned into gaps, and a background thread or a foreground run.

    Use `.start()`/`.stop()` for a background thread or `.run(duration_s)` in the foreground (Ctrl-C stops it
    cleanly). A caller polling a background logger checks `.failure` (the exception that ended the thread, else
    None) and `.alive` (True while the thread logs) between steps, without calling `stop()`; `stop()` also
    raises the failure. The thread ends on its own only on an error it cannot survive (a store that cannot be
    written at the end, a bug): lost meters, bad frames and readings the store refuses are survived and counted.

    Subclasses implement `open()` (user errors raise there), `_loop(deadline, on_tick, tick_s)`, `identity`,
    `_close_source()`, and say their `sampling` ("continuous", "spot", "counter") and meta facts.
    """

    sampling = "continuous"
    protocol = ""
    manual = False  # readings typed by a person: no rate to learn, windows prompt for them

    def __init__(self, url: str, out: str | Path | None) -> None:
        self.url = str(url)
        self.out = Path(out) if out is not None else None
        self.stats = LoggerStats()
        self._store: StoreWriter | None = None
        self._latest: MeterReading | None = None
        self._latest_meter = ""
        self._times: deque[int] = deque(maxlen=64)
        self._period_at = -1  # readings count when the observed period was last computed
        self._period_cache = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._known: set[tuple[str, str]] = set()  # (meter identity, address) of the readings logged so far
        self._store_warned = False
        self._silent_since_ns: int | None = None  # start of the current gap, once declared
        self._gap_reason = ""
        self._heard_mono = time.monotonic()
        self._heard_ns = time.time_ns()
        self.bytes_heard = 0

    # --- public view --------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the background thread logs (False before `start()`, after `stop()` or a crash)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def failure(self) -> BaseException | None:
        """The exception that ended the background thread, or None while it logs (or after a clean stop).
        A caller polling a long session checks this between steps; `stop()` raises it as well."""
        return self._error

    @property
    def identity(self) -> str:
        """Protocol and model of the meter ("" until known)."""
        return ""

    @property
    def meter(self) -> str:
        """Identity of the meter being logged ("" until it is known)."""
        return self.identity

    def _nominal_period_s(self) -> float:
        return 1.0

    @property
    def nominal_period_s(self) -> float:
        """Seconds between readings: the observed median once a few readings arrived, else the meter's nominal.
        Recomputed every 16 readings (the loop asks at every read: a median of 64 each time was a third of the
        logger's CPU at 100 readings/s)."""
        if len(self._times) < 4:
            return self._nominal_period_s()
        if self._period_at < 0 or self.stats.readings - self._period_at >= 16 or self.stats.readings < 64:
            times = list(self._times)
            self._period_cache = statistics.median(b - a for a, b in zip(times, times[1:], strict=False)) / 1e9
            self._period_at = self.stats.readings
        return self._period_cache

    @property
    def resolution_w(self) -> float:
        return 0.0

    @property
    def rate_hz(self) -> float:
        """Readings per second over the last (up to) 64 readings."""
        times = list(self._times)
        if len(times) < 2 or times[-1] == times[0]:
            return 0.0
        return (len(times) - 1) / ((times[-1] - times[0]) / 1e9)

    def latest(self) -> MeterReading | None:
        """The most recent reading (check its t_ns for freshness), or None before the first."""
        return self._latest

    def silence_diagnosis(self, seconds: float) -> str | None:
        """None once a reading arrived; else what was (not) heard in `seconds` and the fix."""
        if self.stats.readings:
            return None
        return f"no reading from {self.url} in {seconds:.0f} s"

    def meta(self) -> dict[str, object]:
        """Facts kept with the log: identity, protocol, resolution, period, URL and how it was sampled."""
        return {
            "meter": self.meter,
            "protocol": self.protocol,
            "resolution_w": self.resolution_w,
            "nominal_period_s": self._nominal_period_s(),
            "url": self.url,
            "sampling": self.sampling,
        }

    # --- lifecycle ----------------------------------------------------------------------------------------

    def open(self) -> None:
        """Reach the meter and open the store; user errors are raised here."""
        raise NotImplementedError

    def _open_store(self) -> None:
        if self._store is None and self.out is not None:
            from edgebench.host.store import open_store

            self._store = open_store(self.out)

    def start(self) -> BaseLogger:
        """Open now (user errors raise here), then log in a background thread until `.stop()`."""
        self.open()
        self._thread = threading.Thread(target=self._guarded_loop, name="meter-logger", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, record a trailing gap if silent, flush and close the store and the meter."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._finish()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def run(
        self,
        duration_s: float | None = None,
        *,
        on_tick: Callable[[Any], None] | None = None,
        tick_s: float = 0.5,
    ) -> LoggerStats:
        """Log in the foreground for `duration_s` (None: until Ctrl-C/`request_stop`); always flushes and closes.

        `on_tick(logger)` is called every `tick_s` seconds (a live status line).
        """
        if not self._opened():
            self.open()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            self._loop(deadline, on_tick, tick_s)
        except KeyboardInterrupt:
            pass
        finally:
            self._finish()
        return self.stats

    def _opened(self) -> bool:
        return False

    def request_stop(self) -> None:
        """Ask a foreground `run` (or the thread) to end soon (safe from a signal handler)."""
        self._stop.set()

    def __enter__(self) -> BaseLogger:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- shared bookkeeping -------------------------------------------------------------------------------

    def _guarded_loop(self) -> None:
        try:
            self._loop(None)
        except BaseException as exc:  # noqa: BLE001 - re-raised in stop() on the caller's thread
            self._error = exc

    def _loop(
        self, deadline: float | None, on_tick: Callable[[Any], None] | None = None, tick_s: float = 0.5
    ) -> None:
        raise NotImplementedError

    def _record_meta(self) -> None:
        if self._store is not None:
            self._store.set_meta(**self.meta())

    def _accept(self, reading: MeterReading) -> None:
        silent_since_ns = self._silent_since_ns
        gap_open = silent_since_ns is not None
        if silent_since_ns is not None:
            self._add_gap(silent_since_ns, reading.t_ns, self._gap_reason)
            self._silent_since_ns = None
        if self._store is not None:
            if self.stats.readings == 0 or reading.meter != self._latest_meter:
                self._record_meta()
            self._store.add(reading)
        last = self._latest
        if last is not None and not gap_open and reading.t_ns > last.t_ns:
            # the live energy figure (Prometheus): trapezoid between consecutive readings, never across a gap
            self.stats.energy_j += (last.power_w + reading.power_w) / 2 * (reading.t_ns - last.t_ns) / 1e9
        self._known.add((reading.meter, reading.address))
        self._latest_meter = reading.meter
        self._latest = reading
        self._times.append(reading.t_ns)
        self.stats.readings += 1
        self._heard_mono = time.monotonic()
        self._heard_ns = reading.t_ns
        self._gap_reason = ""

    def _check_silence(self, reason: str, *, at_once: bool = False) -> None:
        if self._silent_since_ns is not None:
            return
        period = max(self.nominal_period_s, MIN_PERIOD_S)
        if at_once or time.monotonic() - self._heard_mono > GAP_PERIODS * period:
            self._silent_since_ns = self._heard_ns
            self._gap_reason = self._gap_reason or reason
            self.stats.gaps += 1

    def _add_gap(self, start_ns: int, end_ns: int, reason: str) -> None:
        if self._store is not None:
            self._store.add_gap(start_ns, end_ns, reason or "meter silent")

    def _flush_if_due(self) -> None:
        if self._store is not None:
            self._store.flush_if_due()
            self.stats.dropped = self._store.dropped
            error = self._store.error
            if error is not None and not self._store_warned:
                warn(
                    f"cannot write the meter store {self._store.path} ({error}): readings are kept in memory and "
                    "written when it can be again; free disk space"
                )
            self._store_warned = error is not None

    def _close_source(self) -> None:
        """Release the meter (port, connection); called once the loop has ended."""

    def _finish(self) -> None:
        with self._lock:
            if self._silent_since_ns is not None:
                self._add_gap(self._silent_since_ns, time.time_ns(), self._gap_reason)
                self._silent_since_ns = None
            self._close_source()
            if self._store is not None:
                store, self._store = self._store, None
                try:
                    store.close()
                finally:
                    self.stats.dropped = store.dropped


def available_ports() -> list[str]:
    """Serial ports this machine lists (pyserial's list_ports), e.g. ['/dev/ttyUSB0']."""
    try:
        from serial.tools import list_ports

        return sorted(p.device for p in list_ports.comports())
    except Exception:  # noqa: BLE001 - listing is only a hint in an error message
        return []


def lock_holder(path: str) -> str:
    """Who holds the advisory lock on a port: "pid N (command line)" from /proc/locks, or "" when unknown (not
    Linux, another namespace, or no lock)."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter queued behind a holder: not the holder
            continue
        try:
            pid, where = int(fields[4]), fields[5]
            major, minor, inode = where.split(":")
            if int(inode) != st.st_ino or (int(major, 16), int(minor, 16)) != (os.major(st.st_dev), os.minor(st.st_dev)):
                continue
        except (IndexError, ValueError):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                command = stream.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            command = ""
        shown = command if len(command) <= 100 else command[:97] + "..."
        return f"pid {pid}" + (f" ({shown})" if shown else "")
    return ""


def _in_use(url: str) -> BadInput:
    holder = lock_holder(url)
    who = f"{holder} holds it" if holder else "another process holds its lock"
    return BadInput(
        f"{url} is in use by another reader: {who}; stop that one, or read the log it writes (two readers would "
        "split the meter's bytes and store wrong values)"
    )


def translate_open_error(url: str, exc: BaseException) -> Exception:
    """A pyserial/OS open failure as the error the user should see (BadInput / PermissionDenied)."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if "exclusively lock" in text:
        return _in_use(url)
    if code == errno.EACCES or "Permission denied" in text:
        return PermissionDenied(
            f"permission denied on {url}: add yourself to the dialout group "
            "(`sudo usermod -aG dialout $USER`, then log out and in again) or install a udev rule (docs/meters.md)"
        )
    if code == errno.ENOENT or "No such file" in text:
        ports = available_ports()
        listed = ", ".join(ports) if ports else "none found"
        return BadInput(f"no serial port {url}: ports on this machine: {listed}")
    if "Connection refused" in text:
        return BadInput(
            f"nothing listens at {url}: start the meter bridge (or `edgebench meter emulate --tcp`)"
        )
    return BadInput(f"cannot open meter port {url}: {text}")


def open_port(url: str, baudrate: int, timeout: float = READ_TIMEOUT_S) -> serial.Serial:
    """Open a pyserial port by URL, exclusively (an advisory flock, which binds root too; socket:// and loop:// have
    nothing to lock); raises the translated error on failure."""
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise translate_open_error(url, exc) from None


class MeterLogger(BaseLogger):
    """Log a serial meter at `url` into the store at `out` (SQLite, or CSV by suffix; None: in memory only).

    `protocol` is a registered name or "auto" (listen and pick). `calibration` is protocol-specific (a
    Tweet-a-Watt calibration JSON path). See `BaseLogger` for the lifecycle.
    """

    def __init__(
        self,
        url: str,
        protocol: str = "auto",
        out: str | Path | None = None,
        *,
        calibration: str | Path | dict[str, Any] | None = None,
        baudrate: int | None = None,
        probe_s: float | None = None,
    ) -> None:
        from edgebench.host.meters.base import meter_class

        super().__init__(url, out)
        self.protocol = protocol
        self.calibration = calibration
        self.baudrate = baudrate
        self.probe_s = probe_s
        if protocol != "auto":
            meter_class(protocol)  # unknown names fail now, before any port is touched
        if calibration is not None and protocol not in ("auto", "tweetawatt"):
            raise BadInput(f"--calibration applies to the tweetawatt protocol, not {protocol}: drop it")
        self.decoder: Meter | None = None
        self._opened_ns = 0  # when the port was last (re)opened: what was read after it came after it
        self._port = None
        self.probe: ProbeResult | None = None  # what `auto` found
        self._head = b""  # the first bytes heard, to show when none of them decodes
        self._verifying = False  # after a reconnect: the meter answering has not yet shown it is the same one
        self._back_mono = 0.0
        self._back_bytes = 0
        self._foreign_warned = False
        self._held_warned = False

    # --- public view --------------------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return self.decoder.identity if self.decoder is not None else ""

    def _nominal_period_s(self) -> float:
        return float(self.decoder.nominal_period_s) if self.decoder is not None else 1.0

    @property
    def resolution_w(self) -> float:
        return float(self.decoder.resolution_w) if self.decoder is not None else 0.0

    def silence_diagnosis(self, seconds: float) -> str | None:
        """None once a reading arrived; else, for a meter silent for `seconds`, what was (not) heard and the fix.

        No bytes at all points at power, cabling and baud rate; bytes that never decode point at the protocol,
        and the message shows what they look like.
        """
        if self.stats.readings:
            return None
        if not self.bytes_heard:
            return (
                f"no bytes from {self.url} in {seconds:.0f} s: check the meter is on (and logging), the cable or "
                "radio, and the baud rate (--baudrate)"
            )
        from edgebench.host.meters.probe import hex_dump

        return (
            f"{self.bytes_heard} bytes from {self.url} in {seconds:.0f} s but no {self.protocol} reading "
            f"({self.stats.bad_frames} bad frames); they look like: {hex_dump(self._head)} - wrong protocol? "
            f"run `edgebench meter probe {self.url}` or pass --protocol auto"
        )

    def meta(self) -> dict[str, object]:
        if self.decoder is None:
            return {}
        return super().meta()

    # --- lifecycle ----------------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the port (and the store), probe the protocol if "auto"; user errors are raised here."""
        self._stop.clear()  # here, not in run(): a Ctrl-C between open() and run() must still stop it
        self._port = self._open_first()
        try:
            if self.decoder is None:
                self._choose_decoder()
            self._open_store()
        except BaseException:
            self._close_source()
            raise
        assert self.decoder is not None  # chosen above
        self._send(self.decoder.open_commands())
        self._record_meta()

    def _opened(self) -> bool:
        return self._port is not None

    def _baud(self) -> int:
        if self.baudrate:
            return int(self.baudrate)
        if self.protocol != "auto":
            from edgebench.host.meters.base import meter_class

            return int(meter_class(self.protocol).baudrate)
        return 9600

    def _open_first(self) -> serial.Serial:
        return open_port(self.url, self._baud())

    def _choose_decoder(self) -> None:
        from edgebench.host.meters.base import make_meter

        protocol = self.protocol
        if protocol == "auto":
            from edgebench.host.meters.probe import LISTEN_S, probe_port

            assert self._port is not None  # open() opened it before choosing
            found = probe_port(self._port, self.probe_s or LISTEN_S, self.url)
            protocol = found.protocol
            self.probe = found
        options: dict[str, Any] = {}
        if self.calibration is not None:
            if protocol != "tweetawatt":
                raise BadInput(
                    f"--calibration applies to the tweetawatt protocol, but {self.url} speaks {protocol}"
                )
            options["calibration"] = self.calibration
        self.decoder = make_meter(protocol, **options)
        self.protocol = protocol
        port = self._port
        if not self.baudrate and port is not None and getattr(port, "baudrate", None) != self.decoder.baudrate:
            # auto opened the port at 9600; a Watts up? talks at 115200
            try:
                port.baudrate = self.decoder.baudrate
            except (AttributeError, ValueError, OSError):
                pass

    # --- the loop -----------------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if data and self._port is not None:
            try:
                self._port.write(data)
            except Exception:  # noqa: BLE001 - a dead port shows up on the next read, where it is handled
                pass

    def _loop(
        self,
        deadline: float | None,
        on_tick: Callable[[Any], None] | None = None,
        tick_s: float = 0.5,
    ) -> None:
        import serial

        next_tick = time.monotonic() + tick_s
        backoff = BACKOFF_START_S
        retry_at = 0.0
        next_poll = 0.0
        last_poll = 0.0
        self._silent_since_ns = None
        self._gap_reason = ""
        self._heard_mono = time.monotonic()
        self._heard_ns = time.time_ns()
        decoder = self.decoder
        assert decoder is not None, "open() chooses the decoder"
        poll = decoder.poll()
        # The bookkeeping that needs no reading (silence, the store's commit and its errors) runs at most every
        # CHORES_S, not after every read: at 100 readings/s each pass of this loop is what the logger costs.
        next_chores = 0.0
        read_after = 0.0  # batching (BATCH_S): no read before this
        stop = self._stop
        monotonic, time_ns = time.monotonic, time.time_ns
        read, feed, accept = self._read, decoder.feed, self._accept
        while not stop.is_set() and (deadline is None or monotonic() < deadline):
            now = monotonic()
            if self._port is None:
                if now >= retry_at:
                    try:
                        # exclusively, as at the first open: a port someone else took meanwhile stays theirs
                        self._port = serial.serial_for_url(
                            self.url, baudrate=self._baud(), timeout=READ_TIMEOUT_S, exclusive=True
                        )
                        self.stats.reconnects += 1
                        backoff = BACKOFF_START_S
                        self._back()
                        self._send(decoder.open_commands())
                    except (serial.SerialException, OSError, ValueError) as exc:
                        if "exclusively lock" in str(exc) and not self._held_warned:
                            holder = lock_holder(self.url) or "another process"
                            warn(f"the meter port {self.url} is back but held by another reader ({holder}): not "
                                 "reading it; waiting until it is free")  # fmt: skip
                            self._held_warned = True
                        retry_at = now + backoff
                        backoff = min(backoff * 2, BACKOFF_MAX_S)
                if self._port is None:
                    self._check_silence("port lost")
                    stop.wait(min(0.05, max(0.0, retry_at - monotonic())))
                    self._flush_if_due()
                    continue
            if poll and now >= next_poll:
                # One request in flight: the next goes a period after this one if it is answered, else after
                # POLL_TIMEOUT_S (a lost request or reply must not stall the meter, nor pile requests up).
                self._send(poll)
                last_poll = now
                next_poll = now + POLL_TIMEOUT_S
            batched = now < read_after
            if batched:
                time.sleep(read_after - now)  # one wake-up for the batch: what came meanwhile is read at once
                now = monotonic()
            try:
                data = read(batched)
            except (serial.SerialException, OSError, TypeError, AttributeError, ValueError) as exc:
                # TypeError/AttributeError: pyserial's socket/posix backends fail that way on a closed handle;
                # ValueError: select on a descriptor closed under it.
                warn(
                    f"lost the meter port {self.url} ({exc or type(exc).__name__}); reopening it until it is back "
                    "(the time it is away is recorded as a gap)"
                )
                self._close_source()
                self._gap_reason = "port lost"
                self._check_silence("port lost", at_once=True)  # no port: nothing can be heard, a gap now
                retry_at = monotonic() + backoff
                continue
            if data:
                t_ns = time_ns()
                self.bytes_heard += len(data)
                if len(self._head) < 48:
                    self._head += data[: 48 - len(self._head)]
                readings = feed(data, t_ns)
                if len(readings) > 1:
                    readings = self._spaced(readings, t_ns)
                if self._verifying:
                    readings = self._same_meter(readings, len(data))
                for reading in readings:
                    accept(reading)
                if poll and (readings or decoder.bad_frames != self.stats.bad_frames):
                    # answered (or answered with a damaged record): the next request a period after this one
                    next_poll = last_poll + decoder.nominal_period_s
                self.stats.bad_frames = decoder.bad_frames
                now = monotonic()
                if not poll and self._period_cache and self._period_cache < BATCH_BELOW_S:
                    read_after = now + BATCH_S
            if now >= next_chores:
                next_chores = now + CHORES_S
                self._check_silence("meter silent")
                self._flush_if_due()
            if on_tick is not None and now >= next_tick:
                on_tick(self)
                next_tick = monotonic() + tick_s

    def _spaced(self, readings: list[MeterReading], t_ns: int) -> list[MeterReading]:
        """Readings that arrived in one read were sent one meter period apart, the last just before `t_ns`: each
        earlier one is timed a period before the next, never at or before the reading stored before them nor
        before the port was (re)opened (the spacing shrinks to fit). One time for all would make all but the
        first duplicates, which a store's reader drops, and would weight the integral wrongly.

        Before the first reading the period is not known yet (a line meter's nominal is a guess): the lines of
        the first read, which pile up when the loop starts late on a busy machine, are spaced at most BATCH_S
        apart and never back past the open, so none is timed before it could have arrived."""
        n = len(readings)
        step = int(min(self.nominal_period_s, BATCH_S if self._latest is None else math.inf) * 1e9)
        floor = max(self._latest.t_ns if self._latest is not None else 0, self._opened_ns)
        if floor:
            step = min(step, (t_ns - floor) // n)
        if step < 1:  # the clock stepped back since the last reading: keep the order, a nanosecond apart
            return [replace(r, t_ns=t_ns + i) for i, r in enumerate(readings)]
        return [replace(r, t_ns=t_ns - (n - 1 - i) * step) for i, r in enumerate(readings)]

    def _read(self, ready: bool = False) -> bytes:
        """What the port has, waiting up to READ_TIMEOUT_S for the first byte (`ready`: bytes are probably there
        already, try reading before waiting).

        A local device node or pty is read straight from its descriptor: one select and one os.read for all
        that arrived (pyserial's read(1) then read(in_waiting) took two passes of the loop per frame, each with
        its own select, ioctl and timeout bookkeeping: half the logger's CPU at 100 readings/s). Other URLs
        (socket://, loop://, rfc2217://) go through pyserial."""
        import serial

        port = self._port
        fd = self._fd
        if fd is None:
            if port is None:  # closed under the loop: the caller reopens it, as for pyserial's own errors
                raise serial.SerialException("the port is closed")
            return port.read(port.in_waiting or 1)
        if ready:
            try:
                data = os.read(fd, 4096)  # the descriptor is non-blocking (pyserial opens it O_NONBLOCK)
                if data:
                    return data
            except BlockingIOError:
                pass
        readable, _, _ = select.select([fd], [], [], READ_TIMEOUT_S)
        if not readable:
            return b""
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return b""
        if not data:  # readable yet empty: the device is gone (a pulled USB adapter, a closed pty)
            raise serial.SerialException("device reports readiness to read but returned no data")
        return data

    @property
    def _port(self) -> serial.Serial | None:
        return self.__port

    @_port.setter
    def _port(self, port: serial.Serial | None) -> None:
        import serial

        self.__port = port
        self._fd = None
        if port is not None:
            self._opened_ns = time.time_ns()
        if isinstance(port, serial.serialposix.Serial) and type(port).read is serial.serialposix.Serial.read:
            try:
                self._fd = port.fileno()
            except (AttributeError, OSError, ValueError, serial.SerialException):
                self._fd = None

    def _back(self) -> None:
        """The port reopened: say so, and hold readings back until the meter proves to be the same one."""
        self._held_warned = False
        self._verifying = bool(self._known)
        self._back_mono = time.monotonic()
        self._back_bytes = 0
        self._foreign_warned = False
        check = "; checking it is the same meter before logging again" if self._verifying else ""
        warn(f"the meter port {self.url} is back (reconnect {self.stats.reconnects}){check}")

    def _expected(self) -> str:
        return ", ".join(sorted(f"{m} {a}".strip() for m, a in self._known))

    def _same_meter(self, readings: list[MeterReading], n_bytes: int) -> list[MeterReading]:
        """Readings to log while verifying: none until one comes from a meter logged before the port was lost."""
        self._back_bytes += n_bytes
        for k, reading in enumerate(readings):
            if (reading.meter, reading.address) in self._known:
                self._verifying = False
                self.stats.foreign += k
                return readings[k:]
        self.stats.foreign += len(readings)
        if not self._foreign_warned:
            if readings:
                got = f"{readings[0].meter} {readings[0].address}".strip()
                problem = f"a different meter answers on {self.url} ({got}, not {self._expected()})"
            elif time.monotonic() - self._back_mono > max(3 * self._nominal_period_s(), 1.0):
                problem = (
                    f"{self._back_bytes} bytes from {self.url} since it came back, but no {self.protocol} reading: "
                    f"a different meter? (expected {self._expected()})"
                )
            else:
                return []
            warn(f"{problem}: not logging it; waiting for the right meter to come back on {self.url}")
            self._foreign_warned = True
        return []

    def _close_source(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # noqa: BLE001 - closing a vanished port may fail; it is gone either way
                pass
            self._port = None
