"""The agent protocol: wire format, the server's sessions, the stdio and TCP transports, the token, the limits."""

import contextlib
import io
import json
import os
import queue
import select
import signal
import socket
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner
from programs import write_program

from edgebench import protocol as wire
from edgebench.agent import serve
from edgebench.agent.serve import AgentService, Session, parse_listen, serve_stream, serve_tcp
from edgebench.cli import cli
from edgebench.errors import BadInput, ProtocolError
from edgebench.host.transport import (
    AgentLost,
    AgentSpec,
    connect,
    edgebench_argv,
    parse_agent,
    ssh_command,
)
from edgebench.records import AGENT_CLOCK, run_record_from_dict


def test_messages_round_trip_and_bad_bytes_are_named():
    line = wire.encode(wire.request(3, "run", engine="a", duration_s=1.5))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert wire.decode(line) == {"id": 3, "op": "run", "args": {"engine": "a", "duration_s": 1.5}}
    with pytest.raises(ProtocolError, match="not an edgebench agent message: 'Welcome to Ubuntu"):
        wire.decode(b"Welcome to Ubuntu 20.04\n")
    with pytest.raises(ProtocolError, match="JSON list, not an object"):
        wire.decode(b"[1, 2]\n")
    with pytest.raises(ValueError):
        wire.encode({"x": float("nan")})


def test_version_negotiation():
    assert wire.negotiate([1, 2, 7]) == 2
    assert wire.negotiate([1]) == 1  # a version-1 host is still served
    with pytest.raises(BadInput, match="upgrade the agent"):
        wire.negotiate([9])
    with pytest.raises(BadInput, match="versions"):
        wire.negotiate(None)
    with pytest.raises(BadInput, match="integer protocol versions"):
        wire.negotiate(["1", True])
    with pytest.raises(BadInput, match="upgrade the host"):
        wire.negotiate([0])


def test_errors_come_back_as_the_right_exceptions():
    with pytest.raises(BadInput, match="agent refused run: nope"):
        wire.raise_for(wire.error(1, "bad-input", "nope"), "run")
    with pytest.raises(wire.EngineFailed, match="broken"):
        wire.raise_for(wire.error(1, "engine-failed", "broken"), "run")
    assert wire.raise_for(wire.ok(1, {"t_ns": 5}), "clock") == {"t_ns": 5}


@pytest.fixture()
def service(tiny_engines):
    return AgentService(engines_dir=tiny_engines)


def _call(session, op, **args):
    return session.handle(wire.request(1, op, **args))


def test_session_needs_hello_first_then_runs_manifest_engines(service):
    session = Session(service)
    refused = _call(session, "clock")
    assert refused["ok"] is False and "send hello first" in refused["error"]["message"]
    hello = _call(session, "hello", versions=[1])
    assert hello["ok"] and hello["result"]["protocol"] == 1 and hello["result"]["engines"] == 2
    assert hello["result"]["clock"] == AGENT_CLOCK and "cpu.cores.logical" in hello["result"]["device"]
    names = [e["name"] for e in _call(session, "engines")["result"]["engines"]]
    assert names == ["squeezenet1_1_1_32_32_fp32", "squeezenet1_1_2_32_32_fp32"]
    before = time.time_ns()
    t_ns = _call(session, "clock")["result"]["t_ns"]
    assert before <= t_ns <= time.time_ns()

    run = _call(session, "run", engine=names[1], duration_s=0.05, warmup_s=0.01, run_id="r1", repeat=2)
    assert run["ok"], run
    record = run_record_from_dict(run["result"]["record"])
    assert record.engine == names[1] and record.batch == 2 and record.iterations >= 10
    assert record.run_id == "r1" and record.repeat == 2 and record.clock == AGENT_CLOCK
    idle = run_record_from_dict(_call(session, "idle", duration_s=0.05)["result"]["record"])
    assert idle.kind == "idle" and idle.iterations == 0 and idle.duration_ns >= 50_000_000
    assert _call(session, "bye")["ok"] and session.closed


