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

Version history (the server answers hello with the highest version both sides speak):
- 1: first version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadInput, EdgebenchError, ProtocolError

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_LINE_BYTES = 64 * 1024  # a request never needs more; a longer line is refused before it is parsed
MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # a RunRecord with every latency and power sample of a long window
OPERATIONS = ("hello", "clock", "engines", "run", "idle", "bye")
DEFAULT_TCP_PORT = 8765

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


def decode(line: bytes, limit: int = MAX_LINE_BYTES) -> dict[str, Any]:
    """One JSON line (at most `limit` bytes) into an object, or ProtocolError saying what the bytes looked like."""
    if len(line) > limit + 1:
        raise ProtocolError(f"message of {len(line)} bytes is over the {limit}-byte limit")
    try:
        data = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        shown = line[:60].decode("utf-8", "replace").strip()
        raise ProtocolError(
            f"not an edgebench agent message: {shown!r} (is the other end `edgebench agent --stdio`, and does "
            "nothing else print on its stdout?)"
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(f"agent message is a JSON {type(data).__name__}, not an object")
    return data


def request(id_: int, op: str, **args: Any) -> dict[str, Any]:
    return {"id": id_, "op": op, "args": args}


def parse_request(data: Mapping[str, Any]) -> Request:
    """Check a decoded request's shape; BadInput names what is wrong."""
    op = data.get("op")
    if op not in OPERATIONS:
        raise BadInput(f"unknown operation {op!r}: this agent speaks {', '.join(OPERATIONS)}")
    id_ = data.get("id", 0)
    if not isinstance(id_, int) or isinstance(id_, bool):
        raise BadInput(f"request id {id_!r} is not an integer")
    args = data.get("args", {})
    if not isinstance(args, dict):
        raise BadInput(f"arguments of {op} are a JSON {type(args).__name__}, not an object")
    return Request(id=id_, op=op, args=args)


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
        raise BadInput("hello must carry `versions`, a list of the integer protocol versions the client speaks")
    common = set(SUPPORTED_VERSIONS) & set(versions)
    if not common:
        newer = max(versions) > max(SUPPORTED_VERSIONS)
        who = "the agent (pip install -U edgebench on the device)" if newer else "the host's edgebench"
        raise BadInput(
            f"no common protocol version: client speaks {offered}, agent speaks {list(SUPPORTED_VERSIONS)}: "
            f"upgrade {who}"
        )
    return max(common)
