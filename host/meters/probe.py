"""`auto`: work out which protocol a port speaks by listening to it (and, for polled meters, asking).

Streaming decoders are tried on the bytes heard, strongest framing first (XBee checksums, then Watts up?
records, then plain text lines). If nothing decodes, the failure names what the bytes looked like (a hex dump)
so the user can pick a protocol or fix the baud rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgebench.host.meters.base import make_meter

from edgebench.errors import BadInput

# (protocol, readings needed): text lines need two, so one stray numeric line does not decide it.
STREAMING_ORDER: tuple[tuple[str, int], ...] = (("tweetawatt", 1), ("lines", 2))
LISTEN_S = 2.5  # a Tweet-a-Watt sends every ~2 s


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


def probe_port(port, listen_s: float = LISTEN_S, url: str = "") -> ProbeResult:
    """Listen on an open pyserial port for up to `listen_s`; return the first protocol that decodes.

    Stops early once a protocol decodes. Raises BadInput saying what was heard when nothing does.
    """
    heard = b""
    deadline = time.monotonic() + listen_s
    while time.monotonic() < deadline:
        heard += port.read(port.in_waiting or 1)
        if heard:
            found = _try_streaming(heard)
            if found is not None:
                return found
    where = url or getattr(port, "port", "the port")
    if not heard:
        raise BadInput(
            f"no bytes from {where} in {listen_s:g} s: check the meter is on and logging, the cable/radio, and "
            "the baud rate (--baudrate), or name the protocol with --protocol"
        )
    raise BadInput(
        f"{len(heard)} bytes from {where} match no known meter protocol; they look like: {hex_dump(heard)} "
        "- check the baud rate or name the protocol with --protocol"
    )