@pytest.mark.parametrize(
    "args, message",
    [
        ({"engine": "../../etc/passwd"}, "not in this agent's manifest"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "duration_s": 1e9}, "outside"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "duration_s": "3"}, "must be a number"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "duration_s": 1, "iterations": 5}, "not both"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "iterations": 2.5}, "must be an integer"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "warmup_s": -1}, "outside"),
        # checked before the engine is opened: never engine-failed
        ({"engine": "squeezenet1_1_1_32_32_fp32", "iterations": 10, "repeat": -1}, "repeat = -1 is outside"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "iterations": 10, "run_id": "r" * 10_000}, "at most 128 char"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "iterations": 10, "run_id": 7}, "must be a string"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "iterations": 10, "run_id": "a\ud800"}, "lone surrogates"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "iterations": 10, "threads": 0}, "threads = 0 is outside"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "iterations": 10, "inter_op_threads": True}, "an integer"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "duration_s": float("inf")}, "outside"),
        ({"engine": "squeezenet1_1_1_32_32_fp32", "iterations": 10, "path": "/etc/passwd"}, "no argument 'path'"),
        ({"engine": ["squeezenet1_1_1_32_32_fp32"]}, "engine must be a string"),
        ({"duration_s": 1}, "run needs engine"),
    ],
)
def test_run_arguments_are_checked(service, args, message):
    session = Session(service)
    _call(session, "hello", versions=[1])
    response = _call(session, "run", **args)
    assert response["ok"] is False and response["error"]["kind"] == "bad-input"
    assert message in response["error"]["message"]


@pytest.mark.parametrize(
    "request_, kind, message",
    [
        ({"id": 1, "op": "idle", "args": {"duration_s": 0.01, "repeat": -1}}, "bad-input", "repeat = -1"),
        ({"id": 1, "op": "idle", "args": {}}, "bad-input", "idle needs duration_s"),
        ({"id": 1, "op": "clock", "args": {"x": 1}}, "bad-input", "clock has no argument 'x'"),
        ({"id": 1, "op": "clock", "args": [1]}, "bad-input", "JSON list, not an object"),
        ({"id": 10**4000, "op": "clock"}, "bad-input", "request id"),
        ({"id": -1, "op": "clock"}, "bad-input", "request id"),
        ({"id": 1, "op": "clock", "extra": 1}, "bad-input", "unknown request field"),
        ({"id": 1, "op": ["clock"]}, "bad-input", "unknown operation a JSON list"),
        ({"id": 1, "op": "hello", "args": {"versions": [1] * 100}}, "bad-input", "at most 16"),
        # found by the fuzz: isfinite() of a 400-digit int overflowed into a `failure`
        ({"id": 1, "op": "run", "args": {"engine": "e", "iterations": 10**400}}, "bad-input", "outside"),
    ],
)
def test_every_argument_of_every_op_is_checked(service, request_, kind, message):
    session = Session(service)
    _call(session, "hello", versions=[1])
    response = session.handle(request_)
    assert response["ok"] is False and response["error"]["kind"] == kind, response
    assert message in response["error"]["message"]
    assert 0 <= response["id"] < 2**63  # a refused id is never echoed
    wire.encode(response)  # and the answer is always JSON
    assert _call(session, "clock")["ok"]


def test_a_token_with_a_lone_surrogate_is_bad_input_not_failure(tiny_engines):
    session = Session(AgentService(engines_dir=tiny_engines, token="s3cret"))
    response = _call(session, "hello", versions=[1], token="s3\udc80cret")
    assert response["error"]["kind"] == "bad-input" and "lone surrogates" in response["error"]["message"]
    # the same through the wire: a JSON escape of a lone surrogate
    out = io.BytesIO()
    line = b'{"id": 1, "op": "hello", "args": {"versions": [1], "token": "\\ud800"}}\n'
    serve_stream(AgentService(engines_dir=tiny_engines, token="s3cret"), io.BytesIO(line), out)
    assert json.loads(out.getvalue())["error"]["kind"] == "bad-input"


