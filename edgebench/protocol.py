"""The agent protocol's wire format, shared by the server (`edgebench.agent.serve`) and the client
(`edgebench.host.transport`): request/response JSON lines, one object per line, UTF-8, `\\n`-terminated.

It lives here, beside the records, because both sides need it and neither may import the other (the host runs
where TensorRT is absent; the agent never imports meter code).

    request:  {"id": 7, "op": "run", "args": {"engine": "resnet18_1_224_224_fp32", "duration_s": 3.0}}
    response: {"id": 7, "ok": true, "result": {...}}
              {"id": 7, "ok": false, "error": {"kind": "bad-input", "message": "unknown engine ..."}}

Operations (version 1): `hello` (must come first: protocol versions, token, device, sensor, manifest size),
`clock` (agent realtime for the NTP-style exchange), `engines` (the manifest rows), `run` (one measured window of
one manifest engine: a RunRecord), `idle` (an idle window: a RunRecord), `bye` (the agent closes the session).
Error kinds: `bad-input` (the request was wrong: fix the call), `engine-failed` (the engine could not be loaded
or crashed: record it and go on), `protocol` (the bytes were not this protocol), `failure` (anything else).

Every argument of every operation is checked here, in `parse_request`, against `ARGUMENTS` (types, ranges,
string lengths, no unknown names), so the server's operations only ever see well-formed values; anything the
decoder or the checks refuse is answered `protocol` or `bad-input`, never a traceback.

Version history (the server answers hello with the highest version both sides speak):
- 1: first version.
- 2: `run` takes time limits, `inference_timeout_s` and `window_timeout_s`; a window that passes one is
  answered `engine-failed` with the reason. (A version-2 agent accepts them whatever was negotiated; a host
  sends them only to an agent that answered 2, since a version-1 agent refuses unknown arguments.)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadInput, EdgebenchError, ProtocolError

PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
MAX_LINE_BYTES = 64 * 1024  # a request never needs more; a longer line is refused before it is parsed
MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # a RunRecord with every latency and power sample of a long window
MAX_DEPTH = 32  # nesting of objects and lists in one message; a request needs 3, a RunRecord fewer than 10
OPERATIONS = ("hello", "clock", "engines", "run", "idle", "bye")
DEFAULT_TCP_PORT = 8765
TOKEN_ENV = "EDGEBENCH_AGENT_TOKEN"  # the agent's --token and the host's --token both read it
MAX_REQUEST_ID = 2**63 - 1

# bounds of the arguments (docs/agent-protocol.md lists them)
MAX_WINDOW_S = 3600.0  # one run or idle window; a longer request is a mistake, not a measurement
MIN_WINDOW_S = 1e-3
MAX_WARMUP_S = 600.0
MAX_ITERATIONS = 10_000_000
MAX_THREADS = 1024
MAX_REPEAT = 1_000_000
MAX_ENGINE_CHARS = 256
MAX_RUN_ID_CHARS = 128
MAX_TOKEN_CHARS = 1024
MIN_TIME_LIMIT_S = 1e-3  # run's inference_timeout_s and window_timeout_s
MAX_TIME_LIMIT_S = 86_400.0  # a day: longer than any window (MAX_WINDOW_S + MAX_WARMUP_S) may need
MAX_VERSIONS = 16

ERROR_KINDS = ("bad-input", "engine-failed", "protocol", "failure")


class EngineFailed(EdgebenchError):
    """The agent could not load or run an engine; the sweep records it as failed and goes on."""


class AgentError(EdgebenchError):
    """The agent answered a request with an error of kind `failure`."""


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: Mapping[str, Any]


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as one JSON line (NaN and infinities refused: they are not JSON)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(line: bytes, limit: int = MAX_LINE_BYTES) -> dict[str, Any]:
    """One JSON line (at most `limit` bytes) into an object, or ProtocolError saying what the bytes looked like.

    Nothing else escapes: not invalid UTF-8, not NaN or Infinity (not JSON), not a number too long for Python's
    int conversion limit, not nesting deeper than MAX_DEPTH (which would otherwise be a RecursionError)."""
    if len(line) > limit + 1:
        raise ProtocolError(f"message of {len(line)} bytes is over the {limit}-byte limit")
    try:
        data = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError(f"agent message nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors, as is the int limit
        if not isinstance(exc, (UnicodeDecodeError, json.JSONDecodeError)) and "digits" in str(exc):
            raise ProtocolError("agent message holds a number with thousands of digits") from None
        shown = line[:60].decode("utf-8", "replace").strip()
        raise ProtocolError(
            f"not an edgebench agent message: {shown!r} (is the other end `edgebench agent --stdio`, and does "
            "nothing else print on its stdout?)"
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(f"agent message is a JSON {type(data).__name__}, not an object")
    if _depth_over(data, MAX_DEPTH):
        raise ProtocolError(f"agent message nested deeper than {MAX_DEPTH} levels")
    return data


def _depth_over(data: Any, limit: int) -> bool:
    """Whether objects and lists nest deeper than `limit` (iterative: no recursion to run out of)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False


