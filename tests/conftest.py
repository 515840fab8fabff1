"""Fixtures shared by several test modules, and CI's rule on skips."""

import os
import re
import signal
import subprocess

import numpy as np
import pytest

from edgebench.cli import edgebench_argv
from edgebench.records import RunRecord

# In CI (.ci/run sets EDGEBENCH_CI=1) a test may skip only for what CI cannot have: TensorRT, NVML, an NVIDIA GPU,
# or an ordinary user where CI runs as root. Any other skip (no Chromium, CodeCarbon missing from the test extra)
# means CI did not check what it should, so it fails there, with the skip's reason.
CI_SKIPS = re.compile(r"tensorrt|nvml|nvidia|\bgpu\b|cuda|root reads", re.IGNORECASE)

# A shell that starts pytest in the background (`pytest &` in a script, `scripts/stress_tests.sh ... &`) leaves
# SIGINT ignored, and every child inherits an ignored signal: the tests that press Ctrl-C on an edgebench child
# would then wait for ever. A handled signal is reset to the default in a child at exec: handle it here.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("EDGEBENCH_CI") == "1") or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not CI_SKIPS.search(reason):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where only missing hardware may skip: {reason}"


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


EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000
DEVICE = {"board.model": "NVIDIA Jetson Nano Developer Kit", "jetson.nvpmodel": "MAXN"}


def _run(engine, start_s, end_s, iterations, batch, latency_ms, kind="run", rail=None):
    return RunRecord(
        engine=engine,
        backend="onnxruntime",
        clock="agent:realtime",
        window_start_ns=EPOCH + int(start_s * S),
        window_end_ns=EPOCH + int(end_s * S),
        iterations=iterations,
        batch=batch,
        latencies_ns=tuple([int(latency_ms * 1e6)] * iterations),
        kind=kind,
        rail_energy=rail,
        device=DEVICE if kind == "run" else {},
    )


@pytest.fixture(scope="session")
def paired_result():
    """A PairingResult of three engines, an invalid one and an idle window over a synthetic wattsup trace."""
    from edgebench.host.carbon import egrid_factor
    from edgebench.host.pairing import pair
    from edgebench.records import ClockOffset, MeterTrace, RailEnergy

    # idle 2 W for 0-20 s, then each engine its own power level for 20 s
    levels = [(20, 40, 6.0), (40, 60, 4.0), (60, 80, 9.0)]
    t_s = np.arange(0, 100, 0.1)
    p = np.full_like(t_s, 2.0)
    for a, b, w in levels:
        p[(t_s >= a) & (t_s < b)] = w
    trace = MeterTrace(EPOCH + np.round(t_s * 1e9).astype(np.int64), p, "wattsup PRO", resolution_w=0.1)
    runs = [
        _run("idle", 2, 18, 0, 1, 0, kind="idle"),
        _run("resnet18_1_224_224_fp32", 22, 38, 160, 1, 100.0),  # 6 W: 0.6 J/inf gross, 0.4 net
        _run("mbv2_4_120_392_fp16", 42, 58, 400, 4, 40.0),  # 4 W: 0.16 gross, 0.08 net
        _run("sp_squeeze_2_120_392_FP16_seq_4", 62, 78, 100, 2, 160.0,
             rail=RailEnergy("tegrastats", "VDD_IN", 50.0, 3.1, 16, estimate=True)),  # 9 W: 1.44, 1.12
        _run("broken_1_8_8_fp32", 90, 90.3, 3, 1, 100.0),  # too short: invalid
    ]  # fmt: skip
    return pair(runs, trace, ClockOffset(0), grid=egrid_factor("RFCW", 2019))