def test_decoder_turns_huge_numbers_deep_nesting_and_nan_into_protocol_errors():
    with pytest.raises(ProtocolError, match="thousands of digits"):
        wire.decode(b'{"id": ' + b"1" * 5000 + b', "op": "clock"}\n')
    with pytest.raises(ProtocolError, match="nested deeper than 32"):
        wire.decode(b'{"a": ' + b"[" * 30_000 + b"]" * 30_000 + b"}\n")
    with pytest.raises(ProtocolError, match="nested deeper than 32"):
        wire.decode(b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}\n")  # shallow enough for json, too deep for us
    with pytest.raises(ProtocolError, match="not an edgebench agent message"):
        wire.decode(b'{"duration_s": NaN}\n')
    with pytest.raises(ProtocolError, match="not an edgebench agent message"):
        wire.decode(b'{"op": "clock\xff"}\n')


def test_stdio_agent_answers_poison_lines_and_goes_on(tiny_engines):
    lines = [
        b'{"id": ' + b"9" * 5000 + b', "op": "hello", "args": {"versions": [1]}}',
        b'{"id": 1, "op": "hello", "args": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        wire.encode(wire.request(2, "hello", versions=[1])).strip(),
        wire.encode(wire.request(3, "run", engine="squeezenet1_1_1_32_32_fp32", iterations=10, repeat=-1)).strip(),
        wire.encode(wire.request(4, "run", engine="squeezenet1_1_1_32_32_fp32", iterations=10,
                                 run_id="r" * 10_000)).strip(),
        b'{"id": 5, "op": "idle", "args": {"duration_s": 1e999}}',
        wire.encode(wire.request(6, "clock")).strip(),
        wire.encode(wire.request(7, "bye")).strip(),
    ]
    proc = subprocess.run(
        [*edgebench_argv(), "agent", "--stdio", "--sensor", "none", "--engines", str(tiny_engines)],
        input=b"\n".join(lines) + b"\n", capture_output=True, timeout=120,
    )
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode()
    responses = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [r["error"]["kind"] if not r["ok"] else "ok" for r in responses]
    assert kinds == ["protocol", "protocol", "ok", "bad-input", "bad-input", "bad-input", "ok", "ok"]
    assert [r["id"] for r in responses] == [0, 0, 2, 3, 4, 5, 6, 7]


def test_the_token_variable_is_one_constant():
    from edgebench.host.measure import measure

    for command in (serve.agent, measure):  # the agent checks it, the host sends it: one option, one variable
        token_option = next(p for p in command.params if p.name == "token")
        assert token_option.envvar == wire.TOKEN_ENV == "EDGEBENCH_AGENT_TOKEN"


def test_the_stdio_command_the_host_builds_is_the_one_the_agent_takes(tmp_path):
    args = wire.stdio_agent_args("none", str(tmp_path))
    assert args[0] == "agent"
    params = serve.agent.make_context("agent", args[1:]).params
    assert params["stdio"] and params["sensor"] == "none" and params["engines_dir"] == tmp_path
    assert set(wire.hello_args("t")) == {a.name for a in wire.ARGUMENTS["hello"]}


def test_a_broken_engine_is_reported_as_engine_failed(tiny_engines, tmp_path):
    import shutil

    broken = tmp_path / "engines"
    shutil.copytree(tiny_engines, broken)
    for onnx_file in broken.rglob("*.onnx"):
        onnx_file.write_bytes(b"this is not a model")
    session = Session(AgentService(engines_dir=broken))
    _call(session, "hello", versions=[1])
    response = _call(session, "run", engine="squeezenet1_1_1_32_32_fp32", duration_s=0.05)
    assert response["ok"] is False and response["error"]["kind"] == "engine-failed"
    assert "could not be loaded" in response["error"]["message"]
    assert _call(session, "clock")["ok"]  # the agent itself is fine


