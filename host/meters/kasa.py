"""TP-Link Kasa smart plugs (HS110, KP115, KP125 on older firmware) over the legacy protocol, through python-kasa.

`kasa://HOST[:PORT]` (port 9999 by default) is polled by the same loop as the Shelly and Tasmota plugs
(`plug.PolledPlugLogger`: learned refresh period, repeats vs a steady load, host-side timing with the round trip as
its uncertainty, gaps said once each way, stale detection, the plug's energy counter stored per reading). Only the
transport differs: python-kasa's `IotProtocol` over its `XorTransport` (a 4-byte big-endian length, then JSON
XOR-"autokey" encrypted from 171), asked `{"emeter":{"get_realtime":{}}}` for each reading and
`{"system":{"get_sysinfo":{}}}` for who the plug is.

python-kasa is asyncio: each logger owns one event loop, run by whichever thread drives the logger at the time (the
caller's for `open` and the final close, the logger's thread in between; never two at once), and closed with the
connection at the end. python-kasa is imported only when a kasa:// meter is opened.

Units as the plugs send them: hardware 1 (HS110 hw 1.x) answers `power` (W), `voltage` (V), `current` (A), `total`
(kWh) as floats; later hardware and the KP115/KP125 answer `power_mw`, `voltage_mv`, `current_ma` and `total_wh` as
integers. A plug whose sysinfo `feature` lacks `ENE` (HS100, HS103, HS105) has no energy meter.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebench.errors import BadInput
from edgebench.host.meters.plug import (
    STALE_MIN_S,
    Firmware,
    PlugError,
    PlugURL,
    PlugValues,
    PolledPlugLogger,
    _decimals,
    _number,
    parse_plug_url,
)

if TYPE_CHECKING:
    from kasa import IotProtocol

INSTALL_HINT = "pip install 'edgebench[kasa]' (Python 3.11 or later)"
TIMEOUT_S = 2.0  # a plug on the LAN answers in tens of ms
SYSINFO: dict[str, Any] = {"system": {"get_sysinfo": {}}}
REALTIME: dict[str, Any] = {"emeter": {"get_realtime": {}}}
NOT_LEGACY = (
    "newer Kasa firmware (KLAP) and every Tapo plug speak only TP-Link's encrypted HTTP protocol, which needs the "
    "TP-Link account and is not supported"
)


def parse_kasa_url(url: str) -> PlugURL:
    """`kasa://HOST[:PORT]` taken apart (port 9999 unless given); BadInput otherwise."""
    return parse_plug_url(url, schemes=("kasa",))


@dataclass(frozen=True)
class KasaInfo:
    """What a plug's sysinfo says it is."""

    model: str
    hw_ver: str
    sw_ver: str
    device_id: str
    alias: str
    features: tuple[str, ...]

    @property
    def metering(self) -> bool:
        return "ENE" in self.features

    @property
    def identity(self) -> str:
        return f"kasa {self.model} hw {self.hw_ver}".strip()

    @classmethod
    def of(cls, answer: Any) -> KasaInfo:
        """From the answer to `{"system":{"get_sysinfo":{}}}`; PlugError("answer") when it is not one."""
        system = answer.get("system") if isinstance(answer, dict) else None
        info = system.get("get_sysinfo") if isinstance(system, dict) else None
        if not isinstance(info, dict) or "model" not in info:
            raise PlugError("answer", f"its answer to get_sysinfo has no model ({str(answer)[:80]})")
        features = tuple(f for f in str(info.get("feature", "")).split(":") if f)
        return cls(
            model=str(info["model"]), hw_ver=str(info.get("hw_ver", "")), sw_ver=str(info.get("sw_ver", "")),
            device_id=str(info.get("deviceId") or info.get("mac") or info["model"]), alias=str(info.get("alias", "")),
            features=features,
        )  # fmt: skip


