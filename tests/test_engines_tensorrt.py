"""TensorRT backend. Building and running need TensorRT, pycuda and an NVIDIA GPU; they skip with the reason."""

import numpy as np
import pytest

from edgebench.engines.backends import get_backend, open_runner
from edgebench.engines.backends.trt import NOT_INSTALLED, _concrete_shape
from edgebench.engines.build import build_sweep
from edgebench.engines.runner import RunOptions
from edgebench.engines.spec import EngineSpec
from edgebench.engines.sweep import Sweep
from edgebench.errors import BadInput

BACKEND = get_backend("tensorrt")
AVAILABLE = BACKEND.available()
needs_tensorrt = pytest.mark.skipif(not AVAILABLE, reason=AVAILABLE.reason or "TensorRT available")


def test_probe_says_what_is_missing_and_how_to_get_it():
    if AVAILABLE:
        assert AVAILABLE.reason == ""
    else:
        assert AVAILABLE.reason
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            assert AVAILABLE.reason == NOT_INSTALLED
            assert "JetPack" in NOT_INSTALLED and "pip install edgebench[tensorrt]" in NOT_INSTALLED


def test_dynamic_dimensions_take_the_spec_values():
    spec = EngineSpec("resnet18", 2, 120, 392, "fp16")
    assert _concrete_shape((-1, 3, -1, -1), spec) == (2, 3, 120, 392)
    assert _concrete_shape((1, 3, 64, 64), spec) == (1, 3, 64, 64)
    with pytest.raises(BadInput, match="dimension 1"):
        _concrete_shape((1, -1, 64, 64), spec)


@pytest.mark.tensorrt
@needs_tensorrt
def test_build_run_and_agree_with_onnxruntime(tmp_path):
    sweep = Sweep(["squeezenet1_1"], [1], ["64x64"], ["fp32", "fp16"])
    report = build_sweep(sweep, tmp_path / "trt", backend="tensorrt")
    assert report.ok, report.failed
    assert (tmp_path / "trt" / "tensorrt.timing.cache").is_file()
    reference = build_sweep(Sweep(["squeezenet1_1"], [1], ["64x64"], ["fp32"]), tmp_path / "ort")
    ort_runner = open_runner(tmp_path / "ort", reference.entries[0], RunOptions())
    expected = ort_runner.outputs()
    ort_runner.close()
    for entry, rtol in zip(report.entries, (1e-3, 2e-2), strict=True):
        assert entry.artifact.endswith(".plan")
        for copies in (False, True):
            runner = open_runner(tmp_path / "trt", entry, RunOptions(include_copies=copies))
            try:
                runner.run_once()
                assert ("copies" in runner.timed_region) == copies
                got = runner.outputs()
                assert np.linalg.norm(got[0].reshape(expected[0].shape) - expected[0]) / np.linalg.norm(expected[0]) < rtol
            finally:
                runner.close()
    again = build_sweep(sweep, tmp_path / "trt", backend="tensorrt")
    assert [r.status for r in again.results] == ["cached", "cached"]


@pytest.mark.tensorrt
@needs_tensorrt
def test_eval_through_tensorrt_agrees_with_onnxruntime(tmp_path):
    # the same probe built by both backends: the TensorRT runner's infer() must classify the digits alike
    from edgebench.engines.backbones import builtin_model
    from edgebench.engines.datasets import Preprocess, load_dataset
    from edgebench.engines.evaluate import evaluate_entry
    from edgebench.engines.probe import train_probe

    probe = train_probe(builtin_model("mobilenet_v3_small"), "mobilenet_v3_small", load_dataset("digits:train"),
                        None, 32, 32, Preprocess(), tmp_path / "probe.onnx")
    test = load_dataset("digits:test")
    sweep = Sweep(models={"probe": probe.path}, batches=[4], resolutions=["32x32"], precisions=["fp32", "fp16"])
    figures = {}
    for backend in ("onnxruntime", "tensorrt"):
        report = build_sweep(sweep, tmp_path / backend, backend=backend)
        assert report.ok, report.failed
        for entry in report.entries:
            figures[(backend, entry.spec.precision)] = evaluate_entry(tmp_path / backend, entry, test, Preprocess()).top1
    assert figures[("tensorrt", "fp32")] == pytest.approx(figures[("onnxruntime", "fp32")], abs=3 / 539)
    assert figures[("tensorrt", "fp16")] == pytest.approx(figures[("onnxruntime", "fp32")], abs=6 / 539)