def test_stream_refuses_an_oversized_request_and_garbage(service):
    hello = wire.encode(wire.request(1, "hello", versions=[1]))
    huge = b'{"id": 2, "op": "clock", "args": {"pad": "' + b"x" * (wire.MAX_LINE_BYTES + 10) + b'"}}\n'
    out = io.BytesIO()
    serve_stream(service, io.BytesIO(hello + b"not json\n" + huge + wire.encode(wire.request(3, "clock"))), out)
    responses = [json.loads(line) for line in out.getvalue().splitlines()]
    assert responses[0]["ok"]
    assert responses[1]["error"]["kind"] == "protocol" and "not an edgebench agent message" in responses[1]["error"]["message"]
    assert responses[2]["error"]["kind"] == "protocol" and "longer than 65536 bytes" in responses[2]["error"]["message"]
    assert len(responses) == 3  # the stream is dropped after an oversized line: the clock request is never served


def test_agent_specs_parse():
    assert parse_agent("local") == AgentSpec("local")
    assert parse_agent("tcp://jetson:9000") == AgentSpec("tcp", host="jetson", port=9000)
    assert parse_agent("tcp://jetson").port == wire.DEFAULT_TCP_PORT
    ssh = parse_agent("ssh://nvidia@orin:2222/home/nvidia/engines")
    assert ssh == AgentSpec("ssh", host="orin", port=2222, user="nvidia", engines_dir="/home/nvidia/engines")
    argv = ssh_command(ssh, "~/venv/bin/edgebench", ssh.engines_dir, "auto")
    assert argv[:4] == ["ssh", "-T", "-o", "BatchMode=yes"] and "-p" in argv and "nvidia@orin" in argv
    assert argv[-1] == "'~/venv/bin/edgebench' agent --stdio --engines /home/nvidia/engines --sensor auto"
    for bad in ("http://x", "tcp://", "jetson:8765", "tcp://jetson:port", "tcp://jetson:1/engines"):
        with pytest.raises(BadInput):
            parse_agent(bad)
    assert parse_listen(":8765") == ("127.0.0.1", 8765) and parse_listen("[::1]:1") == ("::1", 1)
    with pytest.raises(BadInput, match="HOST:PORT"):
        parse_listen("0.0.0.0")


def test_local_stdio_agent_end_to_end(tiny_engines):
    with connect(AgentSpec("local"), engines_dir=tiny_engines, sensor="none") as client:
        assert client.hello["protocol"] == wire.PROTOCOL_VERSION and client.hello["sensor"] == {"name": "none"}
        engines = client.call("engines")["engines"]
        result = client.call("run", engine=engines[0]["name"], iterations=12, warmup_s=0.0)
        assert run_record_from_dict(result["record"]).iterations == 12
        with pytest.raises(BadInput, match="not in this agent's manifest"):
            client.call("run", engine="resnet50_1_224_224_fp32", iterations=1)


def _open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_closed_client_leaves_no_descriptor_open(tiny_engines, tcp_agent):
    """The agent's pipes (stdin, stdout, stderr) and the socket's files are all closed by close(): a study or a
    notebook that opens many sessions does not run out of descriptors."""
    before = _open_descriptors()
    for spec, token in ((AgentSpec("local"), None), (AgentSpec("tcp", host="127.0.0.1", port=tcp_agent), "s3cret")):
        with connect(spec, engines_dir=tiny_engines, sensor="none", token=token) as client:
            assert client.call("engines")["engines"]
        assert _open_descriptors() <= before, spec


def test_a_killed_agent_is_reported_not_waited_for(tiny_engines):
    client = connect(AgentSpec("local"), engines_dir=tiny_engines, sensor="none")
    try:
        threading.Timer(1.0, lambda: os.kill(client._proc.pid, signal.SIGKILL)).start()
        with pytest.raises(AgentLost, match="went away during run.*killed by signal 9"):
            client.call("run", engine="squeezenet1_1_1_32_32_fp32", duration_s=30.0, timeout_s=60)
    finally:
        client.close()


