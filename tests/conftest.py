"""Fixtures shared by several test modules."""

import re
import subprocess

import pytest

from edgebench.host.transport import edgebench_argv


@pytest.fixture(scope="session")
def tiny_engines(tmp_path_factory):
    """Two tiny engines built by the real build path (squeezenet1_1 at 32x32, batches 1 and 2)."""
    from edgebench.engines.build import build_sweep
    from edgebench.engines.sweep import Sweep

    out = tmp_path_factory.mktemp("engines")
    report = build_sweep(Sweep(backbones=("squeezenet1_1",), batches=(1, 2), resolutions=((32, 32),)), out)
    assert report.ok
    return out


@pytest.fixture()
def tcp_agent(tiny_engines, tmp_path):
    """`edgebench agent --listen` on a free loopback port with token s3cret; yields the port."""
    log = tmp_path / "agent.log"
    with open(log, "w") as stderr:  # a file, not a pipe: nobody drains it while the agent runs
        proc = subprocess.Popen(
            [*edgebench_argv(), "agent", "--listen", "127.0.0.1:0", "--token", "s3cret", "--sensor", "none",
             "--engines", str(tiny_engines)],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    line = proc.stdout.readline()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert match, line + log.read_text()
    yield int(match.group(1))
    proc.terminate()
    proc.wait(timeout=10)
