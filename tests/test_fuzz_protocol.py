"""Fuzzing the agent's request decoder and parser through the real server loop (serve_stream).

Seeded random bytes, mutated valid requests, deep nesting, huge numbers, invalid UTF-8, lone surrogates and every
argument of every operation given every wrong kind of value. Whatever the line, the server must answer it with
exactly one well-formed response (`protocol` or `bad-input`, or `ok` for a line that happens to be a valid
request), let no exception escape, and still serve a valid request afterwards.
"""

import io
import json
import random
import subprocess

import pytest

from edgebench import protocol as wire
from edgebench.agent.serve import AgentService, serve_stream
from edgebench.cli import edgebench_argv

SEEDS = (1, 2, 3)

TEMPLATES = [
    wire.encode(wire.request(2, "clock")),
    wire.encode(wire.request(3, "engines")),
    wire.encode(wire.request(4, "run", engine="nope_1_32_32_fp32", duration_s=0.5, warmup_s=0.1, threads=2,
                             run_id="20261125T151200-3fa2c1", repeat=3)),
    wire.encode(wire.request(5, "run", engine="nope_1_32_32_fp32", iterations=10, inter_op_threads=1)),
    wire.encode(wire.request(6, "idle", duration_s=-5.0, run_id="x", repeat=1)),
    wire.encode(wire.request(7, "hello", versions=[1], token="t0ken")),
]

BAD_VALUES = [True, False, "x", "", 1.5, -1, 0, 10**30, -(10**30), 1e308, [], {}, [1], {"a": 1}, "\ud800",
              "a\x00b", "é" * 300, "r" * 5000]


def _random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))


def _mutate(rng: random.Random, line: bytes) -> bytes:
    data = bytearray(line.rstrip(b"\n"))
    for _ in range(rng.randrange(1, 6)):
        what = rng.randrange(6)
        at = rng.randrange(len(data) + 1)
        if what == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif what == 1:
            data[at:at] = bytes([rng.randrange(256)])
        elif what == 2 and data:
            del data[min(at, len(data) - 1)]
        elif what == 3:
            data[at:at] = rng.choice([b"[", b"{", b"]", b"}", b'"', b"\\", b",", b":", b"-", b"e9999", b"NaN",
                                      b"\\ud800", b"\xff", b"\xc0\xaf", b"\xe2\x82", b"9" * 5000])
        elif what == 4 and data:
            start = rng.randrange(len(data))
            data[at:at] = data[start:start + rng.randrange(1, 20)]
        else:
            del data[at:]
    return bytes(data)


