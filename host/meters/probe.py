"""`auto`: work out which protocol a port speaks by listening to it (and, for polled meters, asking).

Streaming decoders are tried on the bytes heard, strongest framing first (XBee checksums, then Watts up?
records, then plain text lines). If nothing decodes, the failure names what the bytes looked like (a hex dump)
so the user can pick a protocol or fix the baud rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgebench.errors import BadInput
from edgebench.host.meters.base import make_meter

if TYPE_CHECKING:
    import serial

# (protocol, readings needed): text lines need two, so one stray numeric line does not decide it.
STREAMING_ORDER: tuple[tuple[str, int], ...] = (("tweetawatt", 1), ("wattsup", 1), ("lines", 2))
LISTEN_S = 2.5  # a Tweet-a-Watt sends every ~2 s
ASK_S = 0.6  # how long to wait for an answer to a UM poll or a Watts up? version request


@dataclass(frozen=True)
class ProbeResult:
    """What a port turned out to be."""

    protocol: str
    identity: str
    readings: int
    bytes_heard: int
    sample_hex: str


def hex_dump(data: bytes, limit: int = 48) -> str:
    """The first `limit` bytes as hex pairs, with the printable ASCII beside them."""
    head = data[:limit]
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    more = f" (+{len(data) - limit} more)" if len(data) > limit else ""
    return f"{head.hex(' ')}  |{text}|{more}"


def _try_streaming(data: bytes) -> ProbeResult | None:
    for protocol, needed in STREAMING_ORDER:
        meter = make_meter(protocol)
        readings = meter.feed(data, time.time_ns())
        if len(readings) >= needed:
            return ProbeResult(protocol, meter.identity, len(readings), len(data), hex_dump(data))
    return None


def _read_for(port: serial.Serial, seconds: float, enough: Callable[[bytes], bool] | None = None) -> bytes:
    heard = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        heard += port.read(port.in_waiting or 1)
        if enough is not None and heard and enough(heard):
            break
    return heard


def _ask_um(port: serial.Serial) -> ProbeResult | None:
    meter = make_meter("um")
    port.reset_input_buffer()
    port.write(meter.poll())
    heard = _read_for(port, ASK_S, lambda b: len(meter.feed(b, 0)) > 0 or len(b) >= 400)
    meter = make_meter("um")
    if meter.feed(heard, time.time_ns()):
        return ProbeResult("um", meter.identity, 1, len(heard), hex_dump(heard))
    return None


def _ask_wattsup(port: serial.Serial) -> tuple[ProbeResult | None, bytes]:
    from edgebench.host.meters.wattsup import WattsupMeter

    old = getattr(port, "baudrate", None)
    try:
        port.baudrate = WattsupMeter.baudrate
    except (AttributeError, ValueError, OSError):
        pass
    port.reset_input_buffer()
    port.write(b"#V,R,0;")
    heard = _read_for(port, ASK_S, lambda b: b";" in b)
    meter = WattsupMeter()
    meter.feed(heard, time.time_ns())
    if meter.packets:
        return ProbeResult("wattsup", meter.identity, 0, len(heard), hex_dump(heard)), heard
    if old is not None:
        try:
            port.baudrate = old
        except (ValueError, OSError):
            pass
    return None, heard


def probe_port(port: serial.Serial, listen_s: float = LISTEN_S, url: str = "") -> ProbeResult:
    """Find the protocol on an open pyserial port: listen up to `listen_s`, then poll as a UM meter, then ask as
    a Watts up? (at 115200 baud). Stops at the first that decodes; BadInput saying what was heard otherwise.
    """
    deadline = time.monotonic() + listen_s
    heard = b""
    while time.monotonic() < deadline:
        heard += port.read(port.in_waiting or 1)
        if heard:
            found = _try_streaming(heard)
            if found is not None:
                return found
    found = _ask_um(port)
    if found is not None:
        return found
    found, answer = _ask_wattsup(port)
    if found is not None:
        return found
    heard += answer
    where = url or getattr(port, "port", "the port")
    if not heard:
        raise BadInput(
            f"no bytes from {where} in {listen_s:g} s, and no answer to a UM poll or a Watts up? version request: "
            "check the meter is on and logging, the cable/radio and the baud rate (--baudrate), or name the "
            "protocol with --protocol"
        )
    raise BadInput(
        f"{len(heard)} bytes from {where} match no known meter protocol; they look like: {hex_dump(heard)} "
        "- check the baud rate (--baudrate) or name the protocol with --protocol"
    )
