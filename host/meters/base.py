"""The `Meter` protocol: an incremental byte decoder, kept apart from port I/O, and the registry of protocols.

A decoder is fed whatever bytes the port delivered (any split, any garbage) with the host time they arrived,
and returns the readings completed by them. It never touches a port: the logger owns I/O, reconnects and
timing, so every protocol is tested by feeding bytes, and the same decoder serves a pty, /dev/ttyUSB0 or a
socket:// bridge.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Protocol, runtime_checkable

from edgebench.errors import BadInput
from edgebench.records import MeterReading


@runtime_checkable
class Meter(Protocol):
    """What the logger needs from a protocol decoder."""

    name: str  # protocol name in the registry, e.g. "tweetawatt"
    nominal_period_s: float  # seconds between readings when the meter is healthy
    resolution_w: float  # smallest power step the meter reports
    baudrate: int  # the port speed the real meter uses (ignored by pty/socket transports)
    bad_frames: int  # frames rejected so far (checksum, framing, unparsable)

    @property
    def identity(self) -> str:
        """Protocol and model as they go in the `meter` column, e.g. "wattsup PRO" or "UM25C"."""
        ...

    def feed(self, data: bytes, t_ns: int) -> list[MeterReading]:
        """Decode `data` (arrived at host time `t_ns`); return the readings it completed."""
        ...

    def open_commands(self) -> bytes:
        """Bytes to send once the port is open (start streaming); b"" if none."""
        ...

    def poll(self) -> bytes:
        """Bytes to send every `nominal_period_s` for request/response meters; b"" for streaming meters."""
        ...


def plausible(
    power_w: float,
    *,
    max_w: float,
    volts: float | None = None,
    amps: float | None = None,
    max_v: float | None = None,
    max_a: float | None = None,
    step_w: float = 0.0,
    step_v: float = 0.0,
    step_a: float = 0.0,
    dc: bool = False,
    extra: tuple[float | None, ...] = (),
) -> bool:
    """True when a decoded reading can be a real one: every value finite, power, volts and amps non-negative and
    within the meter's ratings, and power no more than volts x amps (exactly volts x amps on a DC meter, `dc`),
    each within one step of the meter's resolution (`step_*`). `extra`: other values that must only be finite.

    Decoders drop what fails this and count it as a bad frame: one flipped bit must not store 16 kW from a 42 W
    load, and a NaN must never reach the store.
    """
    if volts is None and amps is None and (not extra or extra == (None,)):
        # the common case of a watts-only meter, kept cheap (the logger checks every reading): NaN fails both
        # comparisons and an infinity the second
        return isinstance(power_w, (int, float)) and 0.0 <= power_w <= max_w
    values = (power_w, volts, amps, *extra)
    if not all(v is None or (isinstance(v, (int, float)) and math.isfinite(v)) for v in values):
        return False
    if not 0.0 <= power_w <= max_w:
        return False
    if volts is not None and (volts < 0 or (max_v is not None and volts > max_v)):
        return False
    if amps is not None and (amps < 0 or (max_a is not None and amps > max_a)):
        return False
    if volts is not None and amps is not None:
        # Each printed value may be off by one step of its resolution: widen the product by as much.
        if power_w > (volts + step_v) * (amps + step_a) + step_w:
            return False
        if dc and power_w < max(0.0, volts - step_v) * max(0.0, amps - step_a) - step_w:
            return False
    return True


class MeterBase:
    """Defaults shared by the decoders: a streaming meter needing no commands."""

    name = "meter"
    nominal_period_s = 1.0
    resolution_w = 0.1
    baudrate = 9600

    def __init__(self) -> None:
        self.bad_frames = 0

    @property
    def identity(self) -> str:
        return self.name

    def feed(self, data: bytes, t_ns: int) -> list[MeterReading]:
        raise NotImplementedError

    def open_commands(self) -> bytes:
        return b""

    def poll(self) -> bytes:
        return b""


# name -> "module:Class"; modules import lazily so `edgebench --help` loads no decoder.
PROTOCOLS: dict[str, str] = {
    "lines": "edgebench.host.meters.lines:LinesMeter",
    "tweetawatt": "edgebench.host.meters.tweetawatt:TweetAWattMeter",
    "wattsup": "edgebench.host.meters.wattsup:WattsupMeter",
    "um": "edgebench.host.meters.um:UMMeter",
}


def protocol_names() -> list[str]:
    """Registered protocol names, sorted."""
    return sorted(PROTOCOLS)


def meter_class(name: str) -> type[MeterBase]:
    """The decoder class registered as `name`; BadInput naming the known protocols otherwise."""
    try:
        target = PROTOCOLS[name]
    except KeyError:
        raise BadInput(
            f"unknown meter protocol {name!r}: use one of {', '.join(protocol_names())} (or auto)"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_meter(name: str, **options: Any) -> Meter:
    """A fresh decoder for protocol `name`; options go to its constructor (e.g. calibration=...)."""
    cls = meter_class(name)
    return cls(**options)