def request(id_: int, op: str, **args: Any) -> dict[str, Any]:
    return {"id": id_, "op": op, "args": args}


def hello_args(token: str | None = None) -> dict[str, Any]:
    """The arguments of a client's hello: every version this side speaks, and the token when there is one."""
    args: dict[str, Any] = {"versions": list(SUPPORTED_VERSIONS)}
    if token:
        args["token"] = token
    return args


def stdio_agent_args(sensor: str, engines_dir: str = "") -> list[str]:
    """The arguments after `edgebench` that start a stdio agent (what `--agent local` and ssh:// run); the
    agent's own command line (edgebench.agent.serve) accepts exactly these, as a test checks."""
    return ["agent", "--stdio", *(["--engines", engines_dir] if engines_dir else []), "--sensor", sensor]


@dataclass(frozen=True)
class Arg:
    """One argument of one operation: its JSON kind ("number", "integer", "text" or "versions") and bounds."""

    name: str
    kind: str
    lo: float = 0
    hi: float = 0
    max_chars: int = 0
    required: bool = False


_RUN_ID = Arg("run_id", "text", max_chars=MAX_RUN_ID_CHARS)
_REPEAT = Arg("repeat", "integer", 0, MAX_REPEAT)
ARGUMENTS: dict[str, tuple[Arg, ...]] = {
    "hello": (Arg("versions", "versions", required=True), Arg("token", "text", max_chars=MAX_TOKEN_CHARS)),
    "clock": (),
    "engines": (),
    "run": (
        Arg("engine", "text", max_chars=MAX_ENGINE_CHARS, required=True),
        Arg("duration_s", "number", MIN_WINDOW_S, MAX_WINDOW_S),
        Arg("iterations", "integer", 1, MAX_ITERATIONS),
        Arg("warmup_s", "number", 0, MAX_WARMUP_S),
        Arg("threads", "integer", 1, MAX_THREADS),
        Arg("inter_op_threads", "integer", 1, MAX_THREADS),
        Arg("inference_timeout_s", "number", MIN_TIME_LIMIT_S, MAX_TIME_LIMIT_S),
        Arg("window_timeout_s", "number", MIN_TIME_LIMIT_S, MAX_TIME_LIMIT_S),
        _RUN_ID,
        _REPEAT,
    ),
    "idle": (Arg("duration_s", "number", MIN_WINDOW_S, MAX_WINDOW_S, required=True), _RUN_ID, _REPEAT),
    "bye": (),
}
_VERSIONS_WORDS = "hello must carry `versions`, a list of the integer protocol versions the client speaks"


def request_id(data: Mapping[str, Any]) -> int:
    """The id to answer a request with: its own when it is a valid id, else 0."""
    id_ = data.get("id", 0)
    valid = isinstance(id_, int) and not isinstance(id_, bool) and 0 <= id_ <= MAX_REQUEST_ID
    return id_ if valid else 0


def _shown(value: Any) -> str:
    """A bounded, printable rendering of a refused value for an error message."""
    text = ascii(value) if isinstance(value, (str, int, float, bool)) or value is None else f"a JSON {_json_kind(value)}"
    return text if len(text) <= 40 else text[:37] + "..."


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)


def _check_arg(op: str, arg: Arg, value: Any) -> Any:
    where = f"{op}: {arg.name}"
    if arg.kind == "text":
        if not isinstance(value, str) or len(value) > arg.max_chars:
            raise BadInput(f"{where} must be a string of at most {arg.max_chars} characters, got {_shown(value)}")
        if any(ch < " " or ch == "\x7f" or "\ud800" <= ch <= "\udfff" for ch in value):
            raise BadInput(f"{where} holds control characters or lone surrogates: send plain text")
        return value
    if arg.kind == "versions":
        ok_list = isinstance(value, list) and 0 < len(value) <= MAX_VERSIONS and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31 for v in value
        )
        if not ok_list:
            raise BadInput(f"{_VERSIONS_WORDS} (at most {MAX_VERSIONS} of them)")
        return list(value)
    integer = arg.kind == "integer"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise BadInput(f"{where} must be {'an integer' if integer else 'a number'}, got {_shown(value)}")
    # an int is never NaN, and isfinite() of a 400-digit one would overflow
    if not ((isinstance(value, int) or math.isfinite(value)) and arg.lo <= value <= arg.hi):
        raise BadInput(f"{where} = {_shown(value)} is outside [{arg.lo:g}, {arg.hi:g}]")
    return value