def test_clock_offset_option_moves_every_agent_time(tiny_engines):
    with connect(AgentSpec("local"), engines_dir=tiny_engines, sensor="none",
                 extra_args=["--clock-offset-ns", "-7000000000"]) as client:
        now = time.time_ns()
        assert abs(client.call("clock")["t_ns"] - (now - 7_000_000_000)) < 500_000_000
        record = run_record_from_dict(client.call("idle", duration_s=0.05)["record"])
        assert abs(record.window_start_ns - (now - 7_000_000_000)) < 2_000_000_000


def test_tcp_agent_checks_the_token(tcp_agent):
    spec = AgentSpec("tcp", host="127.0.0.1", port=tcp_agent)
    with pytest.raises(BadInput, match="token rejected"):
        connect(spec, engines_dir=".", token="wrong")
    with pytest.raises(BadInput, match="token rejected"):
        connect(spec, engines_dir=".")
    with connect(spec, engines_dir=".", token="s3cret") as client:
        assert len(client.call("engines")["engines"]) == 2
        assert client.call("run", engine="squeezenet1_1_1_32_32_fp32", iterations=10)["record"]["iterations"] == 10
    # the agent serves the next session after one ends
    with connect(spec, engines_dir=".", token="s3cret") as client:
        assert client.call("clock")["t_ns"] > 0


@pytest.mark.slow
def test_tcp_agent_serves_one_session_at_a_time(tcp_agent):
    spec = AgentSpec("tcp", host="127.0.0.1", port=tcp_agent)
    with connect(spec, engines_dir=".", token="s3cret") as first:
        with pytest.raises(BadInput, match="busy with another session") as refused:
            connect(spec, engines_dir=".", token="s3cret")
        assert "127.0.0.1" not in str(refused.value)  # the current peer's address is nobody else's business
        # a client without the token hears nothing about the session at all
        with socket.create_connection(("127.0.0.1", tcp_agent), timeout=10) as sock:
            sock.sendall(wire.encode(wire.request(1, "hello", versions=[1], token="guess")))
            reply = json.loads(sock.makefile("rb").readline())
        assert "token rejected" in reply["error"]["message"] and "127.0.0.1" not in reply["error"]["message"]
        assert first.call("clock")["t_ns"] > 0  # the first session is undisturbed
    # right after bye the next client is served (it waits out the moment the old session takes to end)
    with connect(spec, engines_dir=".", token="s3cret") as second:
        assert second.call("clock")["t_ns"] > 0


def test_tcp_agent_drops_an_oversized_request(tcp_agent):
    with socket.create_connection(("127.0.0.1", tcp_agent), timeout=10) as sock:
        sock.sendall(b'{"id": 1, "op": "hello", "args": {"pad": "' + b"x" * 100_000 + b'"}}\n')
        reply = sock.makefile("rb").readline()
        assert json.loads(reply)["error"]["kind"] == "protocol"
        try:  # and closes the connection (a reset, since the rest of the line was never read)
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass


def _trickle(sock, stop, every_s):
    """Send a byte at a time, never a newline, until stopped or closed."""
    try:
        sock.sendall(b'{"id": 1, "op": "hello", "args": {"versions": [1], "token": "')
        while not stop.wait(every_s):
            sock.sendall(b"x")
    except OSError:
        pass


def test_silent_and_trickling_clients_do_not_keep_a_real_client_out(tcp_agent):
    spec = AgentSpec("tcp", host="127.0.0.1", port=tcp_agent)
    stop = threading.Event()
    silent = [socket.create_connection(("127.0.0.1", tcp_agent), timeout=10) for _ in range(4)]
    trickler = socket.create_connection(("127.0.0.1", tcp_agent), timeout=10)
    threading.Thread(target=_trickle, args=(trickler, stop, 0.2), daemon=True).start()
    try:
        # the agent accepts connections in the order they came, so the silent ones hold their slots first
        with connect(spec, engines_dir=".", token="s3cret") as client:
            # let in while they still wait, not after they timed out: none has been answered or closed yet
            assert select.select(silent, [], [], 0)[0] == []
            assert client.call("clock")["t_ns"] > 0
    finally:
        stop.set()
        for sock in [*silent, trickler]:
            sock.close()


