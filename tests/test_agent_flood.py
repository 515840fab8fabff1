"""A flood of silent TCP connections must not lock a client with the token out of the agent (issue 18 item 6).

The flood runs in its own process (one thread, non-blocking sockets: no GIL shared with the client), holds
FLOOD_CONNECTIONS connections that never say a word and opens a new one whenever the agent drops one, up to a
bounded count and time. The client's bound is the agent's hello deadline: it must not have to wait out a silent
connection's deadline, which is exactly what the old listener made it do (16 pending slots, the rest turned away).
"""

import subprocess
import sys
import time

import pytest

from edgebench.agent import serve
from edgebench.errors import BadInput
from edgebench.host.transport import AgentSpec, connect

FLOOD_CONNECTIONS = 200
FLOOD_BUDGET = 1_000_000  # connections in all: with FLOOD_LIMIT_S, the flood ends by itself
FLOOD_LIMIT_S = 30.0

FLOOD = r"""
import selectors, socket, sys, time
host, port, n, budget, limit_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
sel = selectors.DefaultSelector()
opened = 0
def open_one():
    global opened
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, port))
    sel.register(s, selectors.EVENT_READ)
    opened += 1
for _ in range(n):
    open_one()
print("ready", flush=True)
end = time.monotonic() + limit_s
while opened < budget and time.monotonic() < end:
    for key, _ in sel.select(timeout=0.5):
        sock = key.fileobj
        try:
            sock.recv(4096)  # the agent's words, or its close: either way this one was dropped
        except OSError:
            pass
        sel.unregister(sock)
        sock.close()
        open_one()
print(opened, flush=True)
"""


def _flood(port: int, source: str = "127.0.0.1") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOOD, source, str(port), str(FLOOD_CONNECTIONS), str(FLOOD_BUDGET),
         str(FLOOD_LIMIT_S)],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _served_within(port: int, bound_s: float) -> tuple[float, int]:
    """Seconds until a client with the token got a session and an answer, and how many tries it took; a try
    the agent refused is made again at once, until `bound_s` has passed (then the test fails)."""
    spec = AgentSpec("tcp", host="127.0.0.1", port=port)
    t0 = time.monotonic()
    tries = 0
    refusals: list[str] = []
    while time.monotonic() - t0 < bound_s:
        tries += 1
        try:
            with connect(spec, engines_dir=".", token="s3cret") as client:
                assert client.call("clock")["t_ns"] > 0
                return time.monotonic() - t0, tries
        except BadInput as exc:
            refusals.append(str(exc))
    pytest.fail(f"no session within {bound_s:g} s under a flood of {FLOOD_CONNECTIONS} silent connections: "
                f"{tries} tries, last refusal: {refusals[-1] if refusals else 'none'}")


@pytest.mark.slow
def test_a_client_with_the_token_is_served_under_a_flood_of_silent_connections(tcp_agent):
    flood = _flood(tcp_agent)
    try:
        # not made to wait for any silent connection's deadline: the oldest silent ones make room for it
        waited, tries = _served_within(tcp_agent, serve.HELLO_TIMEOUT_S)
        assert flood.poll() is None, "the flood ended before the client was let in: it did not test anything"
    finally:
        flood.kill()
        flood.wait()
    assert waited < serve.HELLO_TIMEOUT_S
