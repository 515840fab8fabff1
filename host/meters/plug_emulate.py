"""Smart-plug emulators: an HTTP server on 127.0.0.1 serving the real JSON of a Shelly Gen2+, a Shelly Gen1 or a
Tasmota plug, with its power from a profile (the same profiles as the serial emulators) and real-world faults.

The plug refreshes its measurement every `interval_s` (1 s like the real ones by default): refresh k, at
`t0 + k x interval`, reports the mean power of the interval before it (the profile at the interval's middle,
exact for a linear profile) and adds it to the energy counter, as the plugs do. Mains voltage wanders by a few
tenths of a volt from one refresh to the next, as it does, so consecutive answers differ. `handle.sent` holds
(t_ns, watts, False) of every refresh and `handle.t0_ns` the host time of the start, so a test can compute the
closed-form energy of any host-clock window from the profile.

Faults (`PlugFaults`, spans in seconds after the start): `timeout` (requests get no answer; the connection is
held until the client gives up), `drop` (the connection is closed without an answer, like a Wi-Fi drop),
`error` (HTTP 500), `error_every` (every Nth status request answered 500) and `stale` (the plug keeps answering
its last values: they stop refreshing). Auth is on when a password is given: digest SHA-256 for Gen2 (realm =
the device id, nonces reusable with an increasing count, as firmware 2.0+), basic for Gen1, `user=`/`password=`
in the query for Tasmota (401 and its WARNING otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from edgebench.errors import BadInput

if TYPE_CHECKING:
    from edgebench.host.meters.emulate import EmulatorHandle, Profile
    from edgebench.host.meters.kasa_emulate import KasaServer

FIRMWARES = ("shelly", "shelly-gen1", "tasmota", "kasa")
MAINS_V = 230.0
PF = 0.9  # the emulated load's power factor (a small switched-mode supply)
HOLD_MAX_S = 10.0  # a timeout fault holds a request at most this long


Span = tuple[float, float]


@dataclass(frozen=True)
class PlugFaults:
    """Misbehaviour to inject, as (start_s, end_s) spans after the emulator starts (see the module docstring)."""

    timeout: tuple[Span, ...] = ()
    drop: tuple[Span, ...] = ()
    error: tuple[Span, ...] = ()
    stale: tuple[Span, ...] = ()
    error_every: int = 0

    @classmethod
    def of(cls, value: PlugFaults | dict[str, Any] | None) -> PlugFaults:
        if value is None:
            return cls()
        if isinstance(value, PlugFaults):
            return value
        fields: dict[str, Any] = {k: tuple(tuple(s) for s in v) if k != "error_every" else v for k, v in value.items()}
        return cls(**fields)

    @classmethod
    def parse(cls, texts: tuple[str, ...] | list[str]) -> PlugFaults:
        """From CLI words `KIND:START:END` (timeout, drop, error, stale) and `error-every:N`."""
        spans: dict[str, list[Span]] = {"timeout": [], "drop": [], "error": [], "stale": []}
        every = 0
        for text in texts:
            parts = text.split(":")
            try:
                if parts[0] == "error-every" and len(parts) == 2:
                    every = int(parts[1])
                    if every < 1:
                        raise ValueError
                    continue
                if parts[0] in spans and len(parts) == 3:
                    a, b = float(parts[1]), float(parts[2])
                    if math.isfinite(a) and math.isfinite(b) and 0 <= a < b:
                        spans[parts[0]].append((a, b))
                        continue
            except ValueError:
                pass
            raise BadInput(
                f"--fault {text!r}: give KIND:START_S:END_S (timeout, drop, error, stale; 0 <= START < END) "
                "or error-every:N"
            )
        return cls(**{k: tuple(v) for k, v in spans.items()}, error_every=every)


def _in(spans: tuple[Span, ...], t_s: float) -> bool:
    return any(a <= t_s < b for a, b in spans)


@dataclass(frozen=True)
class PlugModel:
    """What the emulated device says it is."""

    firmware: str
    model: str
    device_id: str
    mac: str
    metering: bool = True
    method: str = "Switch"  # Gen2: the component that reports power (PM1 on metering-only devices)
    app: str = ""  # Shelly's app name; Kasa's dev_name
    hw: str = ""  # Kasa: the hardware version (1.x answers in W/V/A/kWh, later ones in mW/mV/mA/Wh)


MODELS = {
    "shelly": PlugModel("shelly", "SNPL-00112EU", "shellyplusplugs-e86beae2d7c8", "E86BEAE2D7C8", app="PlugS"),
    "shelly-pm-mini": PlugModel("shelly", "S3PM-001PCEU16", "shellypmminig3-84fce63e2a70", "84FCE63E2A70",
                                method="PM1", app="MiniPMG3"),  # fmt: skip
    "shelly-plus-1": PlugModel("shelly", "SNSW-001X16EU", "shellyplus1-a8032ab1e6f0", "A8032AB1E6F0",
                               metering=False, app="Plus1"),  # fmt: skip
    "shelly-gen1": PlugModel("shelly-gen1", "SHPLG-S", "shellyplug-s-7C87CE", "C45BBE7C87CE"),
    "shelly-1": PlugModel("shelly-gen1", "SHSW-1", "shelly1-98CDAC", "98CDAC1F4E21", metering=False),
    "tasmota": PlugModel("tasmota", "Athom Plug V2", "tasmota_A1B2C3", "A4:CF:12:A1:B2:C3"),
    "tasmota-relay": PlugModel("tasmota", "Sonoff Basic", "tasmota_D4E5F6", "A4:CF:12:D4:E5:F6", metering=False),
    "kasa": PlugModel("kasa", "HS110(EU)", "8006A1B2C3D4E5F60718293A4B5C6D7E8F901234", "50:C7:BF:A1:B2:C3",
                      app="Smart Wi-Fi Plug With Energy Monitoring", hw="2.0"),
    "kasa-hs110-v1": PlugModel("kasa", "HS110(EU)", "80067F3E2D1C0B0A99887766554433221100FFEE", "50:C7:BF:0A:0B:0C",
                               app="Wi-Fi Smart Plug With Energy Monitoring", hw="1.0"),
    "kasa-kp115": PlugModel("kasa", "KP115(US)", "8006D4C3B2A1F0E9D8C7B6A5948372615049382F", "1C:3B:F3:D4:C3:B2",
                            app="Smart Wi-Fi Plug Mini", hw="1.0.8"),  # hw 1.0 with the mW units, unlike the HS110
    "kasa-hs100": PlugModel("kasa", "HS100(EU)", "80069A8B7C6D5E4F3A2B1C0D9E8F7A6B5C4D3E2F", "50:C7:BF:9A:8B:7C",
                            metering=False, app="Smart Wi-Fi Plug", hw="2.0"),
}


class PlugState:
    """The plug's measurement, refreshed every `interval_s` from the profile (lazily, up to the time asked)."""

    def __init__(self, profile: Profile, interval_s: float, faults: PlugFaults, handle: EmulatorHandle) -> None:
        self.profile, self.interval_s, self.faults, self.handle = profile, interval_s, faults, handle
        self.t0 = time.monotonic()
        self.t0_ns = time.time_ns()
        handle.t0_ns = self.t0_ns
        self.k = -1
        self.energy_wh = 0.0  # the device's counter: the sum of refreshed powers x interval
        self.shown: dict[str, float] = {}  # what the device answers (frozen while stale)
        self.lock = threading.Lock()
        self.status_requests = 0
        self._refresh_to(0.0)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _refresh_to(self, t_s: float) -> None:
        k_now = int(t_s / self.interval_s)
        for k in range(self.k + 1, k_now + 1):
            t_k = k * self.interval_s
            watts = max(0.0, float(self.profile.watts_at(max(0.0, t_k - self.interval_s / 2))))
            if k > 0:
                self.energy_wh += watts * self.interval_s / 3600
            volts = MAINS_V + 0.6 * math.sin(0.37 * k) + 0.3 * math.sin(1.3 * k)
            self.handle.sent.append((self.t0_ns + round(t_k * 1e9), watts, False))
            self.handle.frames += 1
            if not _in(self.faults.stale, t_k) or not self.shown:
                self.shown = {"watts": watts, "volts": volts, "energy_wh": self.energy_wh, "t_s": t_k, "k": k}
        self.k = max(self.k, k_now)

    def now(self) -> dict[str, float]:
        """The values the plug shows at this moment."""
        with self.lock:
            self._refresh_to(self.elapsed())
            return dict(self.shown)


