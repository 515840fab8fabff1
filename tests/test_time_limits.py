"""Time limits on a window, and Ctrl-C during one (issue 18 item 12).

The engine that never finishes is real: a checker-valid ONNX Loop of 2^62 iterations, built by `build-engines
--model` like any model; its first inference would run for ever. Every test is bounded: limits of a second or two,
and subprocesses waited on with timeouts.
"""

import json
import os
import signal
import subprocess
import time

import pytest
from click.testing import CliRunner

from edgebench import protocol as wire
from edgebench.agent.harness import run_engine, time_limits
from edgebench.agent.watchdog import DEFAULT_WINDOW_GRACE_S, TimeLimits, WindowStopped
from edgebench.cli import cli, edgebench_argv
from edgebench.host.transport import AgentSpec, connect
from edgebench.records import read_run_records, run_record_from_dict

FOREVER = "forever_1_32_32_fp32"
SMALL = "squeezenet1_1_1_32_32_fp32"


def loop_model(iterations: int):
    """y = x + iterations, computed by an ONNX Loop that adds 1 per iteration (checker-valid)."""
    import onnx
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one_t", TensorProto.FLOAT, [], [1.0])),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["M"], value=helper.make_tensor("m", TensorProto.INT64, [], [iterations])),
            helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])),
            helper.make_node("Loop", ["M", "cond", "x"], ["y"], body=body),
        ],
        "forever",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def forever_engines(tmp_path_factory):
    """An engines directory with the never-ending Loop and a small real engine, built by the real CLI."""
    import onnx

    root = tmp_path_factory.mktemp("forever")
    onnx.save(loop_model(2**62), root / "forever.onnx")
    out = root / "engines"
    result = CliRunner().invoke(cli, ["build-engines", "--model", str(root / "forever.onnx"), "--backbone",
                                      "squeezenet1_1", "--resolution", "32x32", "--batch", "1", "--precision",
                                      "fp32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _open(engines_dir, name):
    from edgebench.engines.backends import open_runner
    from edgebench.engines.manifest import Manifest
    from edgebench.engines.runner import RunOptions

    return open_runner(engines_dir, Manifest.load(engines_dir).get(name), RunOptions(intra_op_threads=1))


def test_the_defaults_are_stated_and_follow_the_window():
    assert time_limits() == TimeLimits(60.0, 0.2 + 3.0 + DEFAULT_WINDOW_GRACE_S)
    assert time_limits(warmup_s=1.0, duration_s=10.0).window_s == 11.0 + DEFAULT_WINDOW_GRACE_S
    assert time_limits(warmup_iterations=5, duration_s=10.0).window_s == 10.0 + DEFAULT_WINDOW_GRACE_S
    assert time_limits(iterations=1000).window_s is None  # a count: each inference still has its limit
    assert time_limits(2.0, 30.0, iterations=5) == TimeLimits(2.0, 30.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            TimeLimits(inference_s=bad)


def test_an_inference_that_never_ends_is_stopped_at_its_limit(forever_engines):
    runner = _open(forever_engines, FOREVER)
    t0 = time.monotonic()
    try:
        with pytest.raises(WindowStopped, match=r"one inference of forever_1_32_32_fp32 ran past the 0\.5 s limit"):
            run_engine(runner, warmup_iterations=1, iterations=10, metadata=False,
                       limits=TimeLimits(inference_s=0.5, window_s=None))
    finally:
        runner.close()
    assert time.monotonic() - t0 >= 0.5  # not before its limit (how much after depends on the machine's load)


def test_a_window_is_stopped_at_its_limit_even_when_every_inference_is_quick(forever_engines):
    runner = _open(forever_engines, SMALL)
    try:
        with pytest.raises(WindowStopped, match=r"the window of squeezenet1_1_1_32_32_fp32 ran past its 0\.5 s"):
            run_engine(runner, warmup_s=0.0, duration_s=60.0, metadata=False,
                       limits=TimeLimits(inference_s=60.0, window_s=0.5))
    finally:
        runner.close()
    # and a window inside its limits records them
    runner = _open(forever_engines, SMALL)
    try:
        record = run_engine(runner, warmup_iterations=1, iterations=5, metadata=False)
    finally:
        runner.close()
    assert record.settings["harness.time_limits"] == "60 s per inference, no limit per window"


def test_bench_records_the_stopped_engine_as_failed_and_goes_on(forever_engines, tmp_path):
    out = tmp_path / "runs.jsonl"
    result = CliRunner().invoke(cli, ["bench", str(forever_engines), "--inference-timeout", "1", "--iterations",
                                      "20", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "forever_1_32_32_fp32 failed: one inference of forever_1_32_32_fp32 ran past the 1 s limit" in result.output
    assert "1 of 2 engines failed: forever_1_32_32_fp32" in result.output
    records = {r.engine: r for r in read_run_records(out)}
    assert records[FOREVER].failed and "ran past the 1 s limit" in records[FOREVER].error
    assert records[SMALL].iterations == 20 and not records[SMALL].failed


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e400"])
def test_bench_time_limits_are_checked(forever_engines, value):
    for option in ("--inference-timeout", "--window-timeout"):
        result = CliRunner().invoke(cli, ["bench", str(forever_engines), option, value])
        assert result.exit_code == 2, result.output


def _cpu_ticks(pid: int) -> int:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc to see the engine spin")
def test_ctrl_c_stops_bench_inside_an_inference_that_never_ends(forever_engines, tmp_path):
    # --inference-timeout 600: only Ctrl-C can end this run within the test's bounds
    proc = subprocess.Popen(
        [*edgebench_argv(), "bench", str(forever_engines), "--engine", FOREVER, "--inference-timeout", "600",
         "--sensor", "estimate", "--out", str(tmp_path / "runs.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # the note about the sensor comes right before the engine is opened; then the Loop spins a CPU
        assert "on-board power: estimate" in proc.stderr.readline()
        spin_from = _cpu_ticks(proc.pid)
        deadline = time.monotonic() + 60
        while _cpu_ticks(proc.pid) - spin_from < 100:  # a whole CPU-second inside the never-ending inference
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err


@pytest.mark.slow
def test_the_agent_reports_a_stopped_engine_as_failed_and_serves_the_rest(forever_engines):
    with connect(AgentSpec("local"), engines_dir=forever_engines, sensor="none") as client:
        assert client.hello["protocol"] == 2
        with pytest.raises(wire.EngineFailed, match=r"forever_1_32_32_fp32 failed: one inference .* 1 s limit"):
            client.call("run", engine=FOREVER, iterations=5, inference_timeout_s=1.0, timeout_s=60)
        record = run_record_from_dict(client.call("run", engine=SMALL, iterations=5)["record"])
        assert record.iterations == 5 and record.settings["harness.time_limits"] == "60 s per inference, no limit per window"
        with pytest.raises(wire.EngineFailed, match=r"window of squeezenet1_1_1_32_32_fp32 ran past its 0\.5 s"):
            client.call("run", engine=SMALL, duration_s=60, window_timeout_s=0.5, timeout_s=60)
        assert client.call("clock")["t_ns"] > 0


def test_a_tcp_agent_session_thread_stops_the_engine_too(forever_engines, tmp_path):
    log = tmp_path / "agent.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [*edgebench_argv(), "agent", "--listen", "127.0.0.1:0", "--token", "s3cret", "--sensor", "none",
             "--engines", str(forever_engines)],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    try:
        port = int(proc.stdout.readline().strip().rsplit(":", 1)[1])
        with connect(AgentSpec("tcp", host="127.0.0.1", port=port), engines_dir=".", token="s3cret") as client:
            with pytest.raises(wire.EngineFailed, match="ran past the 1 s limit"):
                client.call("run", engine=FOREVER, iterations=1, inference_timeout_s=1.0, timeout_s=60)
            assert client.call("run", engine=SMALL, iterations=3)["record"]["iterations"] == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("name", ["inference_timeout_s", "window_timeout_s"])
@pytest.mark.parametrize("value", [0, -1, 1e9, True, "5", None])
def test_the_run_request_checks_its_time_limits(name, value):
    args = {"engine": "x", name: value}
    if value is None:
        assert name not in wire.parse_request(wire.request(1, "run", **args)).args
        return
    with pytest.raises(Exception) as refused:
        wire.parse_request(wire.request(1, "run", **args))
    assert type(refused.value).__name__ == "BadInput" and name in str(refused.value)


def test_version_1_hosts_still_get_version_1(forever_engines):
    from edgebench.agent.serve import AgentService, Session

    session = Session(AgentService(engines_dir=forever_engines))
    answer = session.handle(wire.request(1, "hello", versions=[1]))
    assert answer["result"]["protocol"] == 1
    assert json.loads(wire.encode(answer))["ok"]