def _structural() -> list[bytes]:
    """Hand-made lines that once escaped json.loads or the checks: nesting, huge numbers, encodings."""
    lines = []
    for depth in (10, 31, 32, 33, 900, 1000, 5000, 30_000):
        lines.append(b'{"id": 1, "op": "clock", "args": {"x": ' + b"[" * depth + b"]" * depth + b"}}")
        lines.append(b"[" * depth + b"]" * depth)
        lines.append(b'{"id": ' + b'{"a": ' * min(depth, 9000) + b"1" + b"}" * min(depth, 9000) + b"}")
        lines.append(b"[" * depth)  # never closed
    for digits in (19, 20, 100, 4300, 4301, 5000, 20_000):
        lines.append(b'{"id": ' + b"9" * digits + b', "op": "clock"}')
        lines.append(b'{"id": 1, "op": "run", "args": {"engine": "e", "iterations": ' + b"9" * digits + b"}}")
        lines.append(b'{"id": 1, "op": "idle", "args": {"duration_s": 0.' + b"0" * digits + b"1}}")
    for number in (b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity", b"1e-999", b"-0", b"0x10", b"01"):
        lines.append(b'{"id": 1, "op": "idle", "args": {"duration_s": ' + number + b"}}")
        lines.append(b'{"id": ' + number + b', "op": "clock"}')
    for raw in (b"\xff", b"\xc0\xaf", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00"):
        lines.append(b'{"id": 1, "op": "clo' + raw + b'ck"}')
        lines.append(raw)
    for escape in (b"\\ud800", b"\\udfff", b"\\udc80x", b"\\u0000", b"\\ud83d"):
        lines.append(b'{"id": 1, "op": "' + escape + b'"}')
        lines.append(b'{"id": 1, "op": "hello", "args": {"versions": [1], "token": "' + escape + b'"}}')
        lines.append(b'{"id": 1, "op": "run", "args": {"engine": "' + escape + b'", "iterations": 1}}')
        lines.append(b'{"id": 1, "op": "idle", "args": {"duration_s": 1, "run_id": "' + escape + b'"}}')
        lines.append(b'{"id": 1, "op": "clock", "args": {"' + escape + b'": 1}}')
    for op, specs in wire.ARGUMENTS.items():
        for spec in specs:
            for value in BAD_VALUES:
                args = {"engine": "nope"} if op == "run" and spec.name != "engine" else {}
                args[spec.name] = value
                lines.append(wire.encode(wire.request(9, op, **args)).rstrip(b"\n"))
    for top in ([], "x", 1, None, True, {"op": "clock", "id": True}, {"op": "clock", "id": 1.0}, {"id": 1}):
        lines.append(json.dumps(top).encode())
    assert all(len(line) < wire.MAX_LINE_BYTES for line in lines)
    return [line for line in lines if not _waits_or_stops(line)]


def _waits_or_stops(line: bytes) -> bool:
    """A line that is a valid idle or bye: it would wait out a window or end the session, so the fuzz leaves
    it out (everything else is answered at once; no fuzzed run names an engine of the manifest)."""
    try:
        return wire.parse_request(wire.decode(line)).op in ("idle", "bye")
    except Exception:
        return False


def _corpus(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    lines = [_random_bytes(rng) for _ in range(300)]
    lines += [_mutate(rng, rng.choice(TEMPLATES)) for _ in range(1500)]
    kept = []
    for line in lines:
        line = line.replace(b"\n", b" ")
        if line.strip() and not _waits_or_stops(line):
            kept.append(line)
    assert all(len(line) < wire.MAX_LINE_BYTES for line in kept)  # a longer one ends the stream (tested apart)
    return kept


def _expected_id(line: bytes) -> int | None:
    """The id a valid-looking line must be answered with, when its id is a plain in-range integer."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    return wire.request_id(data)


def _serve(service: AgentService, lines: list[bytes]) -> list[dict]:
    hello = wire.encode(wire.request(1, "hello", versions=[1]))
    after = wire.encode(wire.request(424242, "clock"))
    out = io.BytesIO()
    serve_stream(service, io.BytesIO(hello + b"".join(line + b"\n" for line in lines) + after), out)
    raw = out.getvalue()
    assert raw.endswith(b"\n")
    return [json.loads(response) for response in raw.splitlines()]


def _check_responses(lines: list[bytes], responses: list[dict]) -> dict[str, int]:
    assert responses[0]["ok"], responses[0]
    assert len(responses) == len(lines) + 2, "every line gets exactly one response"
    kinds: dict[str, int] = {}
    for line, response in zip(lines, responses[1:-1], strict=True):
        assert set(response) in ({"id", "ok", "result"}, {"id", "ok", "error"}), (line[:200], response)
        assert isinstance(response["id"], int) and 0 <= response["id"] <= wire.MAX_REQUEST_ID
        if response["ok"]:
            kind = "ok"
            parsed = wire.parse_request(wire.decode(line))  # only a valid request may be answered ok
            assert response["id"] == parsed.id
        else:
            kind = response["error"]["kind"]
            assert set(response["error"]) == {"kind", "message"} and isinstance(response["error"]["message"], str)
            assert 0 < len(response["error"]["message"]) < 2000, (line[:200], response)
            assert kind in ("protocol", "bad-input"), (line[:200], response)
            if kind == "bad-input":
                assert response["id"] == _expected_id(line), (line[:200], response)
        kinds[kind] = kinds.get(kind, 0) + 1
    last = responses[-1]
    assert last["ok"] and last["id"] == 424242 and last["result"]["t_ns"] > 0, "the server stays usable"
    return kinds


@pytest.fixture()
def service(tiny_engines):
    return AgentService(engines_dir=tiny_engines)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_and_mutated_lines_get_one_well_formed_answer_each(service, seed, capsys):
    lines = _corpus(seed)
    assert len(lines) > 1500
    kinds = _check_responses(lines, _serve(service, lines))
    # the corpus reaches every layer: the decoder (protocol), the checks (bad-input), and a few valid requests
    assert kinds.get("protocol", 0) > 300 and kinds.get("bad-input", 0) > 50, kinds
    assert "Traceback" not in capsys.readouterr().err


def test_nesting_huge_numbers_encodings_and_every_wrong_argument(service, capsys):
    lines = _structural()
    kinds = _check_responses(lines, _serve(service, lines))
    # valid by accident, and answered ok: an id of -0, hello with versions [1]
    assert set(kinds) <= {"protocol", "bad-input", "ok"} and kinds.get("ok", 0) <= 2, kinds
    assert "Traceback" not in capsys.readouterr().err


def test_a_stdio_agent_process_survives_the_fuzz(tiny_engines):
    """The same lines through a real `edgebench agent --stdio` process: it answers them all and exits 0."""
    rng = random.Random(7)
    lines = rng.sample(_structural(), 150) + _corpus(7)[:300]
    hello = wire.encode(wire.request(1, "hello", versions=[1]))
    after = wire.encode(wire.request(424242, "clock")) + wire.encode(wire.request(424243, "bye"))
    proc = subprocess.run(
        [*edgebench_argv(), "agent", "--stdio", "--sensor", "none", "--engines", str(tiny_engines)],
        input=hello + b"".join(line + b"\n" for line in lines) + after, capture_output=True, timeout=120,
    )
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")[-2000:]
    responses = [json.loads(line) for line in proc.stdout.splitlines()]
    _check_responses(lines, responses[:-1])
    assert responses[-1]["result"] == {"bye": True}