@contextlib.contextmanager
def _agent_in_thread(tiny_engines, **kwargs):
    """serve_tcp in this process (token s3cret) with the given limits; yields the port."""
    ports: queue.Queue[int] = queue.Queue()
    stop = threading.Event()
    service = AgentService(engines_dir=tiny_engines, token="s3cret")
    thread = threading.Thread(
        target=serve_tcp, args=(service, "127.0.0.1", 0),
        kwargs={"announce": lambda line: ports.put(int(line.rsplit(":", 1)[1])), "stop": stop, **kwargs},
        daemon=True,
    )
    thread.start()
    try:
        yield ports.get(timeout=60)  # the announced port (the timeout only guards against a hang)
    finally:
        stop.set()
        thread.join(5)
        assert not thread.is_alive()


@pytest.fixture()
def quick_agent(tiny_engines):
    """serve_tcp in this process with a 0.6 s hello deadline and room for 2 pending hellos; yields the port."""
    with _agent_in_thread(tiny_engines, hello_timeout_s=0.6, max_pending=2) as port:
        yield port


def _reply_and_close(sock):
    """The one error line the agent sends before closing (None when a reset overtook it: closing with unread
    bytes resets the connection), and how long after now the close came."""
    t0 = time.monotonic()
    rfile = sock.makefile("rb")
    try:
        reply = json.loads(rfile.readline())
        assert rfile.read() == b""
    except ConnectionResetError:
        reply = None
    return reply, time.monotonic() - t0


def test_the_hello_deadline_is_total_so_a_trickle_cannot_stretch_it(quick_agent):
    stop = threading.Event()
    with socket.create_connection(("127.0.0.1", quick_agent), timeout=10) as trickler, \
            socket.create_connection(("127.0.0.1", quick_agent), timeout=10) as silent:
        threading.Thread(target=_trickle, args=(trickler, stop, 0.05), daemon=True).start()
        try:
            reply, _ = _reply_and_close(trickler)
        finally:
            stop.set()
        # closed while it still trickles (a per-read timeout would never fire): with the reason, unless the
        # bytes it kept sending turned the close into a reset
        # (a trickle that could stretch the deadline would keep it open for ever: the socket's 10 s timeout
        # would then raise in _reply_and_close)
        assert reply is None or "no hello within 0.6 s" in reply["error"]["message"]
        reply, _ = _reply_and_close(silent)
        assert "no hello within 0.6 s" in reply["error"]["message"]


def test_a_newcomer_pushes_out_the_oldest_silent_connection_not_itself(quick_agent):
    talking = socket.create_connection(("127.0.0.1", quick_agent), timeout=10)
    talking.sendall(b'{"id": 1, "op": "hel')  # before the next connects: the agent has heard it first
    silent = socket.create_connection(("127.0.0.1", quick_agent), timeout=10)
    try:
        with socket.create_connection(("127.0.0.1", quick_agent), timeout=10):
            # room for 2: the third pushes out the one that has said nothing, although the talking one is older
            # (at the newcomer's arrival: the words say so, where the 0.6 s deadline would say "no hello within")
            reply, _ = _reply_and_close(silent)
        assert "dropped before hello" in reply["error"]["message"] and "send hello at once" in reply["error"]["message"]
        # and a client with the token gets in, the oldest waiting one making room for it
        with connect(AgentSpec("tcp", host="127.0.0.1", port=quick_agent), engines_dir=".", token="s3cret") as c:
            assert c.call("clock")["t_ns"] > 0
    finally:
        talking.close()
        silent.close()


def _from(address, port):
    """A connection to the agent on 127.0.0.1 from another loopback address (Linux routes all of 127/8)."""
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(address, 0))


