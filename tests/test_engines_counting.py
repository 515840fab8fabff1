import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebench.engines.backbones import BUILTINS, builtin_model
from edgebench.engines.counting import count_cost, count_macs, count_params, fix_input_shape
from edgebench.errors import BadInput


def _model(nodes, inits, in_shape, out_name, opset=17):
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_conv_macs_by_hand():
    # 2x3x8x8 -> Conv 3->4, 3x3, stride 1, pad 1: output 2x4x8x8 = 512 elements, 3*3*3 = 27 MACs each
    w = np.zeros((4, 3, 3, 3), np.float32)
    b = np.zeros(4, np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    model = _model([node], {"w": w, "b": b}, ["batch", 3, "height", "width"], "y")
    cost = count_cost(model, 2, 8, 8)
    assert cost.params == 4 * 3 * 3 * 3 + 4
    assert cost.macs_per_inference == 512 * 27
    assert cost.macs_per_sample == 256 * 27
    assert cost.flops_per_inference == 2 * 512 * 27
    assert cost.flops_per_sample == 256 * 27 * 2


def test_grouped_strided_conv_macs_by_hand():
    # depthwise: 1x6x10x10, group 6, 3x3 stride 2 pad 1 -> 1x6x5x5 = 150 outputs x (6/6)*9
    w = np.zeros((6, 1, 3, 3), np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], group=6)
    model = _model([node], {"w": w}, ["batch", 6, "height", "width"], "y")
    assert count_macs(fix_input_shape(model, 1, 10, 10)) == 150 * 9


def test_gemm_and_matmul_macs_by_hand():
    # Flatten 1x2x3x4 -> 1x24, Gemm with W (5, 24) transB -> 1x5: 5 x 24 MACs; MatMul 1x5 x 5x7: 7 x 5 MACs
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w", "b"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "m"], ["y"]),
    ]
    inits = {"w": np.zeros((5, 24), np.float32), "b": np.zeros(5, np.float32), "m": np.zeros((5, 7), np.float32)}
    model = _model(nodes, inits, ["batch", 2, "height", "width"], "y")
    cost = count_cost(model, 3, 3, 4)
    assert cost.macs_per_sample == 5 * 24 + 7 * 5
    assert cost.macs_per_inference == 3 * (5 * 24 + 7 * 5)
    assert cost.params == 5 * 24 + 5 + 5 * 7


