import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgebench.cli import cli
from edgebench.engines.backends import get_backend
from edgebench.engines.manifest import Manifest


def tiny_model(path, batch="batch"):
    w = np.full((2, 3, 1, 1), 0.5, np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2, 1, 1])], [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def invoke(*args):
    return CliRunner().invoke(cli, ["build-engines", *map(str, args)])


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgebench: error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_builds_and_prints_summary_then_caches(tmp_path):
    out = tmp_path / "e"
    result = invoke("--backbone", "squeezenet1_1", "--resolution", "32x32,48x48", "--precision", "fp32", "--out", out)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["engine", "status", "params", "GFLOPs/inference", "build_s"]
    assert lines[2].split()[:3] == ["squeezenet1_1_1_32_32_fp32", "built", "1,235,496"]
    assert lines[-1].startswith("2 built, 0 cached, 0 failed")
    again = invoke(
        "--backbone", "squeezenet1_1", "--resolution", "32x32", "--resolution", "48x48", "--precision", "fp32", "--out", out
    )
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1].startswith("0 built, 2 cached, 0 failed")


def test_json_report(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx")
    result = invoke(
        "--model", model, "--batch", "1,2", "--resolution", "8x8", "--precision", "fp32", "--out", tmp_path / "e", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["name"] for row in data["engines"]] == ["tiny_1_8_8_fp32", "tiny_2_8_8_fp32"]
    entry = data["engines"][1]["entry"]
    assert entry["params"] == 6 and entry["macs_per_inference"] == 2 * 64 * 2 * 3 and entry["macs_per_sample"] == 384
    assert entry["flops_per_sample"] == 768
    assert len(Manifest.load(tmp_path / "e").entries) == 2


def test_sweep_file_and_override(tmp_path):
    (tmp_path / "s.toml").write_text('backbones = ["mobilenet_v3_small"]\nresolutions = ["32x32"]\nprecisions = ["fp16"]\n')
    result = invoke("--sweep", tmp_path / "s.toml", "--batch", "2", "--out", tmp_path / "e", "--json")
    assert result.exit_code == 0, result.output
    assert [row["name"] for row in json.loads(result.stdout)["engines"]] == ["mobilenet_v3_small_2_32_32_fp16"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "missing.onnx"], "ONNX model missing.onnx does not exist"),
        (["--model", "garbage.onnx"], "is not an ONNX model"),
        (["--model", "invalid.onnx"], "fails onnx.checker"),
        (["--backbone", "resnet18", "--resolution", "0x5"], "resolution '0x5' is impossible"),
        (["--backbone", "squeezenet1_1", "--resolution", "16x16"], "too small for squeezenet1_1"),
        (["--backbone", "resnet18", "--resolution", "99999x99999"], "at most 4096"),
        (["--backbone", "resnet18", "--resolution", "1x" + "9" * 5000], "at most 4096"),
        (["--backbone", "resnet19"], "unknown backbone 'resnet19'"),
        (["--backbone", "resnet18", "--precision", "int8"], "unknown precision 'int8'"),
        (["--backbone", "resnet18", "--batch", "one"], "--batch takes integers"),
        (["--backbone", "resnet18", "--batch", "1025"], "more than 1024 images"),
        (["--backbone", "resnet18", "--batch", "9" * 400], "more than 1024 images"),
        (["--backbone", "resnet18", "--backend", "tvm"], "unknown backend 'tvm'"),
        (["--sweep", "nope.toml"], "sweep file nope.toml does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.onnx").write_bytes(b"\x00\xffnot a protobuf at all\x13\x37" * 10)
    bad = helper.make_model(helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "g", [], []))
    (tmp_path / "invalid.onnx").write_bytes(bad.SerializeToString())
    result = invoke(*args, "--out", tmp_path / "e")
    assert result.exit_code == 2, result.output
    assert message in one_error_line(result)
    assert not (tmp_path / "e" / "manifest.json").exists()


def test_two_models_with_the_same_stem_are_bad_input(tmp_path):
    (tmp_path / "a").mkdir()
    first, second = tiny_model(tmp_path / "tiny.onnx"), tiny_model(tmp_path / "a" / "tiny.onnx")
    result = invoke("--model", first, "--model", second, "--out", tmp_path / "e")
    assert result.exit_code == 2
    assert "would both be named 'tiny'" in one_error_line(result)


def test_tensorrt_missing_is_bad_input_with_the_reason(tmp_path):
    availability = get_backend("tensorrt").available()
    if availability:
        pytest.skip("TensorRT is installed here: the missing-backend message cannot be seen")
    result = invoke("--backbone", "squeezenet1_1", "--backend", "tensorrt", "--out", tmp_path)
    assert result.exit_code == 2
    assert availability.reason in one_error_line(result)


def test_failing_point_is_reported_and_the_sweep_goes_on(tmp_path):
    fixed = tiny_model(tmp_path / "fixed.onnx", batch=1)
    result = invoke("--model", fixed, "--batch", "1,2", "--resolution", "8x8", "--precision", "fp32", "--out", tmp_path / "e")
    assert result.exit_code == 1
    assert "warning: fixed_2_8_8_fp32 failed: model input 'x' has its batch fixed at 1" in result.stderr
    assert "1 built, 0 cached, 1 failed" in result.stdout
    assert [e.name for e in Manifest.load(tmp_path / "e").entries] == ["fixed_1_8_8_fp32"]