class KasaFirmware(Firmware):
    """A metering Kasa plug: `emeter.get_realtime` in either hardware generation's units."""

    protocol = "kasa"
    nominal_resolution_w = 0.001  # power_mw is whole milliwatts (hw 1's watts come with more decimals still)
    energy_step_wh = 1.0  # total_wh is whole watt-hours; hw 1's total is kWh with 3 decimals: the same step

    def decode(self, obj: Any) -> PlugValues:
        emeter = obj.get("emeter") if isinstance(obj, dict) else None
        if not isinstance(emeter, dict):
            raise PlugError("answer", f"the answer has no emeter ({str(obj)[:80]})")
        realtime = emeter.get("get_realtime", emeter)  # an unsupported module answers at the module's level
        if not isinstance(realtime, dict):
            raise PlugError("answer", "emeter.get_realtime is not a JSON object")
        code = realtime.get("err_code", 0)
        if code == -1 and "get_realtime" not in emeter:
            raise PlugError("no-meter", f"its emeter answers {realtime.get('err_msg', 'module not support')!r}")
        if code != 0:
            raise PlugError("answer", f"get_realtime answered err_code {code} ({realtime.get('err_msg', '')})")
        if "power_mw" in realtime:
            raw = realtime["power_mw"]
            milli = _number(raw)
            volts_m, amps_m, total = (_number(realtime.get(k)) for k in ("voltage_mv", "current_ma", "total_wh"))
            if milli is None:
                raise PlugError("answer", f"power_mw {raw!r} is not a number")
            decimals = _decimals(raw)
            return PlugValues(
                milli / 1000, None if volts_m is None else volts_m / 1000, None if amps_m is None else amps_m / 1000,
                None, total, (milli, volts_m, amps_m, total), None if decimals is None else decimals + 3,
            )  # fmt: skip
        if "power" in realtime:
            power = _number(realtime["power"])
            volts, amps, kwh = (_number(realtime.get(k)) for k in ("voltage", "current", "total"))
            if power is None:
                raise PlugError("answer", f"power {realtime['power']!r} is not a number")
            return PlugValues(power, volts, amps, None, None if kwh is None else kwh * 1000, (power, volts, amps, kwh),
                              _decimals(realtime["power"]))  # fmt: skip
        raise PlugError("answer", "get_realtime gives neither power_mw nor power")


class KasaClient:
    """Queries to one plug through python-kasa's IotProtocol over its XorTransport, on an event loop of our own."""

    def __init__(self, host: str, port: int, *, timeout_s: float = TIMEOUT_S) -> None:
        try:
            import kasa  # noqa: F401 - checked here, where a kasa:// meter is opened
        except ImportError:
            raise BadInput(f"kasa:// meters need python-kasa: {INSTALL_HINT}") from None
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._protocol: IotProtocol | None = None

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def _session(self) -> tuple[asyncio.AbstractEventLoop, IotProtocol]:
        if self._loop is None or self._protocol is None:
            from kasa import DeviceConfig, IotProtocol
            from kasa.transports import XorTransport

            # python-kasa's own timeout is whole seconds; ours (asyncio.wait_for) is the one that bites
            config = DeviceConfig(host=self.host, port_override=self.port, timeout=max(1, math.ceil(self.timeout_s)))
            self._loop = asyncio.new_event_loop()
            self._protocol = IotProtocol(transport=XorTransport(config=config))
        return self._loop, self._protocol

    def query(self, request: dict[str, Any]) -> dict[str, Any]:
        """The plug's answer to `request`; PlugError("unreachable") when it does not come, ("answer") when it is
        not the legacy protocol's JSON."""
        from kasa import KasaException
        from kasa.exceptions import TimeoutError as KasaTimeout

        loop, protocol = self._session()
        try:
            # no retries inside python-kasa: the logger's loop decides when to ask again (and records the gap)
            return loop.run_until_complete(asyncio.wait_for(protocol.query(request, retry_count=0), self.timeout_s))
        except (asyncio.TimeoutError, KasaTimeout):
            self._reset()
            raise PlugError("unreachable", f"no answer from {self.where} in {self.timeout_s:g} s") from None
        except KasaException as exc:
            self._reset()
            cause = exc.__cause__
            if isinstance(cause, ConnectionRefusedError):
                raise PlugError("unreachable", f"{self.where} refused the connection") from None
            if isinstance(cause, (asyncio.IncompleteReadError, ConnectionError)):
                raise PlugError("unreachable", f"{self.where} dropped the connection") from None
            if isinstance(cause, (ValueError, UnicodeDecodeError)):
                raise PlugError("answer", f"the answer of {self.where} is not the legacy protocol's JSON") from None
            raise PlugError("unreachable", f"{self.where}: {cause or exc}") from None

    def _reset(self) -> None:
        """Drop the connection (the next query opens a new one), as after any failed query."""
        if self._protocol is not None and self._loop is not None and not self._loop.is_running():
            self._loop.run_until_complete(self._protocol.close())

    def close(self) -> None:
        """Close the connection and the event loop (a later query starts afresh)."""
        loop, protocol = self._loop, self._protocol
        if loop is None or protocol is None or loop.is_running():
            return  # never opened, or a query still runs on another thread (it ends with the process)
        self._loop = self._protocol = None
        try:
            loop.run_until_complete(protocol.close())
        finally:
            loop.close()


