"""The harness on a real (tiny) ONNX Runtime session: no mocks of the runner or the clock."""

import json
import time

import numpy as np
import pytest

from edgebench.agent.harness import idle_window, run_engine
from edgebench.engines.runner import Runner, RunOptions
from edgebench.records import (
    AGENT_CLOCK,
    ModelFacts,
    PowerSample,
    RailEnergy,
    append_jsonl,
    dumps,
    read_run_records,
)


def _tiny_model_bytes() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [16, 16], np.random.default_rng(0).random(256).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y0"]), helper.make_node("Relu", ["y0"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


class TinyOrtRunner:
    """A Runner over a real InferenceSession of a 16x16 MatMul+Relu, batch 2."""

    backend = "onnxruntime"
    batch = 2
    timed_region = "session.run on a prepared input, outputs to host memory"

    def __init__(self, delay_s: float = 0.0, name: str = "tiny_2_1_16_fp32"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(_tiny_model_bytes(), opts, providers=["CPUExecutionProvider"])
        self.feed = {"x": np.ones((2, 16), dtype=np.float32)}
        self.engine = name
        self.settings = {"intra_op_threads": 1, "providers": "CPUExecutionProvider"}
        self.delay_s = delay_s
        self.calls = 0

    def run_once(self) -> None:
        self.session.run(None, self.feed)
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)

    def close(self) -> None:
        self.session = None


@pytest.fixture(scope="module")
def runner():
    r = TinyOrtRunner()
    assert isinstance(r, Runner)
    return r


def test_fixed_iterations_window_brackets_the_latencies(runner):
    before = time.time_ns()
    rec = run_engine(runner, warmup_iterations=3, iterations=200, metadata=False, options=RunOptions(intra_op_threads=1))
    after = time.time_ns()
    assert rec.iterations == 200 == len(rec.latencies_ns)
    assert len(rec.warmup_latencies_ns) == 3
    assert rec.clock == AGENT_CLOCK and rec.kind == "run" and rec.batch == 2
    assert before <= rec.window_start_ns < rec.window_end_ns <= after
    total = sum(rec.latencies_ns)
    assert all(v > 0 for v in rec.latencies_ns)
    # The window holds every timed iteration plus only the loop's own overhead.
    assert total <= rec.duration_ns + 1_000_000  # realtime and perf counter may differ by clock granularity
    # and not the warm-up: the warm-up's time and the window fit between `before` and `after` side by side
    # (no bound on the loop's overhead itself: a loaded machine may preempt it for any time)
    assert sum(rec.warmup_latencies_ns) + rec.duration_ns <= after - before + 1_000_000
    assert rec.timed_region == runner.timed_region
    assert rec.settings["providers"] == "CPUExecutionProvider"
    assert rec.settings["options.intra_op_threads"] == 1
    assert rec.settings["harness.warmup"] == "3 iterations"
    assert rec.device == {} and rec.device_end == {}


def test_duration_mode_runs_at_least_the_duration_and_min_iterations():
    slow = TinyOrtRunner(delay_s=0.01)
    rec = run_engine(slow, warmup_iterations=0, duration_s=0.02, metadata=False)
    # 0.02 s would fit 2 iterations of 10 ms; at least 10 are run anyway (trtexec's minimum).
    assert rec.iterations >= 10
    assert rec.warmup_latencies_ns == ()
    assert slow.calls == rec.iterations
    assert rec.duration_ns >= 0.02e9
    fast = TinyOrtRunner()
    rec2 = run_engine(fast, warmup_s=0.05, duration_s=0.2, metadata=False)
    assert rec2.duration_ns >= 0.2e9
    # it stops at the first iteration ending past the deadline: all the others ended before it
    assert sum(rec2.latencies_ns[:-1]) < 0.2e9
    assert rec2.iterations > 10 and len(rec2.warmup_latencies_ns) >= 1
    assert fast.calls == rec2.iterations + len(rec2.warmup_latencies_ns)
    assert sum(rec2.warmup_latencies_ns[:-1]) < 0.05e9  # the same rule ends the warm-up


def test_defaults_follow_trtexec_and_warmup_time_is_separate(runner):
    slow = TinyOrtRunner(delay_s=0.2)
    rec = run_engine(slow, iterations=1, metadata=False)
    # default warm-up 0.2 s: one 0.2 s iteration is enough to pass it
    assert len(rec.warmup_latencies_ns) == 1 and rec.iterations == 1
    assert rec.settings["harness.warmup"] == "0.2 s"
    assert any("only 1 measured iteration" in w for w in rec.warnings)


def test_contradictory_arguments_are_refused(runner):
    with pytest.raises(ValueError):
        run_engine(runner, iterations=5, duration_s=1.0, metadata=False)
    with pytest.raises(ValueError):
        run_engine(runner, warmup_iterations=5, warmup_s=1.0, metadata=False)
    with pytest.raises(ValueError):
        run_engine(runner, iterations=0, metadata=False)


def test_record_round_trips_through_json_lines(runner, tmp_path):
    rec = run_engine(runner, warmup_iterations=2, iterations=20, metadata=True,
                     model=ModelFacts(params=1_235_496, flops_per_inference=86_000_000))
    assert rec.model.params == 1_235_496 and rec.model.flops_per_inference == 86_000_000
    assert "cpu.cores.logical" in rec.device and "python.version" in rec.device
    json.loads(dumps(rec))
    path = tmp_path / "runs.jsonl"
    append_jsonl(path, [rec, rec])
    back = read_run_records(path)
    assert back == [rec, rec]


class ListSampler:
    """A sampler that produces real PowerSamples from a thread-free clock read at start and stop."""

    name = "fake-rail"

    def __init__(self):
        self.samples = []

    def start(self):
        self.samples.append(PowerSample(t_ns=time.time_ns(), rails_mw={"VDD_IN": 5000.0}, total_mw=5000.0))

    def stop(self):
        self.samples.append(PowerSample(t_ns=time.time_ns(), rails_mw={"VDD_IN": 5000.0}, total_mw=5000.0))
        return list(self.samples)

    def window_energy(self, samples, start_ns, end_ns):
        from edgebench.energy import integrate_window

        t = np.array([s.t_ns for s in samples], dtype=np.int64)
        p = np.array([s.total_mw / 1000 for s in samples])
        w = integrate_window(t, p, start_ns, end_ns)
        return RailEnergy("fake-rail", "VDD_IN", w.energy_j, w.mean_power_w, w.samples)


def test_sampler_brackets_the_window_and_energy_is_attached(runner):
    rec = run_engine(runner, warmup_iterations=1, iterations=50, metadata=False, sampler=ListSampler())
    assert rec.sensor == "fake-rail" and len(rec.power_samples) == 2
    assert rec.power_samples[0].t_ns <= rec.window_start_ns and rec.power_samples[1].t_ns >= rec.window_end_ns
    assert rec.rail_energy.energy_j == pytest.approx(5.0 * rec.duration_ns / 1e9, rel=1e-6)


def test_idle_window_is_a_run_record_of_kind_idle():
    rec = idle_window(0.1, sampler=ListSampler(), metadata=False)
    assert rec.kind == "idle" and rec.engine == "idle" and rec.iterations == 0 and rec.latencies_ns == ()
    assert rec.duration_ns >= 0.1e9  # (a late wake-up on a busy machine may stretch it: no upper bound)
    assert rec.rail_energy.energy_j == pytest.approx(5.0 * rec.duration_ns / 1e9, rel=1e-6)
    with pytest.raises(ValueError):
        idle_window(0)
