"""A TP-Link Kasa plug on 127.0.0.1 speaking the legacy protocol (written here; python-kasa is the client only).

Each message, both ways, is a 4-byte big-endian length and then the JSON XOR-"autokey" encrypted: the key starts
at 171 and each ciphertext byte is the key for the next (c = key ^ b; key = c). A connection carries any number of
requests. The plug's measurement is `plug_emulate.PlugState` (the same profiles, refresh and energy counter as the
HTTP plugs); the faults that apply to a plug with no password are served: `timeout` (the request gets no answer;
the connection is held, then closed), `drop` (closed without an answer), `error` and `error_every` (get_realtime
answers a non-zero err_code) and `stale` (the values stop refreshing).

Models: `kasa` (an HS110(EU) hw 2.0: power_mw, voltage_mv, current_ma, total_wh integers), `kasa-hs110-v1` (hw 1.0:
power W, voltage V, current A, total kWh floats), `kasa-kp115`, and `kasa-hs100` (no energy meter: its sysinfo
features lack ENE and its emeter module answers "module not support").
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
import time
from typing import TYPE_CHECKING, Any

from edgebench.host.meters.plug_emulate import HOLD_MAX_S, PF, ConnectionTracking, PlugModel, PlugState, _in

if TYPE_CHECKING:
    from edgebench.host.meters.emulate import EmulatorHandle

KEY = 171
MAX_REQUEST = 1 << 16  # a request larger than this is not a plug's: the connection is closed
_LENGTH = struct.Struct(">I")
NOT_SUPPORTED = {"err_code": -1, "err_msg": "module not support"}
NO_MEMBER = {"err_code": -2, "err_msg": "member not support"}


def xor_encrypt(plain: bytes) -> bytes:
    """Autokey XOR from 171: each ciphertext byte is the key for the next."""
    key, out = KEY, bytearray()
    for byte in plain:
        key ^= byte
        out.append(key)
    return bytes(out)


def xor_decrypt(cipher: bytes) -> bytes:
    """The inverse of `xor_encrypt`."""
    key, out = KEY, bytearray()
    for byte in cipher:
        out.append(key ^ byte)
        key = byte
    return bytes(out)


def frame(plain: bytes) -> bytes:
    """One message on the wire: the length (big-endian, 4 bytes), then the encrypted bytes."""
    return _LENGTH.pack(len(plain)) + xor_encrypt(plain)


def sysinfo(model: PlugModel, v: dict[str, float]) -> dict[str, Any]:
    """`system.get_sysinfo` as an HS110/KP115 answers it (HS100: no ENE in feature)."""
    return {
        "sw_ver": "1.5.4 Build 180815 Rel.121440", "hw_ver": model.hw, "type": "IOT.SMARTPLUGSWITCH",
        "model": model.model, "mac": model.mac, "dev_name": model.app, "alias": "edgebench emulated",
        "relay_state": 1, "on_time": int(v["t_s"]), "active_mode": "none",
        "feature": "TIM:ENE" if model.metering else "TIM", "updating": 0, "icon_hash": "", "rssi": -48,
        "led_off": 0, "longitude_i": 0, "latitude_i": 0, "hwId": "0" * 32, "fwId": "0" * 32,
        "deviceId": model.device_id, "oemId": "0" * 32, "next_action": {"type": -1}, "err_code": 0,
    }  # fmt: skip


def realtime(model: PlugModel, v: dict[str, float]) -> dict[str, Any]:
    """`emeter.get_realtime` in the model's units (hardware 1: W/V/A/kWh floats; later: mW/mV/mA/Wh integers)."""
    watts, volts = v["watts"], v["volts"]
    amps = watts / (volts * PF) if watts > 0 else 0.0
    if model.hw.startswith("1."):
        return {"current": round(amps, 6), "voltage": round(volts, 6), "power": round(watts, 6),
                "total": round(v["energy_wh"] / 1000, 3), "err_code": 0}  # fmt: skip
    return {"voltage_mv": int(round(volts * 1000)), "current_ma": int(round(amps * 1000)),
            "power_mw": int(round(watts * 1000)), "total_wh": int(v["energy_wh"]), "err_code": 0}  # fmt: skip


class _KasaHandler(socketserver.BaseRequestHandler):
    server: KasaServer

    def handle(self) -> None:
        srv, sock = self.server, self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        srv.handle.connections += 1
        while not srv.stopping.is_set():
            head = _recv_exactly(sock, 4)
            if head is None:
                return
            (length,) = _LENGTH.unpack(head)
            body = _recv_exactly(sock, length) if length <= MAX_REQUEST else None
            if body is None:
                return
            t_s = srv.state.elapsed()
            faults = srv.state.faults
            if _in(faults.drop, t_s):
                return  # closed without an answer, like a Wi-Fi drop
            if _in(faults.timeout, t_s):
                end = next(b for a, b in faults.timeout if a <= t_s < b)
                srv.stopping.wait(min(HOLD_MAX_S, end - t_s + 0.05))
                return
            try:
                request = json.loads(xor_decrypt(body))
            except (ValueError, UnicodeDecodeError):
                return  # the plug closes on what it cannot read
            if not isinstance(request, dict):
                return
            answer = srv.answer(request, t_s)
            sock.sendall(frame(json.dumps(answer, separators=(",", ":")).encode()))


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


class KasaServer(ConnectionTracking, socketserver.ThreadingTCPServer):
    """The emulated plug: answers each module's methods it knows, "module not support" for the rest."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], model: PlugModel, state: PlugState, handle: EmulatorHandle) -> None:
        super().__init__(address, _KasaHandler)
        self.model, self.state, self.handle = model, state, handle
        self.stopping = threading.Event()
        self.open_connections: set[socket.socket] = set()

    def answer(self, request: dict[str, Any], t_s: float) -> dict[str, Any]:
        """The plug's answer to one request (any number of modules and methods)."""
        out: dict[str, Any] = {}
        for module, methods in request.items():
            if not isinstance(methods, dict):
                out[module] = NOT_SUPPORTED
                continue
            answers: dict[str, Any] = {}
            for method in methods:
                result = self._method(module, method, t_s)
                if result is NOT_SUPPORTED:
                    answers = NOT_SUPPORTED
                    break
                answers[method] = result
            out[module] = answers
        return out

    def _method(self, module: str, method: str, t_s: float) -> dict[str, Any]:
        state, model = self.state, self.model
        if module == "system":
            if method == "get_sysinfo":
                return sysinfo(model, state.now())
            return NO_MEMBER
        if module == "emeter":
            if not model.metering:
                return NOT_SUPPORTED
            if method == "get_realtime":
                with state.lock:
                    state.status_requests += 1
                    n = state.status_requests
                faults = state.faults
                if _in(faults.error, t_s) or (faults.error_every and n % faults.error_every == 0):
                    return {"err_code": -3, "err_msg": "emeter busy"}
                v = state.now()
                self.handle.served += 1
                return realtime(model, v)
            if method in ("get_daystat", "get_monthstat"):
                return {"day_list" if method == "get_daystat" else "month_list": [], "err_code": 0}
            return NO_MEMBER
        if module == "time":  # the plug's clock, set to UTC (index 38 of the firmware's time zone table)
            now = time.gmtime()
            if method == "get_time":
                return {"year": now.tm_year, "month": now.tm_mon, "mday": now.tm_mday, "hour": now.tm_hour,
                        "min": now.tm_min, "sec": now.tm_sec, "err_code": 0}  # fmt: skip
            if method == "get_timezone":
                return {"index": 38, "err_code": 0}
            return NO_MEMBER
        return NOT_SUPPORTED