def _still_waiting(sock):
    """True when the agent has neither written to nor closed this connection."""
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


def test_a_flooding_address_only_pushes_out_its_own_connections(tiny_engines):
    # 3 waiting in all, 2 per address; a deadline far away, so only the caps act
    with _agent_in_thread(tiny_engines, hello_timeout_s=60, max_pending=3, max_pending_per_peer=2) as port:
        other = _from("127.0.0.3", port)
        flood = [_from("127.0.0.2", port) for _ in range(3)]
        try:
            reply, _ = _reply_and_close(flood[0])  # the flooder's third took the place of its own first
            assert "dropped before hello" in reply["error"]["message"]
            assert "2 at most per address" in reply["error"]["message"]
            # all 3 places taken (other, flood 1, flood 2): a client from a third address gets in, and the place
            # is taken from the address with the most waiting, not from the other, older, quiet one
            with connect(AgentSpec("tcp", host="127.0.0.1", port=port), engines_dir=".", token="s3cret") as c:
                assert c.call("clock")["t_ns"] > 0
            reply, _ = _reply_and_close(flood[1])
            assert "dropped before hello" in reply["error"]["message"]
            assert _still_waiting(other) and _still_waiting(flood[2])
        finally:
            for sock in [other, *flood]:
                sock.close()


