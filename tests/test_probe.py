"""The linear probe's parts on a small hand-built CNN (fast; `train-probe` end to end on a real backbone is in
test_eval.py, in the slow lane): the graph cut at the last global average pool, the fitted layer folded into the
graph, its logits equal to the fitted weights applied to the features, and held-out images classified."""

import numpy as np
import pytest

from edgebench.engines.probe import extract_features, feature_graph, fit_linear, probe_model
from edgebench.errors import BadInput

onnx = pytest.importorskip("onnx")
pytest.importorskip("sklearn", reason="scikit-learn not installed: pip install 'edgebench[study]'")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _cnn(with_pool=True):
    """3x8x8 images -> Conv(4 filters, 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(10 logits)."""
    rng = np.random.default_rng(7)
    conv_w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    conv_w[0] = np.abs(conv_w[0])  # filter 0 grows with brightness: the classes below differ in it
    fc_w = rng.normal(size=(10, 4)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "conv.w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"])]
    if with_pool:
        nodes += [helper.make_node("GlobalAveragePool", ["r"], ["p"]), helper.make_node("Flatten", ["p"], ["f"])]
    else:
        nodes += [helper.make_node("ReduceMean", ["r"], ["f"], axes=[2, 3], keepdims=0)]
    nodes.append(helper.make_node("Gemm", ["f", "fc.w"], ["y"], transB=1))
    graph = helper.make_graph(
        nodes, "tiny_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(conv_w, "conv.w"), numpy_helper.from_array(fc_w, "fc.w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _images(rng, n_per_class):
    """Three classes of noisy images told apart by their brightness."""
    x = [rng.normal(loc=level, scale=0.1, size=(n_per_class, 3, 8, 8)) for level in (0.2, 1.0, 2.0)]
    labels = np.repeat(np.arange(3), n_per_class)
    return np.concatenate(x).astype(np.float32), labels


def test_a_probe_on_the_pooled_features_classifies_held_out_images():
    import onnxruntime as ort

    features_model = feature_graph(_cnn())
    assert [o.name for o in features_model.graph.output] == ["features"]
    assert "Gemm" not in {n.op_type for n in features_model.graph.node}  # the old classifier is cut away
    rng = np.random.default_rng(11)
    train_x, train_y = _images(rng, 30)
    features = extract_features(features_model, train_x, lambda chunk: chunk)
    assert features.shape == (90, 4)
    weight, bias = fit_linear(features, train_y)
    assert weight.shape == (3, 4) and bias.shape == (3,)
    model = probe_model(features_model, weight, bias, "tiny_probe")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    test_x, test_y = _images(rng, 20)
    logits = session.run(["logits"], {"x": test_x})[0]
    # the appended Gemm is the fitted layer: logits = features @ weight.T + bias
    expected = extract_features(features_model, test_x, lambda chunk: chunk) @ weight.T.astype(np.float64) + bias
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-3)
    assert (logits.argmax(axis=1) == test_y).mean() == 1.0


def test_a_model_without_global_pooling_or_a_single_class_is_refused():
    with pytest.raises(BadInput, match="GlobalAveragePool"):
        feature_graph(_cnn(with_pool=False))
    with pytest.raises(BadInput, match="one class"):
        fit_linear(np.ones((5, 4)), np.zeros(5, dtype=int))