# --- the JSON of each firmware --------------------------------------------------------------------------------


def _current(watts: float, volts: float) -> float:
    return round(watts / (volts * PF), 3) if watts > 0 else 0.0


def shelly_info(model: PlugModel, auth: bool) -> dict[str, Any]:
    if model.firmware == "shelly-gen1":
        return {"type": model.model, "mac": model.mac, "auth": auth, "fw": "20230913-114008/v1.14.0-gcb84623",
                "longid": 1, "num_outputs": 1, "num_meters": 1 if model.metering else 0}  # fmt: skip
    return {"name": None, "id": model.device_id, "mac": model.mac, "slot": 0, "model": model.model, "gen": 2,
            "fw_id": "20231107-164738/1.0.8-g8c7bb8d", "ver": "1.0.8", "app": model.app, "auth_en": auth,
            "auth_domain": model.device_id if auth else None}  # fmt: skip


def gen2_status(model: PlugModel, v: dict[str, float]) -> dict[str, Any]:
    base: dict[str, Any] = {"id": 0, "source": "init", "output": True,
                            "temperature": {"tC": 36.4, "tF": 97.6}}  # fmt: skip
    if model.method == "PM1":
        base = {"id": 0}
    if not model.metering:
        return base
    minute = int(v["t_s"] // 60)
    return {
        **base,
        "apower": round(v["watts"], 1),
        "voltage": round(v["volts"], 1),
        "freq": 50.0,
        "current": _current(v["watts"], v["volts"]),
        "aenergy": {"total": round(v["energy_wh"], 3), "by_minute": [0.0, 0.0, 0.0], "minute_ts": minute * 60},
    }


def gen1_status(model: PlugModel, v: dict[str, float], t0_ns: int) -> dict[str, Any]:
    stamp = int(t0_ns / 1e9 + v["t_s"])
    meters = []
    if model.metering:
        meters = [{"power": round(v["watts"], 2), "overpower": 0.0, "is_valid": True, "timestamp": stamp,
                   "counters": [round(v["watts"], 3)] * 3, "total": int(v["energy_wh"] * 60)}]  # fmt: skip
    return {"unixtime": stamp, "relays": [{"ison": True, "has_timer": False, "overpower": False}],
            "meters": meters, "temperature": 36.4, "overtemperature": False, "uptime": int(v["t_s"])}  # fmt: skip


def tasmota_status(model: PlugModel, v: dict[str, float], command: str, watt_decimals: int) -> dict[str, Any]:
    now = datetime.now().replace(microsecond=0).isoformat()
    sns: dict[str, Any] = {"Time": now}
    if model.metering:
        watts, volts = v["watts"], v["volts"]
        power: float = round(watts, watt_decimals) if watt_decimals else int(round(watts))
        sns["ENERGY"] = {
            "TotalStartTime": "2024-01-01T00:00:00", "Total": round(v["energy_wh"] / 1000, 3), "Yesterday": 0.0,
            "Today": round(v["energy_wh"] / 1000, 3), "Power": power, "ApparentPower": int(round(watts / PF)),
            "ReactivePower": int(round(watts / PF * math.sqrt(1 - PF**2))), "Factor": PF if watts > 0 else 0.0,
            "Voltage": int(round(volts)), "Current": _current(watts, volts),
        }  # fmt: skip
    if command == "Status 10":
        return {"StatusSNS": sns}
    return {
        "Status": {"Module": 0, "DeviceName": model.model, "FriendlyName": [model.model], "Topic": model.device_id,
                   "Power": 1},
        "StatusFWR": {"Version": "13.3.0(tasmota)", "Core": "2_7_4_9"},
        "StatusNET": {"Hostname": model.device_id, "IPAddress": "127.0.0.1", "Mac": model.mac},
        "StatusSNS": sns,
    }  # fmt: skip


# --- auth (server side) ---------------------------------------------------------------------------------------


def _digest_fields(header: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in header[len("Digest "):].split(","):
        key, _, value = part.strip().partition("=")
        fields[key.strip().lower()] = value.strip().strip('"')
    return fields


class Gen2Auth:
    """Digest SHA-256 as Shelly Gen2 checks it (RFC 7616, qop auth); nonces live an hour, counts must rise."""

    def __init__(self, user: str, password: str, realm: str) -> None:
        self.user, self.password, self.realm = user, password, realm
        self.nonces: dict[str, tuple[float, int]] = {}

    def challenge(self) -> str:
        nonce = os.urandom(12).hex()
        self.nonces[nonce] = (time.monotonic(), 0)
        return f'Digest qop="auth", realm="{self.realm}", nonce="{nonce}", algorithm=SHA-256'

    def ok(self, header: str | None, method: str, uri: str) -> bool:
        if not header or not header.startswith("Digest "):
            return False
        f = _digest_fields(header)
        nonce = f.get("nonce", "")
        if nonce not in self.nonces or f.get("username") != self.user or f.get("uri") != uri:
            return False
        issued, last_nc = self.nonces[nonce]
        try:
            nc = int(f.get("nc", "0"), 16)
        except ValueError:
            return False
        if time.monotonic() - issued > 3600 or nc <= last_nc:
            return False

        def sha(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        ha1 = sha(f"{self.user}:{self.realm}:{self.password}")
        expected = sha(f"{ha1}:{nonce}:{f.get('nc')}:{f.get('cnonce')}:auth:{sha(f'{method}:{uri}')}")
        if not hmac.compare_digest(expected, f.get("response", "")):
            return False
        self.nonces[nonce] = (issued, nc)
        return True


# --- the server -----------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the plugs' web servers do
    disable_nagle_algorithm = True  # headers and body leave at once (else 40 ms of Nagle + delayed ACK per answer)
    server: _PlugServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: an emulator in a test must not write to stderr per request

    def _send(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        srv = self.server
        srv.handle.connections += 1
        t_s = srv.state.elapsed()
        faults = srv.state.faults
        if _in(faults.drop, t_s):
            self.close_connection = True
            return  # closed without an answer
        if _in(faults.timeout, t_s):
            end = next(b for a, b in faults.timeout if a <= t_s < b)
            srv.stopping.wait(min(HOLD_MAX_S, end - t_s + 0.05))
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        model = srv.model
        open_paths = ("/shelly", "/rpc/Shelly.GetDeviceInfo")
        if parts.path in open_paths and model.firmware != "tasmota":
            self._send(200, shelly_info(model, srv.password is not None))
            return
        if not self._authorized(query):
            return
        status_path = {"shelly": f"/rpc/{model.method}.GetStatus", "shelly-gen1": "/status", "tasmota": "/cm"}
        is_status = parts.path == status_path[model.firmware]
        if is_status:
            with srv.state.lock:
                srv.state.status_requests += 1
                n = srv.state.status_requests
            if _in(faults.error, t_s) or (faults.error_every and n % faults.error_every == 0):
                self._send(500, {"code": -1, "message": "Internal error"})
                return
        v = srv.state.now()
        srv.handle.served += 1
        if model.firmware == "shelly":
            if parts.path.startswith("/rpc/") and parts.path.endswith(".GetStatus") and not is_status:
                name = parts.path[5:]
                self._send(404, {"code": 404, "message": f"No handler for {name}"})
            elif is_status:
                self._send(200, gen2_status(model, v))
            else:
                self._send(404, {"code": 404, "message": "Not found"})
        elif model.firmware == "shelly-gen1":
            if is_status:
                self._send(200, gen1_status(model, v, srv.state.t0_ns))
            else:
                self._send(404, {"error": "not found"})
        else:
            command = query.get("cmnd", "")
            if not is_status or command not in ("Status 10", "Status 0", "Status"):
                self._send(200, {"Command": "Unknown"} if is_status else {"error": "not found"})
                return
            self._send(200, tasmota_status(model, v, command, srv.watt_decimals))

    def _authorized(self, query: dict[str, str]) -> bool:
        srv = self.server
        if srv.password is None:
            return True
        model = srv.model
        if model.firmware == "tasmota":
            if query.get("user") == srv.user and query.get("password") == srv.password:
                return True
            self._send(401, {"WARNING": "Need user=<username>&password=<password>"})
            return False
        header = self.headers.get("Authorization")
        if model.firmware == "shelly-gen1":
            token = base64.b64encode(f"{srv.user}:{srv.password}".encode()).decode()
            if header == f"Basic {token}":
                return True
            self._send(401, {"error": "unauthorized"}, {"WWW-Authenticate": f'Basic realm="{model.device_id}"'})
            return False
        assert srv.gen2_auth is not None
        if srv.gen2_auth.ok(header, "GET", self.path):
            return True
        self._send(401, {"code": 401, "message": "unauthorized"}, {"WWW-Authenticate": srv.gen2_auth.challenge()})
        return False


class ConnectionTracking(socketserver.BaseServer):
    """A server that can close its clients' open connections too: a plug that goes away stops answering on them
    as well (the HTTP plugs' kept-alive connections, Kasa's persistent one)."""

    open_connections: set[socket.socket]

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if isinstance(request, socket.socket):  # always, for a TCP server
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Close the kept-alive connections too: a plug that goes away stops answering on them as well."""
        for request in list(self.open_connections):
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _PlugServer(ConnectionTracking, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], model: PlugModel, state: PlugState, handle: EmulatorHandle, *,
                 user: str, password: str | None, watt_decimals: int) -> None:  # fmt: skip
        super().__init__(address, _Handler)
        self.model, self.state, self.handle = model, state, handle
        self.user, self.password, self.watt_decimals = user, password, watt_decimals
        self.gen2_auth = Gen2Auth(user, password, model.device_id) if password is not None else None
        self.stopping = threading.Event()
        self.open_connections: set[socket.socket] = set()


def start_plug_emulator(
    firmware: str,
    profile: Profile,
    handle: EmulatorHandle,
    *,
    interval_s: float = 1.0,
    faults: PlugFaults | dict[str, Any] | None = None,
    port: int = 0,
    user: str = "admin",
    password: str | None = None,
    model: str | None = None,
    watt_decimals: int = 0,
) -> EmulatorHandle:
    """Serve an emulated plug on 127.0.0.1:`port` (0: a free one) in a thread; fills and returns `handle`
    (`handle.port` is the shelly://, tasmota:// or kasa:// URL to give --meter). Kasa speaks its legacy protocol
    over TCP (`kasa_emulate`), the others HTTP."""
    from edgebench.host.meters.kasa_emulate import KasaServer

    name = model or firmware
    if name not in MODELS or MODELS[name].firmware != firmware:
        choices = ", ".join(k for k, m in MODELS.items() if m.firmware == firmware)
        raise BadInput(f"no emulated {firmware} model {name!r}: use one of {choices}")
    plug = MODELS[name]
    state = PlugState(profile, interval_s, PlugFaults.of(faults), handle)
    server: _PlugServer | KasaServer
    try:
        if firmware == "kasa":
            if password is not None:
                raise BadInput("the Kasa legacy protocol has no password: drop --password")
            server = KasaServer(("127.0.0.1", port), plug, state, handle)
        else:
            server = _PlugServer(("127.0.0.1", port), plug, state, handle, user=user, password=password,
                                 watt_decimals=watt_decimals)  # fmt: skip
    except OSError as exc:
        raise BadInput(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): pick another --tcp port") from None
    scheme = firmware if firmware in ("tasmota", "kasa") else "shelly"
    handle.port = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    handle.identity = f"{firmware} {plug.model} ({profile.identity})"

    def close() -> None:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.drop_connections()

    handle._close.append(close)
    handle._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"emulate-{firmware}", daemon=True)  # fmt: skip
    handle._thread.start()
    return handle