def _kasa_user_error(url: str, exc: PlugError, info: KasaInfo | None = None) -> BadInput:
    text = str(exc)
    if exc.kind == "no-meter":
        what = f"a {info.model} " if info is not None else ""
        return BadInput(
            f"{url} is {what}without an energy meter ({text}): edgebench needs a metering Kasa plug (HS110, KP115, "
            "KP125)"
        )
    if exc.kind == "unreachable":
        return BadInput(
            f"cannot reach the Kasa plug {url} on the legacy protocol: {text}; check its address, or: {NOT_LEGACY}"
        )
    return BadInput(f"{url} does not answer as a Kasa plug ({text}): {NOT_LEGACY}")


class KasaLogger(PolledPlugLogger):
    """Poll a Kasa plug at `url` (kasa://HOST[:PORT]) into the store at `out`; see the module docstring."""

    def __init__(
        self,
        url: str,
        out: str | Path | None = None,
        *,
        timeout_s: float = TIMEOUT_S,
        stale_after_s: float = STALE_MIN_S,
    ) -> None:
        where = parse_kasa_url(url)
        super().__init__(url, out, where, stale_after_s=stale_after_s)
        self.client = KasaClient(where.host, where.port, timeout_s=timeout_s)
        self.info: KasaInfo | None = None

    @property
    def probe_url(self) -> str:
        return f"kasa://{self.where.where}"

    def _identify(self) -> Firmware:
        info = KasaInfo.of(self.client.query(SYSINFO))
        if not info.metering:
            self.info = info
            raise PlugError("no-meter", f"its sysinfo features are {':'.join(info.features) or 'none'}, no ENE")
        self.info = info
        return KasaFirmware(info.identity, info.device_id, {"model": info.model, "hw_ver": info.hw_ver})

    def _read(self) -> PlugValues:
        assert self.firmware is not None
        return self.firmware.decode(self.client.query(REALTIME))

    def _first_contact_error(self, exc: PlugError) -> BadInput:
        return _kasa_user_error(self.url, exc, self.info)

    def _close_source(self) -> None:
        self.client.close()


def probe_kasa(url: str) -> str:
    """What answers at kasa://HOST[:PORT]: model, hardware version, whether it meters; one line to print."""
    where = parse_kasa_url(url)
    client = KasaClient(where.host, where.port)
    try:
        try:
            info = KasaInfo.of(client.query(SYSINFO))
            head = (f"kasa://{where.where}: {info.model} (hw {info.hw_ver}, firmware {info.sw_ver}"
                    f"{', ' + repr(info.alias) if info.alias else ''})")  # fmt: skip
            if not info.metering:
                return f"{head}, no energy meter (features {':'.join(info.features) or 'none'}): it cannot be logged"
            firmware = KasaFirmware(info.identity, info.device_id, {})
            values = firmware.decode(client.query(REALTIME))
        except PlugError as exc:
            raise _kasa_user_error(url, exc) from None
    finally:
        client.close()
    counter = f", counter {values.energy_wh:g} Wh" if values.energy_wh is not None else ""
    return f"{head}, meters: {values.power_w:g} W now{counter}; log it with --meter kasa://{where.where}"
