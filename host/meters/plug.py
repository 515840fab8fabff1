"""Smart plugs on the LAN: Shelly Gen2+ (JSON-RPC over HTTP), Shelly Gen1 (`/status`) and Tasmota (`Status 10`).

`shelly://HOST[:PORT]` and `tasmota://HOST[:PORT]` are polled over HTTP with one request in flight. The plug
refreshes its measurement about once a second and answers any poll with its latest values, so:
- the poll period is learned from the plug: for the first seconds it is polled back to back and the period is
  the median time between changed answers (the nominal 1 s when too few changed); then each poll is timed just
  before the next refresh is due and repeated soon after an unchanged answer;
- an answer identical to the last reading in every measured field, less than 1.25 periods after it, is a
  repeat, not a new reading (`stats.repeats`); an unchanged answer later than that is a steady load and is kept;
- a reading is timed on the host when the answer arrived; the poll's round trip (median of the last 64) is its
  timing uncertainty, kept in the store's meta as `timing_u_s`;
- the plug's own energy counter (`aenergy.total`, `meters[0].total`, `ENERGY.Total`) is stored with each
  reading (`energy_wh`), for the cross-check against the integrated power (`edgebench.host.spot.counter_check`);
- an unreachable plug, a timeout or a refused password mark a gap like a serial unplug (said once when it goes,
  once when it is back); an HTTP error or an answer that is not the plug's JSON is a bad frame; a plug whose
  values (energy counter included) stop changing while its power says the counter must move is stale: a gap.

Credentials come from options or `EDGEBENCH_METER_USER` / `EDGEBENCH_METER_PASSWORD`, never from the URL (which
is printed), and are never printed. Shelly Gen2 uses HTTP digest (SHA-256, RFC 7616), Gen1 HTTP basic, Tasmota
`user=`/`password=` in the query.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import math
import os
import socket
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from edgebench.console import warn
from edgebench.errors import BadInput
from edgebench.host.logger import BACKOFF_MAX_S, BaseLogger
from edgebench.host.meters.base import plausible
from edgebench.records import MeterReading

USER_ENV, PASSWORD_ENV = "EDGEBENCH_METER_USER", "EDGEBENCH_METER_PASSWORD"
DEFAULT_USER = "admin"  # Shelly's only user; Tasmota's default web user
HTTP_TIMEOUT_S = 2.0  # a plug on the LAN answers in tens of ms; an ESP8266 busy with Wi-Fi in a few hundred
NOMINAL_PERIOD_S = 1.0  # Shelly and Tasmota refresh their power about once a second
LEARN_S = 3.0  # poll back to back this long (or until LEARN_CHANGES) to learn the refresh period
LEARN_CHANGES = 6
MIN_POLL_S = 0.005  # never more than 200 requests a second, even while learning
EARLY, RETRY = 0.95, 0.1  # poll 95 % of a period after a new value; after a repeat, again in 10 % of a period
# Unchanged values this many periods after the last reading are a steady load (kept), not a repeat: over one
# period, so a learned period a little short of the plug's cannot turn one refresh into two readings.
STEADY = 1.25
IDENTITY_CHECK_S = 30.0  # ask the plug who it is this often: DHCP may give its address to another plug
STALE_MIN_S = 10.0  # values frozen this long (and at least 10 periods) while the counter should move: stale
BACKOFF_START_S = 0.5
# The largest single-phase plug circuit: 16 A at 264 V (230 V + 15 %). Beyond it a value is not a load.
MAX_A, MAX_V = 16.0, 264.0
MAX_W = MAX_A * MAX_V


class PlugError(Exception):
    """A poll that did not give the plug's JSON; `kind` says how: unreachable, auth, http, answer."""

    def __init__(self, kind: str, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.kind, self.status = kind, status


# --- HTTP digest (RFC 7616) -------------------------------------------------------------------------------------

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_challenge(header: str) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Digest ...` header (quoted or bare values), keys lower-case."""
    text = header.strip()
    if text[:7].lower() == "digest ":
        text = text[7:]
    params: dict[str, str] = {}
    i = 0
    while i < len(text):
        while i < len(text) and text[i] in " ,":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip().lower()
        i = eq + 1
        if i < len(text) and text[i] == '"':
            end = i + 1
            value = ""
            while end < len(text) and text[end] != '"':
                if text[end] == "\\" and end + 1 < len(text):
                    end += 1
                value += text[end]
                end += 1
            i = end + 1
        else:
            end = text.find(",", i)
            end = len(text) if end < 0 else end
            value = text[i:end].strip()
            i = end
        params[key] = value
    return params


def digest_response(
    challenge: dict[str, str], user: str, password: str, method: str, uri: str, nc: int, cnonce: str
) -> str:
    """The `Authorization: Digest ...` value answering `challenge` (qop=auth; MD5 or SHA-256)."""
    algorithm = challenge.get("algorithm", "MD5").upper()
    if algorithm not in _HASHES:
        raise PlugError("auth", f"the plug asks for digest algorithm {algorithm}, which edgebench does not speak")

    def h(text: str) -> str:
        return _HASHES[algorithm](text.encode()).hexdigest()

    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    ha1 = h(f"{user}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    nc_text = f"{nc:08x}"
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        response = h(f"{ha1}:{nonce}:{nc_text}:{cnonce}:auth:{ha2}")
        extra = f', qop=auth, nc={nc_text}, cnonce="{cnonce}"'
    else:  # RFC 2069 style, no qop
        response = h(f"{ha1}:{nonce}:{ha2}")
        extra = ""
    opaque = f', opaque="{challenge["opaque"]}"' if "opaque" in challenge else ""
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm={algorithm}, '
        f'response="{response}"{extra}{opaque}'
    )


# --- the HTTP client ------------------------------------------------------------------------------------------


class PlugClient:
    """GET requests to one plug on a kept-alive connection, with digest or basic auth when it asks.

    A digest challenge is remembered and reused with an increasing nonce count (Shelly firmware 2.0+ accepts
    that, saving a 401 round trip per poll); a 401 on a reused nonce takes a fresh challenge once.
    """

    def __init__(
        self, host: str, port: int, *, user: str, password: str | None, timeout_s: float = HTTP_TIMEOUT_S
    ) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._challenge: dict[str, str] | None = None
        self._basic = False
        self._nc = 0
        self.requests = 0

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _auth_header(self, path: str) -> dict[str, str]:
        if self.password is None:
            return {}
        if self._challenge is not None:
            self._nc += 1
            cnonce = os.urandom(8).hex()
            return {"Authorization": digest_response(self._challenge, self.user, self.password, "GET", path,
                                                     self._nc, cnonce)}  # fmt: skip
        if self._basic:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    def _request(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        for attempt in (0, 1):
            fresh = self._conn is None
            if fresh:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            conn = self._conn
            assert conn is not None
            try:
                conn.request("GET", path, headers={"Accept": "application/json", **headers})
                response = conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if fresh or attempt:
                    raise PlugError("unreachable", f"{self.where} dropped the connection ({exc})") from None
                continue  # a kept-alive connection the plug had closed: once more on a new one
            except TimeoutError:
                self.close()
                raise PlugError("unreachable", f"no answer from {self.where} in {self.timeout_s:g} s") from None
            except ConnectionRefusedError:
                self.close()
                raise PlugError("unreachable", f"{self.where} refused the connection") from None
            except socket.gaierror as exc:
                self.close()
                raise PlugError("unreachable", f"cannot resolve {self.host} ({exc.strerror})") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise PlugError("unreachable", f"{self.where}: {exc or type(exc).__name__}") from None
            self.requests += 1
            if response.will_close:
                self.close()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        raise AssertionError("unreachable")

    def get(self, path: str) -> bytes:
        """The body of GET `path` (status 200); PlugError otherwise."""
        status, headers, body = self._request(path, self._auth_header(path))
        if status == 401 and self.password is not None:
            scheme = headers.get("www-authenticate", "")
            if scheme[:6].lower() == "digest":
                self._challenge, self._nc, self._basic = parse_challenge(scheme), 0, False
            elif scheme[:5].lower() == "basic":
                self._challenge, self._basic = None, True
            status, headers, body = self._request(path, self._auth_header(path))
        if status == 401:
            if self.password is None:
                raise PlugError("auth", f"the plug at {self.where} has a password")
            raise PlugError("auth", f"the plug at {self.where} refused user {self.user!r} and the password given")
        if status != 200:
            raise PlugError("http", f"the plug at {self.where} answered HTTP {status} to {path.split('?')[0]}", status)
        return body


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise PlugError("answer", f"{what} is not JSON ({body[:40]!r})") from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    return float(value)


def _decimals(value: Any) -> int | None:
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if isinstance(value, int) and not isinstance(value, bool):
        return 0
    return None


# --- firmwares ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlugValues:
    """One answer decoded: power and what else the plug gives, its energy counter in Wh, and `key`, the values
    that tell a new measurement from a repeat."""

    power_w: float
    voltage_v: float | None
    current_a: float | None
    power_factor: float | None
    energy_wh: float | None
    key: tuple
    power_decimals: int | None = None


class Firmware:
    """How one firmware is asked for its status and how its answer reads."""

    protocol = ""
    nominal_resolution_w = 0.1
    energy_step_wh = 0.001  # the energy counter's resolution

    def __init__(self, identity: str, device_id: str, info: dict[str, Any]) -> None:
        self.identity, self.device_id, self.info = identity, device_id, info

    def status_path(self, client: PlugClient) -> str:
        raise NotImplementedError

    def decode(self, obj: Any) -> PlugValues:
        raise NotImplementedError

    def read(self, client: PlugClient) -> PlugValues:
        return self.decode(_json(client.get(self.status_path(client)), f"the answer of {client.where}"))

    @staticmethod
    def checked(values: PlugValues, resolution_w: float) -> PlugValues:
        """The values if they can be a real reading; PlugError("answer") otherwise."""
        if not plausible(
            values.power_w, max_w=MAX_W, volts=values.voltage_v, amps=values.current_a, max_v=MAX_V, max_a=MAX_A,
            step_w=resolution_w, step_v=0.1, step_a=0.001, extra=(values.power_factor, values.energy_wh),
        ):  # fmt: skip
            raise PlugError("answer", f"impossible values ({values.power_w} W, {values.voltage_v} V, "
                                      f"{values.current_a} A)")  # fmt: skip
        if values.energy_wh is not None and values.energy_wh < 0:
            raise PlugError("answer", f"a negative energy counter ({values.energy_wh} Wh)")
        return values


class ShellyGen2(Firmware):
    """Gen2 and later: `GET /rpc/Switch.GetStatus?id=0` (or `PM1.GetStatus` on metering-only devices)."""

    protocol = "shelly"
    nominal_resolution_w = 0.1
    energy_step_wh = 0.001

    def __init__(self, identity: str, device_id: str, info: dict[str, Any], method: str = "Switch") -> None:
        super().__init__(identity, device_id, info)
        self.method = method

    def status_path(self, client: PlugClient) -> str:
        return f"/rpc/{self.method}.GetStatus?id=0"

    def decode(self, obj: Any) -> PlugValues:
        if not isinstance(obj, dict):
            raise PlugError("answer", "the status is not a JSON object")
        if "apower" not in obj:
            raise PlugError("no-meter", "its status has no apower")
        power = _number(obj.get("apower"))
        energy = obj.get("aenergy")
        total = _number(energy.get("total")) if isinstance(energy, dict) else None
        volts, amps, pf = _number(obj.get("voltage")), _number(obj.get("current")), _number(obj.get("pf"))
        if power is None:
            raise PlugError("answer", f"apower {obj.get('apower')!r} is not a number")
        return PlugValues(power, volts, amps, pf, total, (power, volts, amps, pf, total),
                          _decimals(obj.get("apower")))  # fmt: skip


class ShellyGen1(Firmware):
    """Gen1: `GET /status`, `meters[0]` (power W, total in watt-minutes, timestamp s, is_valid)."""

    protocol = "shelly-gen1"
    nominal_resolution_w = 0.01
    energy_step_wh = 1 / 60  # one watt-minute

    def status_path(self, client: PlugClient) -> str:
        return "/status"

    def decode(self, obj: Any) -> PlugValues:
        meters = obj.get("meters") if isinstance(obj, dict) else None
        if not isinstance(meters, list) or not meters or not isinstance(meters[0], dict):
            raise PlugError("no-meter", "its status has no meters")
        meter = meters[0]
        if meter.get("is_valid") is False:
            raise PlugError("answer", "the plug says its power reading is not valid (is_valid false)")
        power, total = _number(meter.get("power")), _number(meter.get("total"))
        if power is None:
            raise PlugError("answer", f"meters[0].power {meter.get('power')!r} is not a number")
        volts = _number(obj.get("voltage"))
        stamp = _number(meter.get("timestamp"))
        wh = total / 60 if total is not None else None
        return PlugValues(power, volts, None, None, wh, (power, volts, total, stamp), _decimals(meter.get("power")))


class Tasmota(Firmware):
    """Tasmota: `GET /cm?cmnd=Status%2010`, `StatusSNS.ENERGY` (Power W, Voltage V, Current A, Factor, Total kWh).
    A multi-channel device gives arrays; the first channel is read."""

    protocol = "tasmota"
    nominal_resolution_w = 1.0  # WattRes 0, the default: whole watts (`WattRes 2` on the plug gives 0.01 W)
    energy_step_wh = 1.0  # EnergyRes 3, the default: Total in kWh with 3 decimals

    def status_path(self, client: PlugClient) -> str:
        return tasmota_path("Status 10", client)

    def decode(self, obj: Any) -> PlugValues:
        if isinstance(obj, dict) and "WARNING" in obj:
            raise PlugError("auth", f"the plug says: {obj['WARNING']}")
        sns = obj.get("StatusSNS") if isinstance(obj, dict) else None
        energy = sns.get("ENERGY") if isinstance(sns, dict) else None
        if not isinstance(energy, dict):
            raise PlugError("no-meter", "its Status 10 has no ENERGY")

        def first(name: str) -> Any:
            value = energy.get(name)
            return value[0] if isinstance(value, list) and value else value

        power = _number(first("Power"))
        if power is None:
            raise PlugError("answer", f"ENERGY.Power {energy.get('Power')!r} is not a number")
        volts, amps, pf = _number(first("Voltage")), _number(first("Current")), _number(first("Factor"))
        total = _number(first("Total"))
        wh = total * 1000 if total is not None else None
        # Time is when the answer was made, not the measurement: it is not part of the key
        return PlugValues(power, volts, amps, pf, wh, (power, volts, amps, pf, total), _decimals(first("Power")))


def tasmota_path(command: str, client: PlugClient) -> str:
    """`/cm?cmnd=...`, with the web password in the query as Tasmota wants it."""
    path = f"/cm?cmnd={quote(command)}"
    if client.password is not None:
        path += f"&user={quote(client.user)}&password={quote(client.password)}"
    return path


@dataclass(frozen=True)
class PlugURL:
    """A smart plug URL taken apart: scheme (shelly, tasmota), host, port."""

    scheme: str
    host: str
    port: int

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


PLUG_URLS = "shelly://HOST[:PORT], tasmota://HOST[:PORT] or kasa://HOST[:PORT]"
DEFAULT_PORTS = {"kasa": 9999}  # TP-Link's legacy protocol; the HTTP plugs listen on 80


def parse_plug_url(url: str, schemes: tuple[str, ...] = ("shelly", "tasmota", "http")) -> PlugURL:
    """`shelly://HOST[:PORT]`, `tasmota://HOST[:PORT]` (or `http://HOST[:PORT]` for probing), or what `schemes`
    allow (`kasa://HOST[:PORT]`, port 9999 by default); BadInput otherwise."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError as exc:
        raise BadInput(f"--meter {url}: not a plug URL ({exc}): give {PLUG_URLS}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise BadInput(f"--meter {url}: give {PLUG_URLS}")
    if parts.username is not None or parts.password is not None:
        raise BadInput(
            f"--meter: put the plug's user and password in --meter-user/--meter-password (or ${USER_ENV}/"
            f"${PASSWORD_ENV}), not in the URL, which is printed and stored"
        )
    if not parts.hostname:
        raise BadInput(f"--meter {url}: no host: give {scheme}://192.168.1.50 (the plug's address)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadInput(f"--meter {url}: only {PLUG_URLS}, no path or query")
    return PlugURL(scheme, parts.hostname, port or DEFAULT_PORTS.get(scheme, 80))


def _user_error(url: str, exc: PlugError, scheme: str) -> BadInput:
    """A failure at the first contact, as the one line the user sees."""
    text = str(exc)
    if exc.kind == "auth":
        if "has a password" in text:
            return BadInput(f"{text}: pass --meter-password (or set ${PASSWORD_ENV}); the user is "
                            f"{DEFAULT_USER!r} unless --meter-user says otherwise")  # fmt: skip
        return BadInput(f"{text}: check --meter-user/--meter-password (or ${USER_ENV}/${PASSWORD_ENV})")
    if exc.kind == "unreachable":
        return BadInput(
            f"cannot reach the plug {url}: {text}; check its address (your router's list of clients, or the "
            "plug's app) and that this machine is on the same network"
        )
    if exc.kind == "no-meter":
        return BadInput(
            f"{url} is a relay without a power meter ({text}): edgebench needs a metering plug (Shelly Plus Plug S, "
            "Plus 1PM, PM Mini; a Tasmota plug with an energy chip such as a Sonoff POW or Athom plug)"
        )
    return BadInput(f"{url} does not answer as a {scheme} plug ({text}): `edgebench meter probe http://HOST` "
                    "tells which firmware answers")  # fmt: skip


def identify(client: PlugClient, scheme: str) -> Firmware:
    """Ask the plug who it is (`/shelly`, or Tasmota's `Status 0`) and return its firmware reader; PlugError
    when it does not answer as one."""
    if scheme == "tasmota":
        obj = _json(client.get(tasmota_path("Status 0", client)), "Tasmota's Status 0")
        if isinstance(obj, dict) and "WARNING" in obj:
            raise PlugError("auth", f"the plug at {client.where} has a password" if client.password is None
                            else f"the plug at {client.where} refused the password ({obj['WARNING']})")  # fmt: skip
        status = obj.get("Status") if isinstance(obj, dict) else None
        if not isinstance(status, dict):
            raise PlugError("answer", "Status 0 has no Status object")
        fwr, net = obj.get("StatusFWR") or {}, obj.get("StatusNET") or {}
        name = status.get("DeviceName") or (status.get("FriendlyName") or ["Tasmota"])[0]
        version = str(fwr.get("Version", "")).split("(")[0]
        identity = f"tasmota {name}".strip() + (f" {version}" if version else "")
        return Tasmota(identity, str(net.get("Mac") or status.get("Topic") or name), obj)
    obj = _json(client.get("/shelly"), "the answer to /shelly")
    if not isinstance(obj, dict):
        raise PlugError("answer", "/shelly is not a JSON object")
    if isinstance(obj.get("gen"), int) and obj["gen"] >= 2:
        model = str(obj.get("model") or obj.get("app") or "gen2")
        firmware: Firmware = ShellyGen2(f"shelly {model}", str(obj.get("id") or obj.get("mac") or model), obj)
        try:
            firmware.read(client)
        except PlugError as exc:
            if exc.kind not in ("http", "no-meter"):
                raise
            pm = ShellyGen2(firmware.identity, firmware.device_id, obj, method="PM1")
            try:
                pm.read(client)
            except PlugError:
                raise exc from None
            firmware = pm
        return firmware
    if "type" in obj:
        kind = str(obj["type"])
        if obj.get("num_meters") == 0:
            raise PlugError("no-meter", f"/shelly says num_meters 0 ({kind})")
        return ShellyGen1(f"shelly {kind}", str(obj.get("mac") or kind), obj)
    raise PlugError("answer", "/shelly names neither a gen nor a type")


def probe_http(url: str, *, user: str | None = None, password: str | None = None) -> str:
    """Which firmware answers at http://HOST[:PORT] (or a shelly:// / tasmota:// URL): one line to print."""
    where = parse_plug_url(url)
    user, password = _credentials(user, password)
    client = PlugClient(where.host, where.port, user=user, password=password)
    tried = []
    try:
        for scheme in (("shelly", "tasmota") if where.scheme == "http" else (where.scheme,)):
            try:
                firmware = identify(client, scheme)
            except PlugError as exc:
                if exc.kind in ("unreachable",):
                    raise _user_error(url, exc, scheme) from None
                if exc.kind in ("auth", "no-meter"):
                    raise _user_error(url, exc, scheme) from None
                tried.append(f"not {scheme} ({exc})")
                client.close()
                continue
            auth = "auth on" if password is not None or _auth_on(firmware) else "auth off"
            start = time.perf_counter()
            values = firmware.read(client)
            rtt_ms = (time.perf_counter() - start) * 1e3
            counter = f", counter {values.energy_wh:.3f} Wh" if values.energy_wh is not None else ""
            return (
                f"http://{where.where}: {firmware.protocol} ({firmware.identity}, {auth}), {values.power_w:g} W now"
                f"{counter}, answered in {rtt_ms:.1f} ms; log it with --meter {firmware.protocol.split('-')[0]}://"
                f"{where.where}"
            )
    except PlugError as exc:
        raise _user_error(url, exc, where.scheme) from None
    finally:
        client.close()
    raise BadInput(f"http://{where.where} answers HTTP but neither as a Shelly nor as a Tasmota plug: "
                   f"{'; '.join(tried)}")  # fmt: skip


def _auth_on(firmware: Firmware) -> bool:
    info = firmware.info
    return bool(info.get("auth_en") or info.get("auth"))


def _credentials(user: str | None, password: str | None) -> tuple[str, str | None]:
    user = user or os.environ.get(USER_ENV) or DEFAULT_USER
    password = password if password is not None else os.environ.get(PASSWORD_ENV) or None
    return user, password


# --- the logger -----------------------------------------------------------------------------------------------


class PolledPlugLogger(BaseLogger):
    """Poll a smart plug at `url` into the store at `out`; see the module docstring. Subclasses are the
    transport: how the plug is asked who it is (`_identify`), read (`_read`), and released (`_close_source`)."""

    def __init__(self, url: str, out: str | Path | None, where: PlugURL, *, stale_after_s: float) -> None:
        super().__init__(url, out)
        self.stale_after_s = stale_after_s
        self.where = where
        self.firmware: Firmware | None = None
        self.protocol = self.where.scheme  # the firmware's protocol once it is known (open)
        self.period_s = NOMINAL_PERIOD_S
        self.learning = True
        self._resolution_w: float | None = None
        self._rtts: deque[float] = deque(maxlen=64)
        self._foreign_warned = False

    def _identify(self) -> Firmware:
        """Ask the plug who it is: its firmware reader, or PlugError."""
        raise NotImplementedError

    def _read(self) -> PlugValues:
        """One status request, decoded (not yet checked); PlugError when it fails."""
        raise NotImplementedError

    def _first_contact_error(self, exc: PlugError) -> BadInput:
        """A failure at the first contact (open), as the one line the user sees."""
        raise NotImplementedError

    @property
    def probe_url(self) -> str:
        """What `edgebench meter probe` takes to say what answers at the plug's address."""
        return f"http://{self.where.where}"

    @property
    def identity(self) -> str:
        return self.firmware.identity if self.firmware is not None else ""

    def _nominal_period_s(self) -> float:
        return self.period_s

    @property
    def resolution_w(self) -> float:
        if self._resolution_w is not None:
            return self._resolution_w
        return self.firmware.nominal_resolution_w if self.firmware is not None else 0.0

    @property
    def timing_u_s(self) -> float:
        """The timing uncertainty of a reading: the median round trip of the recent polls (0 before any)."""
        return statistics.median(self._rtts) if self._rtts else 0.0

    def meta(self) -> dict[str, object]:
        if self.firmware is None:
            return {}
        return {
            **super().meta(),
            "timing_u_s": self.timing_u_s,
            "energy_step_wh": self.firmware.energy_step_wh,
            "device_id": self.firmware.device_id,
        }

    def silence_diagnosis(self, seconds: float) -> str | None:
        if self.stats.readings:
            return None
        return (
            f"no reading from the plug {self.url} in {seconds:.0f} s ({self.stats.bad_frames} bad answers): "
            f"`edgebench meter probe {self.probe_url}` shows what it says"
        )

    def _opened(self) -> bool:
        return self.firmware is not None

    def open(self) -> None:
        """Ask the plug who it is and read it once (user errors raise here), then open the store."""
        self._stop.clear()
        try:
            self.firmware = self._identify()
            self.protocol = self.firmware.protocol
            self.firmware.checked(self._read(), self.firmware.nominal_resolution_w)
        except PlugError as exc:
            self._close_source()
            raise self._first_contact_error(exc) from None
        try:
            self._open_store()
        except BaseException:
            self._close_source()
            raise
        self._record_meta()

    # --- the loop -----------------------------------------------------------------------------------------

    def _poll(self) -> tuple[PlugValues | None, PlugError | None, int, float]:
        """One poll: (values or None, the error or None, host time of the answer, round trip in s)."""
        assert self.firmware is not None
        start = time.perf_counter()
        try:
            values: PlugValues | None = self.firmware.checked(self._read(), self.resolution_w)
            error = None
        except PlugError as exc:
            values, error = None, exc
        t_ns = time.time_ns()
        return values, error, t_ns, time.perf_counter() - start

    def _loop(
        self, deadline: float | None, on_tick: Callable[[Any], None] | None = None, tick_s: float = 0.5
    ) -> None:
        assert self.firmware is not None
        self._silent_since_ns = None
        self._gap_reason = ""
        self._heard_mono = time.monotonic()
        self._heard_ns = time.time_ns()
        next_tick = time.monotonic() + tick_s
        next_poll = time.monotonic()
        next_meta = time.monotonic() + 5.0
        next_identity = time.monotonic() + IDENTITY_CHECK_S
        learn_end = time.monotonic() + LEARN_S
        changes: list[int] = []  # host times of changed answers while learning
        last: PlugValues | None = None
        last_stored_ns = 0
        unchanged_since_ns = 0  # host time of the last answer whose values changed
        down = False
        verifying = False
        stale = False
        backoff = BACKOFF_START_S
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            now = time.monotonic()
            if on_tick is not None and now >= next_tick:
                on_tick(self)
                next_tick = now + tick_s
            self._flush_if_due()
            self._check_silence("meter silent")
            wait = next_poll - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            if on_tick is not None:
                wait = min(wait, next_tick - now)
            if wait > 0:
                self._stop.wait(wait)
                continue
            if down and verifying:
                try:
                    again = self._identify()
                except PlugError:
                    again = None
                if again is None or again.device_id != self.firmware.device_id:
                    if again is not None and not self._foreign_warned:
                        warn(f"a different plug answers at {self.url} ({again.identity} {again.device_id}, not "
                             f"{self.firmware.identity} {self.firmware.device_id}): not logging it; waiting for the "
                             "right plug")  # fmt: skip
                        self._foreign_warned = True
                        self.stats.foreign += 1
                    next_poll = time.monotonic() + backoff
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
                verifying = False
            if not down and time.monotonic() >= next_identity:
                next_identity = time.monotonic() + IDENTITY_CHECK_S
                try:
                    again = self._identify()
                except PlugError:
                    again = None  # the poll below says what is wrong
                if again is not None and again.device_id != self.firmware.device_id:
                    self._check_silence("another plug answers", at_once=True)
                    down, verifying, self._foreign_warned = True, True, False
                    continue
            values, error, t_ns, rtt = self._poll()
            now = time.monotonic()
            moved = error is not None and error.kind == "http" and 400 <= error.status < 500
            if error is not None and (error.kind in ("unreachable", "auth") or moved):
                if not down:
                    reason = {"unreachable": "plug unreachable", "auth": "plug refused the password"}.get(
                        error.kind, "plug answers differently")
                    warn(f"lost the plug {self.url} ({error}); polling it until it answers as before (the time it "
                         "is away is recorded as a gap)")  # fmt: skip
                    self._gap_reason = reason
                    self._check_silence(reason, at_once=True)
                    down, verifying, self._foreign_warned = True, True, False
                next_poll = now + backoff
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            if down:
                down = False
                self.stats.reconnects += 1
                warn(f"the plug {self.url} answers again (reconnect {self.stats.reconnects}), the same plug "
                     f"({self.firmware.device_id})")  # fmt: skip
            backoff = BACKOFF_START_S
            self._rtts.append(rtt)
            if error is not None or values is None:
                self.stats.bad_frames += 1
                if self.stats.bad_frames == 1:
                    warn(f"the plug {self.url}: {error}; counted as a bad reading, polling on (more are counted, "
                         "not said: `meter log` shows the count)")  # fmt: skip
                # a transient error must not cost a whole period (nor stall the learning); a plug that keeps
                # failing is asked at most 20 times a second
                next_poll = now + max(0.05, 0.0 if self.learning else self.period_s * RETRY)
                continue
            if values.power_decimals is not None:
                step = 10.0 ** -values.power_decimals
                if self._resolution_w is None or step < self._resolution_w:
                    self._resolution_w = min(step, self.firmware.nominal_resolution_w)
            changed = last is None or values.key != last.key
            if changed:
                unchanged_since_ns = t_ns
                if self.learning:
                    changes.append(t_ns)
                if stale:
                    stale = False
                    warn(f"the plug {self.url} shows new values again after being stale")
            elif self._is_stale(values, t_ns - unchanged_since_ns) and not stale:
                stale = True
                warn(f"the plug {self.url} has repeated the same values for {(t_ns - unchanged_since_ns) / 1e9:.0f} s "
                     "while its energy counter should have moved: a plug that caches values? the time is recorded "
                     "as a gap until they change")  # fmt: skip
                self._silent_since_ns = unchanged_since_ns
                self._gap_reason = "plug stale (repeated values)"
                self.stats.gaps += 1
            last = values
            if stale:
                self.stats.repeats += 1
                next_poll = now + self.period_s
                continue
            if changed or t_ns - last_stored_ns >= self.period_s * 1e9 * STEADY:
                self._accept(MeterReading(
                    t_ns=t_ns, power_w=values.power_w, meter=self.firmware.identity, voltage_v=values.voltage_v,
                    current_a=values.current_a, power_factor=values.power_factor, energy_wh=values.energy_wh,
                ))  # fmt: skip
                last_stored_ns = t_ns
                next_poll = now + (MIN_POLL_S if self.learning else self.period_s * EARLY)
            else:
                self.stats.repeats += 1
                next_poll = now + (MIN_POLL_S if self.learning else self.period_s * RETRY)
            if self.learning and (len(changes) >= LEARN_CHANGES or now >= learn_end):
                self._learned(changes)
            if now >= next_meta:
                self._record_meta()
                next_meta = now + 5.0

    def _learned(self, changes: list[int]) -> None:
        """End of the learning polls: the refresh period from the changed answers (the nominal if too few)."""
        self.learning = False
        gaps = [(b - a) / 1e9 for a, b in zip(changes, changes[1:], strict=False)]
        if len(gaps) >= 2:
            self.period_s = min(NOMINAL_PERIOD_S * 2, max(0.01, statistics.median(gaps)))
        self._times.clear()  # readings stored while learning came faster than the period: start the rate afresh
        self._record_meta()

    def _is_stale(self, values: PlugValues, unchanged_ns: int) -> bool:
        """Frozen values while the power says the energy counter must have moved by two steps or more."""
        assert self.firmware is not None
        seconds = unchanged_ns / 1e9
        if values.energy_wh is None or values.power_w <= 0 or seconds < max(self.stale_after_s, 10 * self.period_s):
            return False
        return values.power_w * seconds / 3600 >= 2 * self.firmware.energy_step_wh and math.isfinite(seconds)


class PlugLogger(PolledPlugLogger):
    """Poll a Shelly or Tasmota plug at `url` (shelly://, tasmota://) over HTTP into the store at `out`."""

    def __init__(
        self,
        url: str,
        out: str | Path | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = HTTP_TIMEOUT_S,
        stale_after_s: float = STALE_MIN_S,
    ) -> None:
        where = parse_plug_url(url)
        if where.scheme == "http":
            raise BadInput(f"--meter {url}: say the firmware, shelly:// or tasmota:// (`edgebench meter probe {url}`)")
        super().__init__(url, out, where, stale_after_s=stale_after_s)
        user, password = _credentials(user, password)
        self.client = PlugClient(where.host, where.port, user=user, password=password, timeout_s=timeout_s)

    def _identify(self) -> Firmware:
        return identify(self.client, self.where.scheme)

    def _read(self) -> PlugValues:
        assert self.firmware is not None
        return self.firmware.read(self.client)

    def _first_contact_error(self, exc: PlugError) -> BadInput:
        return _user_error(self.url, exc, self.where.scheme)

    def _close_source(self) -> None:
        self.client.close()