@pytest.mark.parametrize(
    "first, kind, words",
    [
        (b"GET / HTTP/1.1", "protocol", "not an edgebench agent message"),
        (b'{"id": ' + b"7" * 5000 + b', "op": "hello"}', "protocol", "thousands of digits"),
        (b'{"id": 1, "op": "hello", "args": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "protocol", "nested deeper"),
        (wire.encode(wire.request(1, "clock")).strip(), "bad-input", "send hello first"),
        (wire.encode(wire.request(1, "hello", versions=[1])).strip(), "bad-input", "token rejected"),
        (b'{"id": 1, "op": "hello", "args": {"versions": [1], "token": "\\udc80"}}', "bad-input", "surrogates"),
        (wire.encode(wire.request(1, "hello", versions=[9], token="s3cret")).strip(), "bad-input", "upgrade"),
    ],
)
def test_a_bad_first_line_gets_one_answer_and_the_slot_stays_free(quick_agent, first, kind, words):
    with socket.create_connection(("127.0.0.1", quick_agent), timeout=10) as sock:
        sock.sendall(first + b"\n")
        reply, _ = _reply_and_close(sock)
    assert reply["error"]["kind"] == kind and words in reply["error"]["message"], reply
    with connect(AgentSpec("tcp", host="127.0.0.1", port=quick_agent), engines_dir=".", token="s3cret") as client:
        assert client.call("clock")["t_ns"] > 0


def test_once_ends_after_the_first_real_session_not_after_a_refused_connection(tiny_engines):
    import re

    proc = subprocess.Popen(
        [*edgebench_argv(), "agent", "--listen", "127.0.0.1:0", "--once", "--token", "s3cret", "--sensor", "none",
         "--engines", str(tiny_engines)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        port = int(re.search(r":(\d+)$", proc.stdout.readline().strip()).group(1))
        spec = AgentSpec("tcp", host="127.0.0.1", port=port)
        with pytest.raises(BadInput, match="token rejected"):
            connect(spec, engines_dir=".", token="guess")
        time.sleep(0.7)  # the accept loop looks at the end of a session twice a second
        assert proc.poll() is None
        with connect(spec, engines_dir=".", token="s3cret") as client:
            assert client.call("clock")["t_ns"] > 0
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_listening_off_loopback_needs_a_token(tiny_engines, monkeypatch):
    monkeypatch.delenv("EDGEBENCH_AGENT_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["agent", "--listen", "0.0.0.0:0", "--engines", str(tiny_engines)])
    assert result.exit_code == 2 and "pass --token SECRET" in result.output
    result = CliRunner().invoke(cli, ["agent", "--engines", str(tiny_engines)])
    assert result.exit_code == 2 and "--stdio or --listen" in result.output
    result = CliRunner().invoke(cli, ["agent", "--stdio", "--engines", str(tiny_engines / "nope")])
    assert result.exit_code == 2 and "build-engines" in result.output


def _fake_ssh(bin_dir, log, *, fail=False):
    """An `ssh` on PATH that records its arguments and runs the remote command here, as sshd would there."""
    import sys

    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "ssh"
    body = (
        "import sys\nsys.stderr.write('me@device: Permission denied (publickey).\\n')\nsys.exit(255)\n"
        if fail
        else "import os, sys\nos.execvp('sh', ['sh', '-c', sys.argv[-1]])\n"
    )
    write_program(script,
        f"#!{sys.executable}\nimport json\nopen({str(log)!r}, 'a').write(json.dumps(__import__('sys').argv[1:]) + '\\n')\n"
        + body
    )


def test_ssh_agent_through_the_real_ssh_command_line(tiny_engines, tmp_path, monkeypatch):
    log = tmp_path / "ssh-args.jsonl"
    _fake_ssh(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    spec = parse_agent(f"ssh://me@device:2222{tiny_engines}")
    remote = " ".join(edgebench_argv())
    with connect(spec, engines_dir=tmp_path / "ignored", sensor="none", remote_command=remote) as client:
        assert client.hello["engines_dir"] == str(tiny_engines)  # the path from the URL, on the device
        assert client.call("run", engine="squeezenet1_1_1_32_32_fp32", iterations=10)["record"]["iterations"] == 10
    argv = json.loads(log.read_text().splitlines()[0])
    assert argv[:3] == ["-T", "-o", "BatchMode=yes"] and ["-p", "2222"] == argv[argv.index("-p"):argv.index("-p") + 2]
    assert argv[-3:-1] == ["--", "me@device"] and argv[-1].endswith(f"agent --stdio --engines {tiny_engines} --sensor none")


@pytest.mark.parametrize(
    "url",
    [
        "ssh://-oProxyCommand=touch%20pwned@device/engines",
        "ssh://me@-oProxyCommand=touch/engines",
        "ssh://-F/tmp/evil@device",
        "ssh://me%20-oX@device",
        "tcp://-x:8765",
    ],
)
def test_ssh_names_that_would_be_options_are_refused(url, tmp_path, monkeypatch):
    log = tmp_path / "ssh-args.jsonl"
    _fake_ssh(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BadInput, match="would take as an option"):
        connect(parse_agent(url), engines_dir=tmp_path, sensor="none")
    assert not log.exists()  # ssh never ran
    with pytest.raises(BadInput, match="starts with '-'"):  # and a hand-made spec cannot get there either
        ssh_command(AgentSpec("ssh", host="-oProxyCommand=x"), "edgebench", "", "none")


def test_ssh_that_cannot_log_in_says_how_to_fix_it(tmp_path, monkeypatch):
    _fake_ssh(tmp_path / "bin", tmp_path / "log", fail=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BadInput, match=r"could not start the agent over ssh .*Permission denied \(publickey\).*keys"):
        connect(parse_agent("ssh://me@device/engines"), engines_dir=tmp_path, sensor="none")


def test_engines_built_while_the_agent_runs_become_runnable(tiny_engines, tmp_path):
    import shutil

    from edgebench.engines.build import build_sweep
    from edgebench.engines.sweep import Sweep

    engines = tmp_path / "engines"
    shutil.copytree(tiny_engines, engines)
    session = Session(AgentService(engines_dir=engines))
    _call(session, "hello", versions=[1])
    assert len(_call(session, "engines")["result"]["engines"]) == 2
    time.sleep(0.01)  # a new mtime even on coarse clocks
    assert build_sweep(Sweep(backbones=("squeezenet1_1",), batches=(3,), resolutions=((32, 32),)), engines).ok
    assert len(_call(session, "engines")["result"]["engines"]) == 3
    assert _call(session, "run", engine="squeezenet1_1_3_32_32_fp32", iterations=10)["ok"]