def test_params_exclude_running_stats_clip_bounds_and_integer_tensors():
    c = 4
    inits = {
        "w": np.zeros((c, 3, 1, 1), np.float32),
        "scale": np.ones(c, np.float32), "shift": np.zeros(c, np.float32),
        "mean": np.zeros(c, np.float32), "var": np.ones(c, np.float32),
        "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32),
        "shape": np.array([0, -1], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"]),
        helper.make_node("Clip", ["n", "lo", "hi"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["y"]),
    ]
    model = _model(nodes, inits, ["batch", 3, "height", "width"], "y")
    assert count_params(model) == c * 3 + c + c  # conv weight + BN scale + BN shift


def test_fixed_input_dimension_mismatch_is_bad_input():
    node = helper.make_node("Relu", ["x"], ["y"])
    model = _model([node], {}, [1, 3, 8, 8], "y")
    with pytest.raises(BadInput, match="batch fixed at 1, not 2"):
        fix_input_shape(model, 2, 8, 8)
    assert count_cost(model, 1, 8, 8).macs_per_inference == 0


def test_shape_inference_failure_is_bad_input():
    # a 3x3 valid conv on a 2x2 image cannot exist
    w = np.zeros((1, 3, 3, 3), np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])
    model = _model([node], {"w": w}, ["batch", 3, "height", "width"], "y")
    with pytest.raises(BadInput):
        count_cost(model, 1, 2, 2)


@pytest.mark.parametrize("name", sorted(n for n in BUILTINS if BUILTINS[n].published_params))
def test_builtin_params_equal_published_counts(name):
    # torchvision's published counts (1000 classes) and MagicLeap's SuperPoint, exactly
    published = {
        "resnet18": 11_689_512, "mobilenet_v2": 3_504_872, "squeezenet1_1": 1_235_496,
        "mobilenet_v3_small": 2_542_856, "superpoint": 1_300_865,
    }
    assert count_params(builtin_model(name)) == published[name] == BUILTINS[name].published_params


@pytest.mark.parametrize("name, gmacs", [("resnet18", 1.81), ("mobilenet_v2", 0.30), ("squeezenet1_1", 0.35),
                                         ("mobilenet_v3_small", 0.06)])
def test_builtin_macs_match_torchvision_at_224(name, gmacs):
    # torchvision prints its "GFLOPS" (really GMACs) rounded to 2 decimals: ours must round to the same figure,
    # i.e. lie within +-0.005 GMACs of it
    macs = count_cost(builtin_model(name), 1, 224, 224).macs_per_inference
    assert round(macs / 1e9, 2) == gmacs
    assert abs(macs / 1e9 - gmacs) <= 0.005


def test_macs_scale_with_batch_and_resolution():
    model = builtin_model("squeezenet1_1")
    one = count_cost(model, 1, 64, 64)
    two = count_cost(model, 2, 64, 64)
    assert two.macs_per_inference == 2 * one.macs_per_inference
    assert two.macs_per_sample == one.macs_per_sample
    # superpoint is fully convolutional: MACs exactly proportional to pixels (multiples of 8)
    sp = builtin_model("superpoint")
    assert count_cost(sp, 1, 64, 128).macs_per_inference == 2 * count_cost(sp, 1, 64, 64).macs_per_inference


def test_builtins_are_valid_onnx_with_symbolic_batch_height_width():
    for name in BUILTINS:
        model = builtin_model(name)
        onnx.checker.check_model(model)
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", BUILTINS[name].channels, "height", "width"]
        # opset 13 / IR 7 so TensorRT 8.2 (JetPack 4.6) can parse them: no op newer than opset 13
        assert [o.version for o in model.opset_import] == [13] and model.ir_version == 7
        assert "HardSwish" not in {node.op_type for node in model.graph.node}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_minimum_side_of_each_builtin_goes_through(name):
    side = BUILTINS[name].min_side
    cost = count_cost(builtin_model(name), 1, side, side)
    assert cost.macs_per_inference > 0


@pytest.mark.parametrize(
    "width, mmacs, mparams",
    [(0.35, 59, 1.66), (0.5, 97, 1.95), (0.75, 209, 2.61), (1.3, 509, 5.34), (1.4, 582, 6.06)],
)
def test_mobilenet_v2_width_multipliers_match_the_papers_table(width, mmacs, mparams):
    # MobileNetV2's published table (TF-slim checkpoints, 224x224): MACs to the million; parameters differ by
    # the 1001-class head of slim and its rounding, so within 2 %
    cost = count_cost(builtin_model(f"mobilenet_v2_x{width:g}"), 1, 224, 224)
    assert round(cost.macs_per_inference / 1e6) == mmacs
    assert abs(cost.params / 1e6 - mparams) / mparams < 0.02


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "squeezenet1_1", "mobilenet_v3_small", "superpoint"])
def test_each_builtins_derived_minimum_is_the_real_graphs(name):
    """`BackboneInfo.min_side` comes from the declared downsampling path; the generated graph must agree: shape
    inference and onnxruntime pass at the minimum, and shape inference refuses the side below it."""
    import onnxruntime as ort

    from edgebench.engines.counting import check_input_fits

    info = BUILTINS[name]
    model = builtin_model(name)
    side = info.min_side
    check_input_fits(model, side, side)
    fixed = fix_input_shape(model, 1, side, side)
    session = ort.InferenceSession(fixed.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: np.zeros((1, info.channels, side, side), np.float32)})
    assert all(out.size > 0 and np.isfinite(out).all() for out in outputs)
    below = side - info.multiple  # the next smaller side the backbone's size rules allow
    if below >= 1:
        with pytest.raises(BadInput, match="too small"):
            check_input_fits(model, below, below)
