"""`edgebench agent`: serve the agent protocol (edgebench.protocol) over stdio or TCP.

The agent is the device side of `edgebench measure`: the host asks for the clock, the engine list, idle windows
and measured runs, and gets RunRecords back. Over stdio (`--stdio`, what `--agent local` and `--agent ssh://...`
start) the protocol owns the process's stdout: anything else that writes to file descriptor 1 (a C library, a
stray print) is sent to stderr instead, so it can never corrupt a response. Over TCP (`--listen HOST:PORT`) the
agent serves one session at a time (two measurements at once would spoil both); it listens on loopback by default
and refuses to listen elsewhere without a token. A TCP connection takes the session slot only once it has sent a
valid hello (with the token): until then it has HELLO_TIMEOUT_S in all, up to MAX_PENDING_HELLOS such
connections (MAX_PENDING_PER_PEER from one address) are read side by side, and a newcomer that finds no room
pushes out the oldest silent one, so silent, trickling or flooding clients cannot keep a real one out. Whatever the
transport, only engines of its manifest can be run, a request line is at most 64 KiB, and every argument is
checked by `edgebench.protocol.parse_request` before an operation sees it.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import ipaddress
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from edgebench import __version__
from edgebench import protocol as wire
from edgebench.console import note, warn
from edgebench.errors import BadInput, EdgebenchError, ProtocolError
from edgebench.options import engines_dir_option, sensor_option, token_option
from edgebench.protocol import TOKEN_ENV
from edgebench.records import AGENT_CLOCK, PowerSample, RunRecord, to_dict, with_changes

from .options import sensor_period_option, sensor_root_option

if TYPE_CHECKING:
    from edgebench.engines.manifest import Manifest

    from .sensors.base import PowerSensor
    from .sensors.sampler import Sampler

HELLO_TIMEOUT_S = 2.0  # a TCP connection must send its hello line within this long, in all (a trickle cannot stretch it)
MAX_PENDING_HELLOS = 64  # TCP connections that have not said hello yet, read side by side
MAX_PENDING_PER_PEER = 16  # of those, from one address; a newcomer over either cap pushes out the oldest silent one
IDLE_TIMEOUT_S = 3600.0  # an authenticated TCP session that says nothing for this long is dropped
BUSY_GRACE_S = 2.0  # how long a new TCP client waits for the previous session to end before it is refused
BUSY_MESSAGE = "the agent is busy with another session: one measurement at a time; wait for it to end"


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


@dataclass
class AgentService:
    """What one agent offers: its engines, its on-board sensor and its clock. Sessions share it."""

    engines_dir: Path
    token: str | None = None
    sampler: Sampler | None = None  # None: timing only
    sensor_info: Mapping[str, Any] = field(default_factory=dict)
    clock_offset_ns: int = 0
    metadata_root: Path = Path("/")
    manifest: Manifest | None = None

    def __post_init__(self) -> None:
        self._manifest_mtime_ns = -1
        self.refresh_manifest()

    def refresh_manifest(self) -> Manifest:
        """Re-read manifest.json when it changed (engines built while the agent runs become runnable); the
        manifest now."""
        from edgebench.engines.manifest import MANIFEST_NAME, Manifest

        path = Path(self.engines_dir) / MANIFEST_NAME
        mtime = path.stat().st_mtime_ns if path.is_file() else -1
        if self.manifest is None or mtime != self._manifest_mtime_ns:
            self.manifest = Manifest.load(Path(self.engines_dir))
            self._manifest_mtime_ns = mtime
        return self.manifest

    def now_ns(self) -> int:
        return time.time_ns() + self.clock_offset_ns

    # --- operations: `args` were checked by wire.parse_request (known names, types, ranges) --------------

    def hello(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from .metadata import collect_metadata
        from .sensors.cpuload import busy_since_boot

        version = wire.negotiate(args.get("versions"))
        device = collect_metadata(self.metadata_root)
        # Once per session, a hint of the device's quiet CPU level for the host's busy-baseline check: the
        # utilisation since boot (one read). A device that mostly idles shows a few percent here.
        since_boot = busy_since_boot(self.metadata_root)
        assert self.manifest is not None  # loaded when the service was made
        if since_boot is not None:
            device["cpu.busy_since_boot"] = round(since_boot, 4)
        return {
            "protocol": version,
            "edgebench": __version__,
            "clock": AGENT_CLOCK,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "engines_dir": str(self.engines_dir),
            "engines": len(self.manifest.entries),
            "sensor": dict(self.sensor_info),
            "device": device,
        }

    def clock(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {"t_ns": self.now_ns()}

    def engines(self, args: Mapping[str, Any]) -> dict[str, Any]:
        manifest = self.refresh_manifest()
        return {"directory": str(self.engines_dir), "engines": [e.to_dict() for e in manifest.entries]}

    def run(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from edgebench.engines.backends import open_runner
        from edgebench.engines.runner import RunOptions

        from .harness import run_engine, time_limits
        from .watchdog import WindowStopped

        name = args["engine"]
        manifest = self.refresh_manifest()
        if name not in manifest:
            # only manifest engines: a request can never name a file to load
            raise BadInput(
                f"engine {name!r} is not in this agent's manifest ({manifest.path}): ask `engines` for the list"
            )
        options = RunOptions(intra_op_threads=args.get("threads"), inter_op_threads=args.get("inter_op_threads"))
        entry = manifest.get(name)
        try:
            runner = open_runner(self.engines_dir, entry, options)
        except EdgebenchError as exc:
            raise wire.EngineFailed(f"{name} could not be loaded: {exc}") from exc
        except Exception as exc:  # a backend's own exception: the engine is broken, the agent is fine
            raise wire.EngineFailed(f"{name} could not be loaded: {type(exc).__name__}: {exc}") from exc
        try:
            record = run_engine(
                runner,
                warmup_s=args.get("warmup_s"),
                duration_s=args.get("duration_s"),
                iterations=args.get("iterations"),
                options=options,
                sampler=self.sampler,
                metadata_root=self.metadata_root,
                run_id=args.get("run_id", ""),
                repeat=args.get("repeat", 0),
                model=entry.model_facts(),
                limits=time_limits(
                    args.get("inference_timeout_s"), args.get("window_timeout_s"), warmup_s=args.get("warmup_s"),
                    duration_s=args.get("duration_s"), iterations=args.get("iterations"),
                ),
            )
        except WindowStopped as exc:
            if exc.interrupted:  # Ctrl-C on the agent (stdio, main thread): the agent stops, as it would idle
                raise KeyboardInterrupt from exc
            raise wire.EngineFailed(f"{name} failed: {exc}") from exc
        except Exception as exc:
            raise wire.EngineFailed(f"{name} failed while running: {type(exc).__name__}: {exc}") from exc
        finally:
            runner.close()
        return {"record": to_dict(shift_record(record, self.clock_offset_ns))}

    def idle(self, args: Mapping[str, Any]) -> dict[str, Any]:
        from .harness import idle_window

        record = idle_window(
            args["duration_s"],
            self.sampler,
            metadata_root=self.metadata_root,
            run_id=args.get("run_id", ""),
            repeat=args.get("repeat", 0),
        )
        return {"record": to_dict(shift_record(record, self.clock_offset_ns))}


class Session:
    """One client's conversation: hello first (with the token when one is set), then any operation."""

    def __init__(self, service: AgentService) -> None:
        self.service = service
        self.greeted = False
        self.closed = False

    def admit(self, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """Before a TCP connection may take the agent: None when `data` is a hello with the right token and a
        common version, else the error response to send before closing (it never names the current peer)."""
        try:
            req = wire.parse_request(data)
            if req.op != "hello":
                raise BadInput(f"{req.op} before hello: send hello first")
            self._check_token(req.args)
            wire.negotiate(req.args["versions"])
        except EdgebenchError as exc:
            return wire.error(wire.request_id(data), wire.error_kind(exc), str(exc))
        return None

    def handle(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """One decoded request -> one response; never raises for a bad request."""
        id_ = wire.request_id(data)
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
        # surrogatepass: a token from the environment may hold undecodable bytes (surrogateescape)
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
        ):
            self.closed = True  # no second guess on this connection
            raise BadInput(f"token rejected: pass the agent's token (--token or ${TOKEN_ENV})")


def _answer(session: Session, line: bytes) -> bytes:
    """The encoded response to one request line; whatever the line holds, exactly one well-formed response."""
    try:
        data = wire.decode(line)
    except ProtocolError as exc:
        return wire.encode(wire.error(0, "protocol", str(exc)))
    try:
        return wire.encode(session.handle(data))
    except Exception as exc:  # a result that is not JSON (a NaN from a backend): the agent goes on
        warn(f"agent: could not answer {data.get('op')!r}: {type(exc).__name__}: {exc}")
        return wire.encode(wire.error(wire.request_id(data), "failure", f"could not encode the answer: {exc}"))


def serve_stream(service: AgentService, rfile: IO[bytes], wfile: IO[bytes], session: Session | None = None) -> None:
    """Serve one session over a pair of byte streams until bye, end of input or a protocol violation (`session`:
    one already greeted, for a TCP connection whose hello was read before)."""
    session = session or Session(service)
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
        wfile.write(_answer(session, line))
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


class _PrefixedReader(io.RawIOBase):
    """A socket's input with the bytes that arrived behind the hello line put back in front."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        super().__init__()
        self._sock = sock
        self._prefix = prefix

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._sock.recv_into(buffer)


class _Pending:
    """A TCP connection that has not sent its hello line yet."""

    __slots__ = ("conn", "peer", "who", "accepted", "deadline", "buf", "heard")

    def __init__(self, conn: socket.socket, peer: tuple, timeout_s: float) -> None:
        self.conn = conn
        self.peer = str(peer[0])  # the address alone: every connection of one machine counts against its cap
        self.who = f"{peer[0]}:{peer[1]}"
        self.accepted = time.monotonic()
        self.deadline = self.accepted + timeout_s
        self.buf = b""
        self.heard = False  # any byte received (a silent connection is dropped before one that talks)


def _close_quietly(conn: socket.socket, response: Mapping[str, Any] | None = None) -> None:
    """Send `response` (if any) without blocking and close; unread input is drained first (bounded), so the
    close is a clean end of stream rather than a reset that could overtake the error line."""
    with conn:
        try:
            conn.setblocking(False)
            if response is not None:
                conn.send(wire.encode(response))
            conn.shutdown(socket.SHUT_WR)
            for _ in range(16):
                if not conn.recv(65536):
                    break
        except OSError:
            pass


class _Listener:
    """The TCP listener: one thread accepts connections and reads their hello lines (non-blocking, all side by
    side); a connection whose hello is valid gets a thread of its own that waits for the session slot.

    The hello phase is bounded three ways, so a flood of silent connections cannot keep a client with the token
    out: each connection has `hello_timeout_s` in all (a trickle cannot stretch it); at most `max_pending`
    connections wait, and at most `max_per_peer` of them from one address; and when a new connection finds no
    room, one already waiting is dropped instead of the newcomer being turned away: of the address at its cap
    (or, when all are full, of the address with the most waiting), the oldest connection that has sent nothing,
    else its oldest. A flooder thus only ever pushes out its own connections, and a client that sends its hello
    at once is read before later connections can push it out: hello lines already received are read before new
    connections are accepted, at most ACCEPT_BATCH at a time, and each newcomer is read as soon as it is accepted.
    """

    ACCEPT_BATCH = 4

    def __init__(
        self,
        service: AgentService,
        server: socket.socket,
        *,
        hello_timeout_s: float,
        max_pending: int,
        max_per_peer: int,
        once: bool,
        finished: threading.Event,
    ) -> None:
        self.service = service
        self.server = server
        self.hello_timeout_s = hello_timeout_s
        self.max_pending = max(1, max_pending)
        self.max_per_peer = max(1, min(max_per_peer, self.max_pending))
        self.once = once
        self.finished = finished
        self.slot = threading.Lock()
        self.pending: dict[socket.socket, _Pending] = {}  # in accept order, so the first has the first deadline
        self.selector = selectors.DefaultSelector()
        self.dropped = 0  # connections pushed out to make room (for the log)

    def run(self) -> None:
        self.server.setblocking(False)
        self.selector.register(self.server, selectors.EVENT_READ, None)
        try:
            while not self.finished.is_set():
                events = self.selector.select(self._wait_s())
                accept = False
                for key, _ in events:  # hello lines already here first: they are not pushed out by newcomers
                    if key.data is None:
                        accept = True
                    elif key.fileobj in self.pending:
                        self._read(key.data)
                self._expire()
                if accept:
                    self._accept()
        finally:
            for waiting in list(self.pending.values()):
                self._forget(waiting)
                _close_quietly(waiting.conn)
            self.selector.close()

    def _wait_s(self) -> float:
        if not self.pending:
            return 0.5  # wake up now and then to notice `finished`
        first = next(iter(self.pending.values()))
        return min(0.5, max(0.0, first.deadline - time.monotonic()))

    def _accept(self) -> None:
        for _ in range(self.ACCEPT_BATCH):
            try:
                conn, peer = self.server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, a connection reset before it was accepted
                note(f"agent: accept failed: {exc}")
                return
            conn.setblocking(False)
            waiting = _Pending(conn, peer, self.hello_timeout_s)
            self._make_room(waiting.peer)
            self.pending[conn] = waiting
            self.selector.register(conn, selectors.EVENT_READ, waiting)
            self._read(waiting)  # a hello sent right after connecting is usually here already

    def _make_room(self, peer: str) -> None:
        mine = [w for w in self.pending.values() if w.peer == peer]
        if len(mine) >= self.max_per_peer:
            candidates = mine
        elif len(self.pending) >= self.max_pending:
            counts: dict[str, int] = {}
            for w in self.pending.values():
                counts[w.peer] = counts.get(w.peer, 0) + 1
            most = max(counts.values())
            candidates = [w for w in self.pending.values() if counts[w.peer] == most]
        else:
            return
        victim = min(candidates, key=lambda w: (w.heard, w.accepted))  # silent before talking, then oldest
        self.dropped += 1
        if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
            note(f"agent: {self.dropped} connection(s) dropped before their hello to make room (a flood?)")
        self._drop(victim, wire.error(
            0, "bad-input",
            f"dropped before hello: {len(candidates)} connections from this address were waiting "
            f"({self.max_per_peer} at most per address, {self.max_pending} in all) and this one had waited "
            "longest; connect again and send hello at once",
        ))

    def _read(self, waiting: _Pending) -> None:
        try:
            data = waiting.conn.recv(wire.MAX_LINE_BYTES + 1 - len(waiting.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the peer went away before its hello
            self._forget(waiting)
            _close_quietly(waiting.conn)
            return
        waiting.heard = True
        buf = waiting.buf + data
        while (nl := buf.find(b"\n")) >= 0 and not buf[:nl].strip():
            buf = buf[nl + 1:]  # blank lines before the hello are skipped
        waiting.buf = buf
        nl = buf.find(b"\n")
        if nl < 0 and len(buf) <= wire.MAX_LINE_BYTES:
            return  # more to come, within the deadline
        if nl < 0 or nl + 1 > wire.MAX_LINE_BYTES:
            self._drop(waiting, wire.error(0, "protocol", f"request longer than {wire.MAX_LINE_BYTES} bytes"))
            return
        self._forget(waiting)
        self._hello(waiting, buf[: nl + 1], buf[nl + 1:])

    def _expire(self) -> None:
        now = time.monotonic()
        for waiting in list(self.pending.values()):
            if waiting.deadline > now:
                break  # accept order is deadline order
            self._drop(waiting, wire.error(0, "protocol", f"no hello within {self.hello_timeout_s:g} s: closing"))

    def _forget(self, waiting: _Pending) -> None:
        self.pending.pop(waiting.conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(waiting.conn)

    def _drop(self, waiting: _Pending, response: Mapping[str, Any]) -> None:
        self._forget(waiting)
        _close_quietly(waiting.conn, response)

    def _hello(self, waiting: _Pending, line: bytes, rest: bytes) -> None:
        """A complete first line: answered and closed here when it is no valid hello, else handed to a session
        thread (which waits for the slot)."""
        session = Session(self.service)
        try:
            data = wire.decode(line)
        except ProtocolError as exc:
            _close_quietly(waiting.conn, wire.error(0, "protocol", str(exc)))
            return
        try:
            refusal = session.admit(data)
        except Exception as exc:  # never stop the listener over one connection
            refusal = wire.error(wire.request_id(data), "failure", f"{type(exc).__name__}: {exc}")
        if refusal is not None:
            _close_quietly(waiting.conn, refusal)
            return
        threading.Thread(
            target=self._session, args=(waiting, session, line, rest, data), name="agent-session", daemon=True
        ).start()

    def _session(self, waiting: _Pending, session: Session, line: bytes, rest: bytes, data: Mapping) -> None:
        conn, who = waiting.conn, waiting.who
        conn.setblocking(True)
        if not self.slot.acquire(timeout=BUSY_GRACE_S):
            # the grace: the previous client may have said bye a moment before its session thread has ended
            note(f"agent: refused {who}: busy")
            _close_quietly(conn, wire.error(wire.request_id(data), "bad-input", BUSY_MESSAGE))
            return
        rfile = io.BufferedReader(_PrefixedReader(conn, rest))
        wfile = conn.makefile("wb")
        try:
            note(f"agent: session from {who}")
            conn.settimeout(IDLE_TIMEOUT_S)
            try:
                wfile.write(_answer(session, line))
                wfile.flush()
                serve_stream(self.service, rfile, wfile, session)
            except OSError as exc:  # TimeoutError included
                note(f"agent: session from {who} ended: {exc}")
            except Exception as exc:  # one session's trouble never stops the agent
                warn(f"agent: session from {who} failed: {type(exc).__name__}: {exc}")
            note(f"agent: session from {who} closed")
        finally:
            for stream in (wfile, rfile, conn):
                with contextlib.suppress(OSError):  # a reset peer cannot take the flush of an error line
                    stream.close()
            self.slot.release()
        if self.once:
            self.finished.set()


def serve_tcp(
    service: AgentService,
    host: str,
    port: int,
    *,
    once: bool = False,
    announce: Callable[[str], object] = print,
    hello_timeout_s: float = HELLO_TIMEOUT_S,
    max_pending: int = MAX_PENDING_HELLOS,
    max_pending_per_peer: int = MAX_PENDING_PER_PEER,
    stop: threading.Event | None = None,
) -> None:
    """Serve sessions on HOST:PORT, one at a time: a client that has said hello while one runs is told so and
    closed (two measurements at once would spoil both). Connections that have not said hello yet are read side
    by side, each for at most `hello_timeout_s`, at most `max_pending` of them and `max_pending_per_peer` from
    one address, the oldest silent one dropped to make room (see _Listener); they never hold the session slot.
    `once` stops after the first session; setting `stop` stops accepting (within half a second)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((host, port))
    except OSError as exc:
        server.close()
        raise BadInput(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --listen port") from None
    # a deep accept queue: a full one makes the kernel drop connection attempts, and the client's retry comes
    # a second later; the listener empties the queue quickly and bounds what it holds itself
    server.listen(socket.SOMAXCONN)
    announce(f"edgebench agent listening on {host}:{server.getsockname()[1]}")
    listener = _Listener(
        service, server, hello_timeout_s=hello_timeout_s, max_pending=max_pending,
        max_per_peer=max_pending_per_peer, once=once, finished=stop or threading.Event(),
    )
    with server:
        listener.run()


def _sensor_info(sensor: PowerSensor | None) -> dict[str, Any]:
    if sensor is None:
        return {"name": "none"}
    return {"name": sensor.name, "total_rule": sensor.total_rule, "estimate": bool(sensor.estimate)}


def _announce(line: str) -> None:
    """The listening address on stdout at once (a script starting the agent waits for it)."""
    click.echo(line)
    sys.stdout.flush()


@click.command()
@click.option("--stdio", is_flag=True, help="Serve one session on stdin/stdout (what --agent local and ssh start).")
@click.option("--listen", metavar="HOST:PORT", help=f"Serve TCP sessions, e.g. 0.0.0.0:{wire.DEFAULT_TCP_PORT}.")
@engines_dir_option("its manifest lists the only engines that can run")
@token_option("what a client must send")
@sensor_option()
@sensor_period_option
@sensor_root_option()
@click.option("--once", is_flag=True, help="With --listen: exit after the first session.")
@click.option("--clock-offset-ns", type=click.IntRange(-(2**62), 2**62), default=0, hidden=True,
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
            serve_tcp(service, host, port, once=once, announce=_announce)
    except KeyboardInterrupt:
        note("agent: stopped")
    finally:
        if power_sensor is not None:
            power_sensor.close()
