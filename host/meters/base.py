"""The `Meter` protocol: an incremental byte decoder, kept apart from port I/O, and the registry of protocols.

A decoder is fed whatever bytes the port delivered (any split, any garbage) with the host time they arrived,
and returns the readings completed by them. It never touches a port: the logger owns I/O, reconnects and
timing, so every protocol is tested by feeding bytes, and the same decoder serves a pty, /dev/ttyUSB0 or a
socket:// bridge.
"""

from __future__ import annotations

import importlib
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


def meter_class(name: str) -> type:
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
