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
