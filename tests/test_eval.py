"""edgebench eval and train-probe: accuracy computed on real labelled data, checked against a plain ORT loop."""

import dataclasses
import json
import re
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from edgebench.cli import cli, edgebench_argv
from edgebench.engines.datasets import Preprocess, load_dataset, resize, split_indices
from edgebench.engines.evaluate import topk_correct
from edgebench.engines.manifest import Manifest
from edgebench.engines.spec import EngineSpec


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """A mobilenet_v3_small probe fitted on digits:train at 32x32 and built at batch 1 and 4, fp32 and fp16."""
    root = tmp_path_factory.mktemp("probe")
    runner = CliRunner()
    done = runner.invoke(cli, ["train-probe", "--backbone", "mobilenet_v3_small", "--resolution", "32x32",
                               "--method", "bilinear", "--out", str(root / "digits_probe.onnx")])
    assert done.exit_code == 0, done.output
    built = runner.invoke(cli, ["build-engines", "--model", str(root / "digits_probe.onnx"), "--batch", "1,4",
                                "--resolution", "32x32", "--precision", "fp32,fp16", "--out", str(root / "engines")])
    assert built.exit_code == 0, built.output
    return root, done.output


def plain_ort_top1(model_path, images, labels, size, method):
    """The reference: one image at a time through onnxruntime, preprocessing written out by hand."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    correct = 0
    for image, label in zip(images, labels, strict=True):
        grey = resize(image[None], size, size, method)[0]
        x = ((np.repeat(grey, 3, axis=0) - mean) / std)[None].astype(np.float32)
        dtype = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
        correct += int(np.argmax(session.run(None, {name: x.astype(dtype)})[0][0]) == label)
    return correct / len(labels)


@pytest.mark.slow
def test_eval_accuracy_matches_a_plain_onnxruntime_loop_and_lands_in_the_manifest(probed):
    root, probe_output = probed
    assert "test  top-1" in probe_output
    engines = root / "engines"
    done = CliRunner().invoke(cli, ["eval", "--engines", str(engines), "--data", "digits:test", "--method", "bilinear",
                                    "--json"])
    assert done.exit_code == 0, done.output
    rows = {row["engine"]: row for row in map(json.loads, done.stdout.splitlines())}
    test = load_dataset("digits:test")
    expected = plain_ort_top1(root / "digits_probe.onnx", test.images, test.labels, 32, "bilinear")
    assert expected > 0.5  # ten classes: chance is 0.1, and this is a fitted classifier on held-out images
    manifest = Manifest.load(engines)
    for entry in manifest.entries:
        accuracy = entry.accuracy
        assert accuracy is not None and accuracy.samples == len(test) == 539
        assert rows[entry.name]["top1"] == accuracy.top1
        if entry.spec.precision == "fp32":
            assert accuracy.top1 == pytest.approx(expected, abs=1e-12)
        else:  # fp16 weights may flip a near-tie or two
            assert abs(accuracy.top1 - expected) <= 3 / 539
        assert accuracy.top5 is not None and accuracy.top5 >= accuracy.top1
        assert "bilinear resize to 32x32" in accuracy.preprocessing and "digits" in accuracy.dataset
    # batch 4 does not divide 539: the padded last batch must not change the figure
    assert manifest.get("digits_probe_4_32_32_fp32").accuracy.top1 == manifest.get("digits_probe_1_32_32_fp32").accuracy.top1


@pytest.mark.slow
def test_eval_reads_npz_and_image_folders_the_same(probed, tmp_path):
    from PIL import Image

    root, _ = probed
    test = load_dataset("digits:test")
    pick = np.arange(0, 539, 9)
    images = (test.images[pick, 0] * 255).round().astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=images, y=test.labels[pick])
    folder = tmp_path / "folder"
    for k, (image, label) in enumerate(zip(images, test.labels[pick], strict=True)):
        (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"class{label}" / f"{k}.png")
    engine = ["--engine", "digits_probe_4_32_32_fp32", "--engines", str(root / "engines"), "--json", "--method", "bilinear"]
    a = json.loads(CliRunner().invoke(cli, ["eval", "--data", str(tmp_path / "d.npz"), *engine]).stdout)
    b = json.loads(CliRunner().invoke(cli, ["eval", "--data", str(folder), *engine]).stdout)
    assert a["samples"] == b["samples"] == len(pick)
    assert a["top1"] == b["top1"] > 0.5


def test_area_resize_averages_blocks_and_bilinear_keeps_constants():
    images = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    halved = resize(images, 2, 2, "area")[0, 0]
    assert halved.tolist() == [[2.5, 4.5], [10.5, 12.5]]
    constant = np.full((2, 3, 5, 7), 0.25, np.float32)
    for method in ("area", "bilinear", "nearest"):
        assert np.allclose(resize(constant, 11, 3, method), 0.25)
    assert resize(images, 2, 2, "crop")[0, 0].tolist() == [[5, 6], [9, 10]]
    assert resize(images, 2, 2, "nearest")[0, 0].tolist() == [[0, 2], [8, 10]]


def test_topk_and_fixed_split():
    scores = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]])
    labels = np.array([1, 2, 0])
    assert topk_correct(scores, labels, 1) == 1 and topk_correct(scores, labels, 2) == 2
    labels = np.repeat(np.arange(3), 10)
    train, test = split_indices(labels, "train"), split_indices(labels, "test")
    assert len(test) == 9 and not set(train) & set(test) and len(train) + len(test) == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "nowhere.npz"], "not found"),
        (["--data", "digits:validation"], "train or test"),
        (["--data", "digits", "--mean", "nan"], "finite"),
    ],
)
def test_eval_bad_input_is_one_line_exit_2(tmp_path, args, message):
    Manifest(tmp_path).save()
    done = CliRunner().invoke(cli, ["eval", "--engines", str(tmp_path), *args])
    assert done.exit_code == 2 and message in done.output, done.output


def test_preprocess_states_what_it_does():
    p = Preprocess("area", (0.5,), (0.25,), "bgr")
    assert p.describe(32, 32, 3) == "area resize to 32x32; 3 channel(s), BGR; 0..1 then (x - [0.5]) / [0.25]"
    x = p.apply(np.full((1, 1, 8, 8), 0.75, np.float32), 16, 16, 3)
    assert x.shape == (1, 3, 16, 16) and np.allclose(x, 1.0)


def test_resize_choices_of_the_cli_are_the_datasets_methods():
    from edgebench.engines.datasets import RESIZE_METHODS
    from edgebench.engines.eval_cli import RESIZE_CHOICES

    assert sorted(RESIZE_CHOICES) == sorted(RESIZE_METHODS)


@pytest.mark.slow
def test_a_model_with_another_class_count_is_skipped_with_one_line_not_scored(probed, tmp_path):
    root, _ = probed
    test = load_dataset("digits:test")
    keep = test.labels < 3
    engine = ["--engine", "digits_probe_1_32_32_fp32", "--engines", str(root / "engines"), "--json", "--method",
              "bilinear"]
    # three classes: the ten-class probe is skipped (not scored, not 0 %), and with nothing left it is bad input
    np.savez(tmp_path / "three.npz", x=test.images[keep], y=test.labels[keep])
    done = CliRunner().invoke(cli, ["eval", "--data", str(tmp_path / "three.npz"), *engine])
    assert done.exit_code == 2 and done.stdout == ""
    assert "scores 10 classes but the dataset has 3: skipped" in done.stderr and "train-probe" in done.stderr
    # the same images named as a subset of the ten digit classes: scored
    names = np.array([str(k) for k in range(10)])
    np.savez(tmp_path / "named.npz", x=test.images[keep], y=test.labels[keep], classes=names)
    done = CliRunner().invoke(cli, ["eval", "--data", str(tmp_path / "named.npz"), *engine])
    row = json.loads(done.stdout)
    assert row["top5"] is not None and row["top1"] > 0.5 and row["samples"] == int(keep.sum())


def test_images_of_different_sizes_are_resized_one_by_one():
    p = Preprocess("area", (0.0,), (1.0,))
    images = [np.full((3, 10, 20), 0.5, np.float32), np.full((1, 4, 4), 0.25, np.float32)]
    x = p.apply(images, 8, 8, 3)
    assert x.shape == (2, 3, 8, 8) and np.allclose(x[0], 0.5) and np.allclose(x[1], 0.25)


def _fixed_user_model(path):
    """A user's classifier exported with a fixed 1x3x16x16 input: Conv 3->32, Relu, pool, Flatten, Gemm to 10."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    w = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
    fc = rng.standard_normal((10, 32)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "fixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.slow
def test_train_probe_on_a_user_model_with_a_fixed_batch(tmp_path):
    model = _fixed_user_model(tmp_path / "fixed.onnx")
    out = tmp_path / "fixed_probe.onnx"
    done = CliRunner().invoke(cli, ["train-probe", "--model", str(model), "--resolution", "16x16", "--out", str(out)])
    assert done.exit_code == 0, done.output
    test_line = next(line for line in done.output.splitlines() if line.startswith("test  top-1"))
    assert float(test_line.split()[2]) > 20  # percent; chance is 10
    wrong = CliRunner().invoke(cli, ["train-probe", "--model", str(model), "--resolution", "32x32", "--out", str(out)])
    assert wrong.exit_code == 2 and "--resolution 16x16" in wrong.output


@pytest.mark.slow
def test_eval_refuses_the_probes_training_images_and_other_preprocessing_unless_told(probed):
    root, _ = probed
    engines = root / "engines"
    before = (engines / "manifest.json").read_text()
    for data, right in (("digits", "evaluate on digits:test"), ("digits:train", "evaluate on digits:test")):
        done = CliRunner().invoke(cli, ["eval", "--engines", str(engines), "--data", data, "--method", "bilinear"])
        assert done.exit_code == 2 and right in done.stderr and "--allow-train-images" in done.stderr, done.output
        assert "fitted on digits:train (1258 images)" in done.stderr
    done = CliRunner().invoke(cli, ["eval", "--engines", str(engines), "--data", "digits:test"])  # area, not bilinear
    assert done.exit_code == 2 and "--method bilinear" in done.stderr and "--allow-other-preprocessing" in done.stderr
    assert (engines / "manifest.json").read_text() == before  # refused before any engine ran
    # told: scored, and the result says how it was obtained, in the manifest too
    done = CliRunner().invoke(cli, ["eval", "--engines", str(engines), "--data", "digits", "--engine",
                                    "digits_probe_4_32_32_fp32", "--allow-train-images", "--allow-other-preprocessing",
                                    "--json"])
    assert done.exit_code == 0, done.output
    row = json.loads(done.stdout)
    assert row["samples"] == 1797 and "[holds the probe's 1258 training images" in row["dataset"]
    assert "[differs from the probe's fit: resize area, fitted with bilinear" in row["preprocessing"]
    accuracy = Manifest.load(engines).get("digits_probe_4_32_32_fp32").accuracy
    assert accuracy.dataset == row["dataset"] and accuracy.preprocessing == row["preprocessing"]
    # the fit is recorded in the manifest by build-engines, from the probe's ONNX metadata
    fit = Manifest.load(engines).get("digits_probe_1_32_32_fp16").probe
    assert (fit.dataset, fit.part, fit.images, fit.method, fit.height) == ("digits:train", "train", 1258, "bilinear", 32)


@pytest.mark.slow
def test_eval_on_a_mixed_folder_scores_what_it_can_and_says_progress_without_a_terminal(probed, tmp_path):
    from edgebench.engines.build import build_sweep
    from edgebench.engines.sweep import Sweep

    root, _ = probed
    mixed = tmp_path / "mixed"
    report = build_sweep(Sweep(models={"digits_probe": root / "digits_probe.onnx"}, resolutions=((32, 32),)), mixed)
    assert report.ok
    assert build_sweep(Sweep(("squeezenet1_1", "superpoint"), resolutions=((32, 32),)), mixed).ok
    # and a TensorRT plan copied from a Jetson: its backend is absent here
    from edgebench.engines.backends import get_backend

    trt_missing = not get_backend("tensorrt").available()
    if trt_missing:
        manifest = Manifest.load(mixed)
        probe_entry = manifest.get("digits_probe_1_32_32_fp32")
        (mixed / "digits_probe_2_32_32_fp16.plan").write_bytes(b"a serialized engine")
        manifest.put(dataclasses.replace(
            probe_entry, name="digits_probe_2_32_32_fp16", spec=EngineSpec.parse("digits_probe_2_32_32_fp16"),
            backend="tensorrt", artifact="digits_probe_2_32_32_fp16.plan",
        ))
    done = CliRunner().invoke(cli, ["eval", "--engines", str(mixed), "--data", "digits:test", "--method", "bilinear"])
    assert done.exit_code == 0, done.output
    assert [line.split(":")[0] for line in done.stdout.splitlines()[:1]] == ["digits_probe_1_32_32_fp32"]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 + trt_missing  # one line for each engine that cannot be scored, then the next one
    assert "squeezenet1_1_1_32_32_fp32 scores 1000 classes but the dataset has 10: skipped" in warnings[0]
    assert "superpoint_1_32_32_fp32 takes 1-channel images" in warnings[1] and "skipped" in warnings[1]
    if trt_missing:
        assert "digits_probe_2_32_32_fp16 cannot run here (tensorrt" in warnings[2] and "skipped" in warnings[2]
    # CliRunner's stderr is not a terminal: a line per engine with its time instead of a bar
    assert re.search(r"evaluated digits_probe_1_32_32_fp32 in \d+\.\d\d s \([\d,]+ images/s\)", done.stderr)
    manifest = Manifest.load(mixed)
    assert manifest.get("squeezenet1_1_1_32_32_fp32").accuracy is None  # skipped, not written as 0 %
    assert manifest.get("digits_probe_1_32_32_fp32").accuracy.top1 > 0.5


@pytest.mark.parametrize(
    ("resolution", "message"),
    [("16x16", "too small for squeezenet1_1: its downsampling needs at least 17x17"),
     ("1x1", "too small for squeezenet1_1"), ("99999x99999", "at most 4096")],
)
def test_train_probe_checks_the_resolution_before_onnxruntime_runs(tmp_path, resolution, message):
    # a subprocess: at 16x16 onnxruntime died of SIGFPE (rc -8, no message) inside squeezenet's empty pooling
    done = subprocess.run(
        [*edgebench_argv(), "train-probe", "--backbone", "squeezenet1_1", "--resolution", resolution, "--out",
         str(tmp_path / "p.onnx")], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stderr.strip().splitlines() == [f"edgebench: error: resolution {resolution} is {message}"] or (
        message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "p.onnx").exists()


def test_train_probe_on_a_user_model_too_small_for_it_is_one_line(tmp_path):
    model = _fixed_user_model(tmp_path / "fixed.onnx")
    _pooled_user_model(tmp_path / "pooled.onnx")
    done = subprocess.run(
        [*edgebench_argv(), "train-probe", "--model", str(tmp_path / "pooled.onnx"), "--resolution", "2x2", "--out",
         str(tmp_path / "p.onnx")], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2 and "does not fit pooled" in done.stderr and "would be" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and model.exists()


def _pooled_user_model(path):
    """A user's model with an unpadded 3x3 convolution before its pool: inputs under 3x3 leave nothing."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.ones((4, 3, 3, 3), np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "pooled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.parametrize("kind", ["under a file", "a folder", "a device"])
def test_train_probe_checks_out_before_any_work(tmp_path, kind):
    (tmp_path / "file").write_text("x")
    out = {"under a file": tmp_path / "file" / "sub" / "p.onnx", "a folder": tmp_path, "a device": "/dev/null"}[kind]
    # --data names a file that does not exist: the --out error comes first, so --out is checked before any work
    done = CliRunner().invoke(cli, ["train-probe", "--backbone", "squeezenet1_1", "--data", "nowhere.npz", "--out",
                                    str(out)])
    assert done.exit_code == 2 and "--out" in done.stderr and "nowhere" not in done.stderr, done.output
    if kind != "a folder":  # a folder is click's own usage error (dir_okay=False), also exit 2
        assert len(done.stderr.strip().splitlines()) == 1
