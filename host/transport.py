"""Reach an agent from the host: `--agent local`, `--agent ssh://user@jetson[:port][/path/to/engines]`,
`--agent tcp://jetson:8765`. Each gives a `LineClient` that speaks edgebench.protocol over a line channel; what a
host session needs of it is the `AgentClient` protocol.

- local: `python -m edgebench agent --stdio` as a subprocess of this process (same machine, same clock).
- ssh: `ssh -T -o BatchMode=yes ... -- user@jetson edgebench agent --stdio --engines PATH` (keys, not passwords:
  a password prompt would hang a measurement; the remote edgebench must be on the login PATH or named with
  --agent-command). A user or host name starting with `-` is refused, and `--` ends ssh's options, so no part
  of the URL can become an ssh option (`-oProxyCommand=...`).
- tcp: a socket to `edgebench agent --listen`, sending the token in hello.

Responses are read by a thread into a queue so every request has a deadline: an agent that hangs or dies is
reported, never waited on forever. The agent's stderr is passed through, prefixed `agent:`, and its last lines
are kept for error messages.
"""

from __future__ import annotations

import queue
import shlex
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import unquote, urlsplit

from edgebench import protocol as wire
from edgebench.cli import edgebench_argv
from edgebench.console import note
from edgebench.errors import BadInput, DeviceError, ProtocolError

CONNECT_TIMEOUT_S = 15.0
HELLO_REPLY_TIMEOUT_S = 60.0  # the agent imports onnxruntime and reads device metadata before answering
SHORT_TIMEOUT_S = 10.0


class AgentLost(DeviceError):
    """The agent process or connection went away (a crash, a reboot, a dropped network)."""


@dataclass(frozen=True)
class AgentSpec:
    """Where the agent is: kind "local", "ssh" or "tcp", and how to reach it."""

    kind: str
    host: str = ""
    port: int | None = None
    user: str = ""
    engines_dir: str = ""  # on the agent's side; "" for the agent's default (or the host's --engines for local)

    @property
    def label(self) -> str:
        if self.kind == "local":
            return "local"
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{self.kind}://{who}{self.host}{port}"


def parse_agent(text: str) -> AgentSpec:
    """Parse an --agent value; BadInput with the accepted forms otherwise."""
    forms = "local, ssh://user@host[:port][/path/to/engines] or tcp://host:port"
    text = text.strip()
    if text in ("", "local"):
        return AgentSpec("local")
    parts = urlsplit(text)
    if parts.scheme not in ("ssh", "tcp") or not parts.hostname:
        raise BadInput(f"--agent {text!r} is not one of {forms}")
    try:
        port = parts.port
    except ValueError:
        raise BadInput(f"--agent {text!r}: the port is not a number ({forms})") from None
    for what, name in (("host", parts.hostname), ("user", unquote(parts.username or ""))):
        if name.startswith("-") or any(ch.isspace() or not ch.isprintable() for ch in name):
            raise BadInput(
                f"--agent {text!r}: the {what} name {name!r} starts with '-' or holds spaces or control characters, "
                "which ssh would take as an option: write the real name"
            )
    if parts.scheme == "tcp":
        if parts.path not in ("", "/"):
            raise BadInput(f"--agent {text!r}: a TCP agent serves its own engines directory; drop the path")
        return AgentSpec("tcp", host=parts.hostname, port=port or wire.DEFAULT_TCP_PORT)
    return AgentSpec(
        "ssh", host=parts.hostname, port=port, user=unquote(parts.username or ""), engines_dir=unquote(parts.path)
    )


