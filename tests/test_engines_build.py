import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebench.engines.backends import available, get_backend, open_runner
from edgebench.engines.build import BUILT, CACHED, FAILED, build_sweep, summary_lines
from edgebench.engines.manifest import Manifest
from edgebench.engines.runner import Runner, RunOptions
from edgebench.engines.spec import EngineSpec
from edgebench.engines.sweep import Sweep
from edgebench.errors import BadInput


def tiny_model(path, batch="batch", scale=0.5):
    """Conv 3->4 + GlobalAveragePool + Flatten: a user's ONNX file."""
    w = np.full((4, 3, 3, 3), scale, np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])], [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_build_writes_manifest_and_second_build_is_cached(tmp_path):
    sweep = Sweep(["mobilenet_v3_small"], [1, 2], ["64x64"], ["fp32"])
    report = build_sweep(sweep, tmp_path)
    assert [r.status for r in report.results] == [BUILT, BUILT]
    manifest = Manifest.load(tmp_path)
    entry = manifest.get("mobilenet_v3_small_2_64_64_fp32")
    assert entry.spec == EngineSpec("mobilenet_v3_small", 2, 64, 64, "fp32")
    assert entry.backend == "onnxruntime" and (tmp_path / entry.artifact).is_file()
    assert entry.params == 2_542_856
    one = manifest.get("mobilenet_v3_small_1_64_64_fp32")
    assert entry.macs_per_inference == 2 * one.macs_per_inference == 2 * entry.macs_per_sample
    assert entry.flops_per_inference == 2 * entry.macs_per_inference
    assert entry.versions["onnxruntime"] and entry.versions["onnx"] and entry.created.endswith("+00:00")
    assert len(entry.cache_key) == 64
    raw = json.loads((tmp_path / "manifest.json").read_text())
    assert [row["name"] for row in raw["engines"]] == ["mobilenet_v3_small_1_64_64_fp32", entry.name]

    mtime = (tmp_path / entry.artifact).stat().st_mtime_ns
    again = build_sweep(sweep, tmp_path)
    assert [r.status for r in again.results] == [CACHED, CACHED]
    assert (tmp_path / entry.artifact).stat().st_mtime_ns == mtime
    assert "0 built, 2 cached, 0 failed" in summary_lines(again)[-1]
    forced = build_sweep(sweep, tmp_path, force=True)
    assert [r.status for r in forced.results] == [BUILT, BUILT]
    # a deleted artifact is rebuilt even though its manifest row is intact
    (tmp_path / entry.artifact).unlink()
    assert [r.status for r in build_sweep(sweep, tmp_path).results] == [CACHED, BUILT]


def test_changed_source_model_rebuilds_and_others_stay_cached(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx")
    sweep = Sweep(models={"tiny": model}, resolutions=["16x16"], precisions=["fp32", "fp16"])
    out = tmp_path / "engines"
    assert [r.status for r in build_sweep(sweep, out).results] == [BUILT, BUILT]
    key = Manifest.load(out).get("tiny_1_16_16_fp32").cache_key
    tiny_model(model, scale=0.25)  # same graph, new weights: a different engine
    assert [r.status for r in build_sweep(sweep, out).results] == [BUILT, BUILT]
    assert Manifest.load(out).get("tiny_1_16_16_fp32").cache_key != key
    wider = Sweep(models={"tiny": model}, resolutions=["16x16", "24x24"], precisions=["fp32", "fp16"])
    assert [r.status for r in build_sweep(wider, out).results] == [CACHED, CACHED, BUILT, BUILT]
    # the file now fixes batch at 2: batch-1 points fail, and their stale rows leave the manifest
    tiny_model(model, batch=2)
    report = build_sweep(wider, out)
    assert [r.status for r in report.results] == [FAILED] * 4
    assert Manifest.load(out).entries == []


def test_a_failing_point_does_not_stop_the_sweep(tmp_path):
    fixed = tiny_model(tmp_path / "fixed.onnx", batch=1)  # batch fixed at 1: batch 2 cannot be built
    sweep = Sweep(["squeezenet1_1"], [1, 2], ["32x32"], ["fp32"], models={"fixed": fixed})
    report = build_sweep(sweep, tmp_path / "out")
    status = {r.name: r.status for r in report.results}
    assert status == {
        "squeezenet1_1_1_32_32_fp32": BUILT, "squeezenet1_1_2_32_32_fp32": BUILT,
        "fixed_1_32_32_fp32": BUILT, "fixed_2_32_32_fp32": FAILED,
    }
    assert not report.ok
    assert "batch fixed at 1" in report.failed[0].error
    assert "fixed_2_32_32_fp32" not in Manifest.load(tmp_path / "out")
    assert len(Manifest.load(tmp_path / "out").entries) == 3


def test_sweep_errors_are_raised_before_anything_is_built(tmp_path):
    with pytest.raises(BadInput, match="too small for squeezenet1_1"):
        build_sweep(Sweep(["superpoint", "squeezenet1_1"], resolutions=["16x16"]), tmp_path)
    with pytest.raises(BadInput, match="unknown backend"):
        build_sweep(Sweep(["squeezenet1_1"]), tmp_path, backend="tflite")
    assert not (tmp_path / "manifest.json").exists()


def test_manifest_get_suggests_near_names(tmp_path):
    build_sweep(Sweep(["squeezenet1_1"], resolutions=["32x32"]), tmp_path)
    with pytest.raises(BadInput, match="did you mean squeezenet1_1_1_32_32_fp32"):
        Manifest.load(tmp_path).get("squeezenet1_1_1_32_32_fp16")
    with pytest.raises(BadInput, match="build engines first"):
        Manifest.load(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BadInput, match="not an edgebench manifest"):
        Manifest.load(tmp_path)


# fp16 keeps 11 significant bits (unit roundoff 4.9e-4); through ~20 layers of random He-initialised weights
# the rounding errors add up to ~1e-3 relative (measured 2e-4..1e-3). 2e-2 is 40x the unit roundoff: loose
# enough for accumulation order, tight enough to catch a wrong cast, a dropped layer or a swapped weight.
FP16_RELATIVE_L2 = 2e-2


@pytest.mark.parametrize(
    "backbone, resolution",
    [pytest.param("resnet18", "32x32", marks=pytest.mark.slow), pytest.param("mobilenet_v2", "32x32", marks=pytest.mark.slow),
     ("squeezenet1_1", "32x32"), ("mobilenet_v3_small", "32x32"), ("superpoint", "16x16")],
)
def test_fp16_engines_load_and_agree_with_fp32(tmp_path, backbone, resolution):
    report = build_sweep(Sweep([backbone], [1], [resolution], ["fp32", "fp16"]), tmp_path)
    assert report.ok, report.failed
    fp32, fp16 = (open_runner(tmp_path, entry, RunOptions(intra_op_threads=1)) for entry in report.entries)
    try:
        assert isinstance(fp16, Runner) and fp16.batch == 1
        assert fp16.settings["precision"] == "fp16" and fp16.settings["intra_op_threads"] == 1
        assert "InferenceSession.run" in fp16.timed_region
        fp16.run_once()
        for a, b in zip(fp32.outputs(), fp16.outputs(), strict=True):
            assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
            assert np.isfinite(b).all()
            assert np.linalg.norm(a - b) / np.linalg.norm(a) < FP16_RELATIVE_L2
    finally:
        fp32.close()
        fp16.close()


def test_open_runner_on_missing_artifact_is_bad_input(tmp_path):
    report = build_sweep(Sweep(["squeezenet1_1"], resolutions=["32x32"]), tmp_path)
    (tmp_path / report.entries[0].artifact).unlink()
    with pytest.raises(BadInput, match="is missing"):
        open_runner(tmp_path, report.entries[0], RunOptions())


def test_backend_registry():
    assert available()["onnxruntime"]
    assert get_backend("onnxruntime").name == "onnxruntime"
    with pytest.raises(BadInput, match="use one of onnxruntime, tensorrt"):
        get_backend("tvm")


def test_io_binding_gives_the_same_outputs(tmp_path):
    report = build_sweep(Sweep(["squeezenet1_1"], resolutions=["32x32"], precisions=["fp32"]), tmp_path)
    entry = report.entries[0]
    plain = open_runner(tmp_path, entry, RunOptions(intra_op_threads=1))
    bound = open_runner(tmp_path, entry, RunOptions(intra_op_threads=1, io_binding=True))
    try:
        bound.run_once()
        assert "run_with_iobinding" in bound.timed_region and bound.settings["io_binding"] is True
        for a, b in zip(plain.outputs(), bound.outputs(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    finally:
        plain.close()
        bound.close()


def test_fp16_conversion_is_topologically_sorted_with_float32_io():
    from edgebench.engines.backbones import builtin_model
    from edgebench.engines.backends.ort import convert_fp16
    from edgebench.engines.counting import fix_input_shape

    model = convert_fp16(fix_input_shape(builtin_model("mobilenet_v3_small"), 1, 32, 32))
    seen = {value.name for value in model.graph.input} | {init.name for init in model.graph.initializer} | {""}
    for node in model.graph.node:
        assert set(node.input) <= seen, node.name
        seen.update(node.output)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer)


def test_cache_key_covers_source_options_versions_and_name():
    from edgebench.engines.build import cache_key

    spec = EngineSpec("resnet18", 1, 64, 64, "fp32")
    base = cache_key(b"model", spec, "onnxruntime", {"level": "basic"}, {"onnxruntime": "1.17"})
    assert base == cache_key(b"model", spec, "onnxruntime", {"level": "basic"}, {"onnxruntime": "1.17"})
    variants = [
        cache_key(b"model2", spec, "onnxruntime", {"level": "basic"}, {"onnxruntime": "1.17"}),
        cache_key(b"model", EngineSpec("resnet18", 2, 64, 64, "fp32"), "onnxruntime", {"level": "basic"},
                  {"onnxruntime": "1.17"}),
        cache_key(b"model", spec, "tensorrt", {"level": "basic"}, {"onnxruntime": "1.17"}),
        cache_key(b"model", spec, "onnxruntime", {"level": "extended"}, {"onnxruntime": "1.17"}),
        cache_key(b"model", spec, "onnxruntime", {"level": "basic"}, {"onnxruntime": "1.18"}),
    ]
    assert len({base, *variants}) == 6


@pytest.mark.slow
def test_a_fully_cached_sweep_imports_neither_onnx_nor_generates_models(tmp_path):
    import subprocess
    import sys

    model = tiny_model(tmp_path / "tiny.onnx")
    sweep = Sweep(["mobilenet_v3_small"], [1], ["32x32"], ["fp32"], models={"tiny": model})
    out = tmp_path / "engines"
    assert [r.status for r in build_sweep(sweep, out).results] == [BUILT, BUILT]
    assert (out / ".sources.json").is_file()
    script = (
        "import sys\n"
        "from edgebench.engines.build import build_sweep\n"
        "from edgebench.engines.sweep import Sweep\n"
        f"sweep = Sweep(['mobilenet_v3_small'], [1], ['32x32'], ['fp32'], models={{'tiny': {str(model)!r}}})\n"
        f"report = build_sweep(sweep, {str(out)!r})\n"
        "print([r.status for r in report.results], *(m in sys.modules for m in ('onnx', 'onnxruntime', 'numpy')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["['cached',", "'cached']", "False", "False", "False"]
    # the whole command too: the backend's presence is found (importlib.util.find_spec), not imported
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "edgebench", "build-engines", "--backbone", "mobilenet_v3_small",
         "--model", str(model), "--resolution", "32x32", "--precision", "fp32", "--out", str(out)],
        capture_output=True, text=True, check=True,
    )
    assert "0 built, 2 cached" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert imported and not imported & {"numpy", "onnxruntime", "onnx", "sklearn"}
    # a damaged memo costs one generation, not a rebuild: the model's digest is the same
    (out / ".sources.json").write_text("{not json")
    assert [r.status for r in build_sweep(sweep, out).results] == [CACHED, CACHED]
