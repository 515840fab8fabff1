"""`edgebench agent`: serve the agent protocol (edgebench.protocol) over stdio or TCP.

The agent is the device side of `edgebench measure`: the host asks for the clock, the engine list, idle windows
and measured runs, and gets RunRecords back. Over stdio (`--stdio`, what `--agent local` and `--agent ssh://...`
start) the protocol owns the process's stdout: anything else that writes to file descriptor 1 (a C library, a
stray print) is sent to stderr instead, so it can never corrupt a response. Over TCP (`--listen HOST:PORT`) the
agent serves one session at a time (two measurements at once would spoil both); it listens on loopback by default
and refuses to listen elsewhere without a token. Whatever the transport, only engines of its manifest can be run,
a request line is at most 64 KiB, and the arguments of `run` and `idle` are bounded.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

from edgebench import __version__
from edgebench import protocol as wire
from edgebench.console import note, warn
from edgebench.errors import BadInput, EdgebenchError, ProtocolError
from edgebench.records import AGENT_CLOCK, PowerSample, RunRecord, to_dict, with_changes

TOKEN_ENV = "EDGEBENCH_AGENT_TOKEN"
MAX_WINDOW_S = 3600.0  # one run or idle window; a longer request is a mistake, not a measurement
MAX_WARMUP_S = 600.0
MAX_ITERATIONS = 10_000_000
IDLE_TIMEOUT_S = 3600.0  # a TCP client that says nothing for this long is dropped
BUSY_GRACE_S = 2.0  # how long a new TCP client waits for the previous session to end before it is refused


def shift_record(record: RunRecord, offset_ns: int) -> RunRecord:
    """The record with every agent-clock time moved by `offset_ns` (the hidden --clock-offset-ns, for tests of
    clock sync: it makes this agent's clock disagree with the host's by a known amount)."""
    if not offset_ns:
        return record
    samples = tuple(
        PowerSample(t_ns=s.t_ns + offset_ns, rails_mw=s.rails_mw, total_mw=s.total_mw) for s in record.power_samples
    )
    return with_changes(
        record,
        window_start_ns=record.window_start_ns + offset_ns,
        window_end_ns=record.window_end_ns + offset_ns,
        power_samples=samples,
    )


def _number(args: Mapping[str, Any], name: str, lo: float, hi: float, *, integer: bool = False) -> Any:
    """args[name] as a bounded number (None when absent), or BadInput naming the range."""
    value = args.get(name)
    if value is None:
        return None
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise BadInput(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not lo <= value <= hi:
        raise BadInput(f"{name} = {value} is outside [{lo:g}, {hi:g}]")
    return value


def _text(args: Mapping[str, Any], name: str, limit: int = 128) -> str:
    value = args.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        raise BadInput(f"{name} must be a string of at most {limit} characters")
    return value


@dataclass
class AgentService:
    """What one agent offers: its engines, its on-board sensor and its clock. Sessions share it."""

    engines_dir: Path
    token: str | None = None
    sampler: Any = None  # an agent.sensors Sampler, or None for timing only
    sensor_info: Mapping[str, Any] = field(default_factory=dict)
    clock_offset_ns: int = 0
    metadata_root: Path = Path("/")
    manifest: Any = None

    def __post_init__(self) -> None:
        self._manifest_mtime_ns = -1
        self.refresh_manifest()

    def refresh_manifest(self) -> None:
        """Re-read manifest.json when it changed (engines built while the agent runs become runnable)."""
        from edgebench.engines.manifest import MANIFEST_NAME, Manifest

        path = Path(self.engines_dir) / MANIFEST_NAME
        mtime = path.stat().st_mtime_ns if path.is_file() else -1
        if self.manifest is None or mtime != self._manifest_mtime_ns:
            self.manifest = Manifest.load(Path(self.engines_dir))
            self._manifest_mtime_ns = mtime

    def now_ns(self) -> int:
        return time.time_ns() + self.clock_offset_ns

    # --- operations ---------------------------------------------------------------------------------------

    def hello(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from .metadata import collect_metadata

        version = wire.negotiate(args.get("versions"))
        return {
            "protocol": version,
            "edgebench": __version__,
            "clock": AGENT_CLOCK,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "engines_dir": str(self.engines_dir),
            "engines": len(self.manifest.entries),
            "sensor": dict(self.sensor_info),
            "device": collect_metadata(self.metadata_root),
        }

    def clock(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {"t_ns": self.now_ns()}

    def engines(self, args: Mapping[str, Any]) -> dict[str, Any]:
        self.refresh_manifest()
        return {"directory": str(self.engines_dir), "engines": [e.to_dict() for e in self.manifest.entries]}

    def run(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from edgebench.engines.backends import open_runner
        from edgebench.engines.runner import RunOptions

        from .harness import run_engine

        name = _text(args, "engine", 256)
        self.refresh_manifest()
        if name not in self.manifest:
            # only manifest engines: a request can never name a file to load
            raise BadInput(
                f"engine {name!r} is not in this agent's manifest ({self.manifest.path}): ask `engines` for the list"
            )
        duration_s = _number(args, "duration_s", 1e-3, MAX_WINDOW_S)
        iterations = _number(args, "iterations", 1, MAX_ITERATIONS, integer=True)
        if duration_s is not None and iterations is not None:
            raise BadInput("run takes duration_s or iterations, not both")
        warmup_s = _number(args, "warmup_s", 0, MAX_WARMUP_S)
        threads = _number(args, "threads", 1, 1024, integer=True)
        inter = _number(args, "inter_op_threads", 1, 1024, integer=True)
        options = RunOptions(intra_op_threads=threads, inter_op_threads=inter)
        entry = self.manifest.get(name)
        try:
            runner = open_runner(self.engines_dir, entry, options)
        except EdgebenchError as exc:
            raise wire.EngineFailed(f"{name} could not be loaded: {exc}") from exc
        except Exception as exc:  # a backend's own exception: the engine is broken, the agent is fine
            raise wire.EngineFailed(f"{name} could not be loaded: {type(exc).__name__}: {exc}") from exc
        try:
            record = run_engine(
                runner,
                warmup_s=warmup_s,
                duration_s=duration_s,
                iterations=iterations,
                options=options,
                sampler=self.sampler,
                metadata_root=self.metadata_root,
                run_id=_text(args, "run_id"),
                repeat=_number(args, "repeat", 0, 1_000_000, integer=True) or 0,
                model=entry.model_facts(),
            )
        except Exception as exc:
            raise wire.EngineFailed(f"{name} failed while running: {type(exc).__name__}: {exc}") from exc
        finally:
            runner.close()
        return {"record": to_dict(shift_record(record, self.clock_offset_ns))}

    def idle(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from .harness import idle_window

        duration_s = _number(args, "duration_s", 1e-3, MAX_WINDOW_S)
        if duration_s is None:
            raise BadInput("idle needs duration_s (seconds)")
        record = idle_window(
            duration_s,
            self.sampler,
            metadata_root=self.metadata_root,
            run_id=_text(args, "run_id"),
            repeat=_number(args, "repeat", 0, 1_000_000, integer=True) or 0,
        )
        return {"record": to_dict(shift_record(record, self.clock_offset_ns))}


class Session:
    """One client's conversation: hello first (with the token when one is set), then any operation."""

    def __init__(self, service: AgentService) -> None:
        self.service = service
        self.greeted = False
        self.closed = False

    def handle(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """One decoded request -> one response; never raises for a bad request."""
        id_ = data.get("id", 0) if isinstance(data.get("id", 0), int) else 0
        try:
            req = wire.parse_request(data)
            if req.op == "hello":
                self._check_token(req.args)
                result = self.service.hello(req.args)
                self.greeted = True
                return wire.ok(req.id, result)
            if not self.greeted:
                raise BadInput(f"{req.op} before hello: send hello first")
            if req.op == "bye":
                self.closed = True
                return wire.ok(req.id, {"bye": True})
            operation: Callable[[Mapping[str, Any]], dict[str, Any]] = getattr(self.service, req.op)
            return wire.ok(req.id, operation(req.args))
        except Exception as exc:
            kind = wire.error_kind(exc)
            message = str(exc) if isinstance(exc, EdgebenchError) else f"{type(exc).__name__}: {exc}"
            if kind == "failure":
                warn(f"agent: request {data.get('op')!r} failed: {message}")
            return wire.error(id_, kind, message)

    def _check_token(self, args: Mapping[str, Any]) -> None:
        expected = self.service.token
        if not expected:
            return
        given = args.get("token")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
            self.closed = True  # no second guess on this connection
            raise BadInput("token rejected: pass the agent's token (--token or $EDGEBENCH_AGENT_TOKEN)")


def serve_stream(service: AgentService, rfile: IO[bytes], wfile: IO[bytes]) -> None:
    """Serve one session over a pair of byte streams until bye, end of input or a protocol violation."""
    session = Session(service)
    while not session.closed:
        line = rfile.readline(wire.MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > wire.MAX_LINE_BYTES:
            # the rest of the line is still unread: the stream cannot be trusted any more
            wfile.write(wire.encode(wire.error(0, "protocol", f"request longer than {wire.MAX_LINE_BYTES} bytes")))
            wfile.flush()
            return
        if not line.strip():
            continue
        try:
            data = wire.decode(line)
        except ProtocolError as exc:
            response = wire.error(0, "protocol", str(exc))
        else:
            response = session.handle(data)
        wfile.write(wire.encode(response))
        wfile.flush()


def serve_stdio(service: AgentService) -> None:
    """Serve one session on stdin/stdout, with fd 1 redirected to stderr for everything but the protocol."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr  # Python-level prints go to stderr too
    with os.fdopen(protocol_fd, "wb", buffering=0) as wfile:
        serve_stream(service, sys.stdin.buffer, wfile)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (loopback) or `[::1]:PORT` -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise BadInput(f"--listen {text!r} is not HOST:PORT: write it like 127.0.0.1:{wire.DEFAULT_TCP_PORT}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve_connection(service: AgentService, conn: socket.socket, peer: tuple) -> None:
    who = f"{peer[0]}:{peer[1]}"
    note(f"agent: session from {who}")
    conn.settimeout(IDLE_TIMEOUT_S)
    with conn, conn.makefile("rb") as rfile, conn.makefile("wb") as wfile:
        try:
            serve_stream(service, rfile, wfile)
        except (OSError, TimeoutError) as exc:
            note(f"agent: session from {who} ended: {exc}")
    note(f"agent: session from {who} closed")


def _refuse(conn: socket.socket, message: str) -> None:
    with conn:
        try:
            conn.settimeout(5.0)
            conn.sendall(wire.encode(wire.error(0, "bad-input", message)))
        except OSError:
            pass


def serve_tcp(service: AgentService, host: str, port: int, *, once: bool = False, announce=print) -> None:
    """Serve sessions on HOST:PORT, one at a time: a client arriving while one runs is told so and closed (two
    measurements at once would spoil both). `once` stops after the first session."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((host, port))
    except OSError as exc:
        server.close()
        raise BadInput(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --listen port") from None
    server.listen(4)
    server.settimeout(0.5)  # wake up now and then to notice the end of a --once session
    announce(f"edgebench agent listening on {host}:{server.getsockname()[1]}")
    busy = threading.Lock()
    finished = threading.Event()
    current = {"peer": ""}

    def session(conn: socket.socket, peer: tuple) -> None:
        # a grace period: the previous client may have said bye a moment before its session thread has ended
        if not busy.acquire(timeout=BUSY_GRACE_S):
            note(f"agent: refused {peer[0]}:{peer[1]}: busy with {current['peer']}")
            _refuse(conn, f"the agent is busy with a session from {current['peer']}: one measurement at a "
                          "time; wait for it to end")
            return
        current["peer"] = f"{peer[0]}:{peer[1]}"
        try:
            _serve_connection(service, conn, peer)
        finally:
            busy.release()
            if once:
                finished.set()

    with server:
        while not finished.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=session, args=(conn, peer), name="agent-session", daemon=True).start()


def _sensor_info(sensor) -> dict[str, Any]:
    if sensor is None:
        return {"name": "none"}
    return {"name": sensor.name, "total_rule": sensor.total_rule, "estimate": bool(sensor.estimate)}


@click.command()
@click.option("--stdio", is_flag=True, help="Serve one session on stdin/stdout (what --agent local and ssh start).")
@click.option("--listen", metavar="HOST:PORT", help=f"Serve TCP sessions, e.g. 0.0.0.0:{wire.DEFAULT_TCP_PORT}.")
@click.option(
    "--engines", "engines_dir", type=click.Path(path_type=Path, file_okay=False), default="engines-out",
    show_default=True, help="Engines directory (its manifest.json lists the only engines that can run).",
)
@click.option("--token", envvar=TOKEN_ENV, help=f"Shared secret a TCP client must send (or ${TOKEN_ENV}).")
@click.option("--sensor", default="auto", show_default=True, metavar="auto|none|NAME",
              help="On-board power source sampled during windows (see `edgebench sensors`).")
@click.option("--sensor-period-ms", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Sampling period of the on-board sensor (tegrastats: its --interval).")
@click.option("--sensor-root", type=click.Path(path_type=Path, file_okay=False, exists=True), default=Path("/"),
              show_default=True, help="Root the sensor and metadata read sysfs and /proc under.")
@click.option("--once", is_flag=True, help="With --listen: exit after the first session.")
@click.option("--clock-offset-ns", type=int, default=0, hidden=True,
              help="Skew every agent time by this much (tests of clock sync).")
def agent(
    stdio: bool,
    listen: str | None,
    engines_dir: Path,
    token: str | None,
    sensor: str,
    sensor_period_ms: float,
    sensor_root: Path,
    once: bool,
    clock_offset_ns: int,
) -> None:
    """Serve the agent protocol so `edgebench measure` on a host can run this device's engines.

    \b
    edgebench agent --stdio                        (started for you by --agent local / ssh://)
    edgebench agent --listen 0.0.0.0:8765 --token "$(openssl rand -hex 16)"
    """
    if stdio == (listen is not None):
        raise BadInput("pass --stdio or --listen HOST:PORT (one of them)")
    if listen is not None:
        host, port = parse_listen(listen)
        if not is_loopback(host) and not token:
            raise BadInput(
                f"--listen {host} is reachable from other machines: pass --token SECRET (or set ${TOKEN_ENV}); "
                "the host passes the same with --token"
            )
    service = AgentService(engines_dir=engines_dir, token=token or None, clock_offset_ns=clock_offset_ns,
                           metadata_root=sensor_root)
    from .cli import _open_sampler

    sampler, power_sensor = _open_sampler(sensor, sensor_period_ms / 1000.0, sensor_root)
    service.sampler = sampler
    service.sensor_info = _sensor_info(power_sensor)
    try:
        if stdio:
            serve_stdio(service)
        else:
            serve_tcp(service, host, port, once=once, announce=lambda line: click.echo(line) or sys.stdout.flush())
    except KeyboardInterrupt:
        note("agent: stopped")
    finally:
        if power_sensor is not None:
            power_sensor.close()