class _LineReader:
    """A thread that reads lines from a byte stream into a queue (None marks the end)."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self._stream = stream
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                # responses carry whole RunRecords (latencies, power samples): no 64 KiB limit this way
                line = self._stream.readline()
                if not line:
                    break
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        finally:
            self.lines.put(None)

    def close(self, timeout: float = 2.0) -> None:
        """Close the stream once the reader has seen its end (waiting up to `timeout`); a stream still being read
        is left to the reader."""
        _close_after(self._thread, self._stream, timeout)


def _close_after(thread: threading.Thread, stream: IO[bytes], timeout: float) -> None:
    thread.join(timeout)
    if not thread.is_alive():
        try:
            stream.close()
        except (OSError, ValueError):
            pass


class _StderrPump:
    """Pass the agent's stderr through (prefixed) and keep its last lines for error messages."""

    def __init__(self, stream: IO[bytes], echo: bool) -> None:
        self.tail: deque[str] = deque(maxlen=8)
        self._stream, self._echo = stream, echo
        self._thread = threading.Thread(target=self._run, name="agent-stderr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self.tail.append(line)
            if self._echo and line:
                note(f"agent: {line}")

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Close the stream once the agent's stderr has ended (waiting up to `timeout`)."""
        _close_after(self._thread, self._stream, timeout)


class AgentClient(Protocol):
    """What a host session needs from an agent, whatever carries the requests: the agent's answer to hello, one
    request at a time answered within a deadline (its result, or an edgebench error; `AgentLost` when the agent
    went away), and close. `LineClient` is it over a subprocess's pipes (local, ssh) or a TCP socket."""

    @property
    def hello(self) -> Mapping[str, Any]:
        """The agent's hello result (`AgentHello.from_wire` reads it)."""
        ...

    def call(self, op: str, *, timeout_s: float = SHORT_TIMEOUT_S, **args: Any) -> dict[str, Any]:
        """Send request `op` with `args` and wait up to `timeout_s` for its result."""
        ...

    def close(self) -> None:
        """Say bye when the agent still listens, then end the channel."""
        ...


class LineClient:
    """Requests to one agent over one line channel (implements `AgentClient`). Use as a context manager; `bye`
    is sent on close."""

    def __init__(self, spec: AgentSpec, *, token: str | None = None) -> None:
        self.spec = spec
        self.token = token
        self.hello: dict[str, Any] = {}
        self._next_id = 1
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._wfile: IO[bytes] | None = None
        self._reader: _LineReader | None = None
        self._stderr: _StderrPump | None = None
        self._lock = threading.Lock()

    # --- opening ------------------------------------------------------------------------------------------

    def open_process(self, argv: list[str], *, echo_stderr: bool = True) -> None:
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError:
            raise BadInput(f"cannot start the agent: {argv[0]} not found (install it or use another --agent)") from None
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self._wfile = self._proc.stdin
        self._reader = _LineReader(self._proc.stdout, "agent-stdout")
        self._stderr = _StderrPump(self._proc.stderr, echo_stderr)

    def open_socket(self) -> None:
        try:
            self._sock = socket.create_connection((self.spec.host, self.spec.port or 0), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise BadInput(
                f"cannot reach the agent at {self.spec.host}:{self.spec.port} ({exc.strerror or exc}): is "
                f"`edgebench agent --listen` running there, and is the port open?"
            ) from None
        self._sock.settimeout(None)
        self._wfile = self._sock.makefile("wb")  # buffered: flush() writes the whole line (a raw write may not)
        self._reader = _LineReader(self._sock.makefile("rb"), "agent-socket")

    def greet(self) -> dict[str, Any]:
        """Send hello; check the version; keep and return the agent's answer."""
        self.hello = self.call("hello", timeout_s=HELLO_REPLY_TIMEOUT_S, **wire.hello_args(self.token))
        return self.hello

    # --- requests -----------------------------------------------------------------------------------------

    def call(self, op: str, *, timeout_s: float = SHORT_TIMEOUT_S, **args: Any) -> dict[str, Any]:
        """Send one request and wait up to `timeout_s` for its response; the result, or an edgebench error."""
        with self._lock:
            id_ = self._next_id
            self._next_id += 1
            self._send(wire.encode(wire.request(id_, op, **args)))
            deadline = time.monotonic() + timeout_s
            while True:
                left = deadline - time.monotonic()
                try:
                    line = self._reader.lines.get(timeout=max(left, 0.0)) if self._reader else None
                except queue.Empty:
                    raise AgentLost(
                        f"the agent did not answer {op} within {timeout_s:.0f} s{self._tail()}: is it hung?"
                    ) from None
                if line is None:
                    if self._reader is not None:
                        self._reader.lines.put(None)  # stay at end of stream for later calls
                    raise AgentLost(f"the agent went away during {op}{self._exit_words()}{self._tail()}")
                response = wire.decode(line, wire.MAX_RESPONSE_BYTES)
                if response.get("id") in (id_, 0):
                    return wire.raise_for(response, op)
                # a response to an earlier request that timed out: drop it

    def _send(self, data: bytes) -> None:
        if self._wfile is None:
            raise AgentLost("the agent connection is closed")
        try:
            self._wfile.write(data)
            self._wfile.flush()
        except (BrokenPipeError, ConnectionError, OSError, ValueError):
            raise AgentLost(f"the agent went away{self._exit_words()}{self._tail()}") from None

    def _exit_words(self) -> str:
        if self._proc is None:
            return ""
        try:
            code = self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return ""
        if code is not None and code < 0:
            return f" (killed by signal {-code})"
        return f" (exit code {code})"

    def _tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.join(0.5)
        lines = [line for line in self._stderr.tail if line.strip()]
        return f"; its last words: {lines[-1]}" if lines else ""

    @property
    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._sock is not None

    # --- closing ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Say bye when the agent still listens, then end the process or connection."""
        if self._wfile is not None and self.alive and self.hello:
            try:
                self.call("bye", timeout_s=3.0)
            except (AgentLost, ProtocolError, BadInput, OSError):
                pass
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # the reader's file holds the socket open: end its read
            except OSError:
                pass
        for closer in (self._wfile, self._sock):
            try:
                if closer is not None:
                    closer.close()
            except OSError:
                pass
        self._wfile = None
        self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        # the pipes' and the socket's read ends: closed once their readers saw the end, or they leak a descriptor
        for pump in (self._reader, self._stderr):
            if pump is not None:
                pump.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def local_command(engines_dir: Path, sensor: str, extra: list[str] | None = None) -> list[str]:
    """The argv of a local stdio agent: the same edgebench as this process."""
    return [
        *edgebench_argv(), *wire.stdio_agent_args(sensor, str(engines_dir)), *(extra or []),
    ]


def ssh_command(spec: AgentSpec, remote_command: str, engines_dir: str, sensor: str) -> list[str]:
    """The argv that starts a stdio agent over ssh (batch mode: no password prompt can hang the session)."""
    remote = shlex.split(remote_command) + wire.stdio_agent_args(sensor, engines_dir)
    target = f"{spec.user}@{spec.host}" if spec.user else spec.host
    argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(CONNECT_TIMEOUT_S)}"]
    if spec.port:
        argv += ["-p", str(spec.port)]
    if target.startswith("-"):  # parse_agent refuses such names; this keeps a hand-made AgentSpec safe too
        raise BadInput(f"ssh destination {target!r} starts with '-': write the real user and host")
    return argv + ["--", target, shlex.join(remote)]


def connect(
    spec: AgentSpec,
    *,
    engines_dir: Path,
    sensor: str = "auto",
    token: str | None = None,
    remote_command: str = "edgebench",
    extra_args: list[str] | None = None,
) -> LineClient:
    """Start or reach the agent, say hello, and return the client (caller closes it)."""
    client = LineClient(spec, token=token)
    if spec.kind == "local":
        client.open_process(local_command(engines_dir, sensor, extra_args))
    elif spec.kind == "ssh":
        client.open_process(ssh_command(spec, remote_command, spec.engines_dir, sensor))
    elif spec.kind == "tcp":
        client.open_socket()
    else:  # parse_agent makes only these three
        raise BadInput(f"unknown agent kind {spec.kind!r}")
    try:
        client.greet()
    except AgentLost as exc:
        client.close()
        if spec.kind == "ssh":
            raise BadInput(
                f"could not start the agent over ssh ({exc}): check `ssh {spec.host} edgebench --version` works "
                "without a password (keys), or name the command with --agent-command"
            ) from None
        raise
    except BaseException:
        client.close()
        raise
    return client