def parse_request(data: Mapping[str, Any]) -> Request:
    """Check a decoded request and every one of its arguments (ARGUMENTS); BadInput names what is wrong.

    The Request's args hold only known, checked values, so the operations can use them as they are."""
    op = data.get("op")
    if not isinstance(op, str) or op not in OPERATIONS:
        raise BadInput(f"unknown operation {_shown(op)}: this agent speaks {', '.join(OPERATIONS)}")
    extra = sorted(str(k) for k in data if k not in ("id", "op", "args"))
    if extra:
        raise BadInput(f"unknown request field {_shown(extra[0])}: a request has id, op and args")
    id_ = data.get("id", 0)
    if isinstance(id_, bool) or not isinstance(id_, int) or not 0 <= id_ <= MAX_REQUEST_ID:
        raise BadInput(f"request id {_shown(id_)} is not an integer in [0, 2^63 - 1]")
    args = data.get("args", {})
    if not isinstance(args, dict):
        raise BadInput(f"arguments of {op} are a JSON {_json_kind(args)}, not an object")
    specs = {a.name: a for a in ARGUMENTS[op]}
    unknown = sorted(k for k in args if k not in specs)
    if unknown:
        takes = ", ".join(specs) or "no arguments"
        raise BadInput(f"{op} has no argument {_shown(unknown[0])}: it takes {takes}")
    checked: dict[str, Any] = {}
    for spec in specs.values():
        if args.get(spec.name) is None:
            if spec.required:
                raise BadInput(_VERSIONS_WORDS if spec.kind == "versions" else f"{op} needs {spec.name}")
            continue
        checked[spec.name] = _check_arg(op, spec, args[spec.name])
    if op == "run" and "duration_s" in checked and "iterations" in checked:
        raise BadInput("run takes duration_s or iterations, not both")
    return Request(id=id_, op=op, args=checked)


def ok(id_: int, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": id_, "ok": True, "result": dict(result)}


def error(id_: int, kind: str, message: str) -> dict[str, Any]:
    assert kind in ERROR_KINDS, kind
    return {"id": id_, "ok": False, "error": {"kind": kind, "message": message}}


def error_kind(exc: BaseException) -> str:
    """The wire kind of an exception raised while serving a request."""
    if isinstance(exc, EngineFailed):
        return "engine-failed"
    if isinstance(exc, BadInput):
        return "bad-input"
    if isinstance(exc, ProtocolError):
        return "protocol"
    return "failure"


def raise_for(response: Mapping[str, Any], op: str) -> dict[str, Any]:
    """The result of a response, or the edgebench error its `error` describes."""
    if response.get("ok"):
        result = response.get("result", {})
        if not isinstance(result, dict):
            raise ProtocolError(f"agent answered {op} with a non-object result")
        return result
    err = response.get("error") or {}
    kind, message = err.get("kind", "failure"), str(err.get("message", "no message"))
    if kind == "bad-input":
        raise BadInput(f"agent refused {op}: {message}")
    if kind == "engine-failed":
        raise EngineFailed(message)
    if kind == "protocol":
        raise ProtocolError(f"agent: {message}")
    raise AgentError(f"agent failed {op}: {message}")


def negotiate(offered: Any) -> int:
    """The highest version in `offered` that this side speaks, or BadInput saying who must upgrade."""
    versions = [v for v in offered if isinstance(v, int) and not isinstance(v, bool)] if isinstance(offered, list) else []
    if not versions:
        raise BadInput(_VERSIONS_WORDS)
    common = set(SUPPORTED_VERSIONS) & set(versions)
    if not common:
        newer = max(versions) > max(SUPPORTED_VERSIONS)
        who = "the agent (pip install -U edgebench on the device)" if newer else "the host's edgebench"
        raise BadInput(
            f"no common protocol version: client speaks {offered}, agent speaks {list(SUPPORTED_VERSIONS)}: "
            f"upgrade {who}"
        )
    return max(common)
