"""Parameters and MACs/FLOPs of an ONNX graph at a concrete batch x height x width.

Parameters: the element count of every floating-point initializer that is a weight. Not counted: integer
tensors (shapes, axes, indices), BatchNormalization's running mean and variance (inputs 3 and 4: statistics,
not trained weights; torchvision counts them as buffers, not parameters), and the operand slots that hold
settings rather than weights (Clip min/max, Reshape shape, Resize roi/scales/sizes, Pad pads/value, Slice and
friends). With this rule the built-in backbones give exactly torchvision's published parameter counts.

MACs (multiply-accumulates) are counted for the operators that dominate CNN cost, after ONNX shape inference at
the concrete input shape:
- Conv: output elements x (C_in / group) x kH x kW (bias adds not counted, as torchvision's figures do not);
- ConvTranspose: input elements x (C_out / group) x kH x kW;
- Gemm and MatMul: output elements x K (the shared inner dimension).
Everything else (BatchNormalization, activations, pooling, Add, Mul, Softmax...) is left out: it is memory-bound
and a few percent of the total, and leaving it out is what torchvision, fvcore and most papers do.
FLOPs = 2 x MACs. Torchvision labels its MAC figures "GFLOPS"; edgebench prints both, labelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgebench.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    import onnx

COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")

# (op_type, input index) pairs whose initializers are settings, not weights
_NOT_WEIGHTS: dict[str, tuple[int, ...]] = {
    "BatchNormalization": (3, 4),
    "Clip": (1, 2),
    "Reshape": (1,),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "Pad": (1, 2, 3),
    "Slice": (1, 2, 3, 4),
    "Expand": (1,),
    "Tile": (1,),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
    "ConstantOfShape": (0,),
}
_FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


@dataclass(frozen=True)
class Cost:
    """Parameters and compute of one engine, per inference (the whole batch) and per sample."""

    params: int
    macs_per_inference: int
    batch: int

    @property
    def macs_per_sample(self) -> int:
        return self.macs_per_inference // self.batch

    @property
    def flops_per_inference(self) -> int:
        return 2 * self.macs_per_inference

    @property
    def flops_per_sample(self) -> int:
        return 2 * self.macs_per_sample


def count_params(model: onnx.ModelProto) -> int:
    """Trainable-weight element count of `model` (the rule in this module's docstring)."""
    settings: set[str] = set()
    weight_uses: set[str] = set()
    for node in model.graph.node:
        skip = _NOT_WEIGHTS.get(node.op_type, ())
        for index, name in enumerate(node.input):
            (settings if index in skip else weight_uses).add(name)
    total = 0
    for init in model.graph.initializer:
        if init.data_type not in _FLOAT_TYPES:
            continue
        # an initializer used only in setting slots is not a weight
        if init.name in settings and init.name not in weight_uses:
            continue
        count = 1
        for dim in init.dims:
            count *= dim
        total += count
    return total


def fix_input_shape(model: onnx.ModelProto, batch: int, height: int, width: int) -> onnx.ModelProto:
    """A copy of `model` whose image input is batch x C x height x width, outputs left to shape inference.

    The model must have one 4-D (NCHW) graph input that is not an initializer; a dimension already fixed to a
    different value is BadInput naming it.
    """
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    init_names = {init.name for init in fixed.graph.initializer}
    inputs = [value for value in fixed.graph.input if value.name not in init_names]
    if len(inputs) != 1:
        raise BadInput(
            f"model {fixed.graph.name or '?'} has {len(inputs)} inputs: edgebench builds models with one NCHW image "
            "input"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise BadInput(
            f"model input {inputs[0].name!r} has rank {len(dims)}: edgebench builds models with one NCHW image input"
        )
    for position, (label, value) in enumerate((("batch", batch), (None, None), ("height", height), ("width", width))):
        if label is None:
            continue
        dim = dims[position]
        if dim.HasField("dim_value") and dim.dim_value not in (0, value):
            raise BadInput(
                f"model input {inputs[0].name!r} has its {label} fixed at {dim.dim_value}, not {value}: export it "
                f"with a dynamic {label} (torch.onnx.export(..., dynamic_axes=...)) or sweep {label} {dim.dim_value}"
            )
        dim.Clear()
        dim.dim_value = value
    # stale shapes from the symbolic graph would contradict the concrete ones: let inference redo them
    del fixed.graph.value_info[:]
    for output in fixed.graph.output:
        output.type.tensor_type.ClearField("shape")
    return fixed


def _shape(shapes: dict[str, list[int]], name: str) -> list[int] | None:
    return shapes.get(name)


def _numel(dims: list[int]) -> int:
    total = 1
    for dim in dims:
        total *= dim
    return total


def _inferred_shapes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, list[int]]]:
    """(shape-inferred model, concrete shape of every tensor that has one); BadInput when inference fails or a
    tensor would have a side below 1 (an input too small for the network's downsampling)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # onnx.shape_inference.InferenceError
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"shape inference failed on {model.graph.name or 'the model'}: {message}") from exc
    shapes: dict[str, list[int]] = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in tensor_type.shape.dim):
            dims = [d.dim_value for d in tensor_type.shape.dim]
            if any(dim < 1 for dim in dims):
                # a window larger than its (padded) input: the input is too small for the network's downsampling
                raise BadInput(
                    f"the input shape is too small for {model.graph.name or 'the model'}: tensor {value.name!r} "
                    f"would be {'x'.join(map(str, dims))}; use a larger resolution"
                )
            shapes[value.name] = dims
    return inferred, shapes


def check_input_fits(model: onnx.ModelProto, height: int, width: int) -> None:
    """BadInput naming the tensor when a height x width input cannot go through `model` (some tensor would be
    empty): checked by shape inference, before onnxruntime runs it (an empty pooling window there can kill the
    process with SIGFPE instead of raising)."""
    inputs = [value for value in model.graph.input if value.name not in {i.name for i in model.graph.initializer}]
    dims = inputs[0].type.tensor_type.shape.dim if inputs else []
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else 1
    fixed = fix_input_shape(model, batch, height, width)  # BadInput of its own for a wrong input or fixed size
    try:
        _inferred_shapes(fixed)
    except BadInput as exc:
        raise BadInput(f"resolution {height}x{width} does not fit {model.graph.name or 'the model'}: {exc}") from None


def count_macs(model: onnx.ModelProto) -> int:
    """MACs of one run of a model whose input shape is concrete (see `fix_input_shape`)."""
    inferred, shapes = _inferred_shapes(model)
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)

    total = 0
    for node in inferred.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        out = _shape(shapes, node.output[0])
        weight = _shape(shapes, node.input[1]) if len(node.input) > 1 else None
        first = _shape(shapes, node.input[0])
        if out is None or weight is None or first is None:
            raise BadInput(
                f"cannot count MACs of {node.op_type} node {node.name or node.output[0]!r}: its shapes are unknown "
                "after shape inference; export the model with static shapes apart from batch/height/width"
            )
        if node.op_type == "Conv":
            # weight is (C_out, C_in/group, kH, kW): per output element, C_in/group x kH x kW MACs
            total += _numel(out) * _numel(weight[1:])
        elif node.op_type == "ConvTranspose":
            # weight is (C_in, C_out/group, kH, kW): every input element scatters into C_out/group x k x k outputs
            total += _numel(first) * _numel(weight[1:])
        elif node.op_type == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            k = first[0] if trans_a else first[-1]
            total += _numel(out) * k
        else:  # MatMul: (..., M, K) x (..., K, N)
            total += _numel(out) * first[-1]
    return total


def count_cost(model: onnx.ModelProto, batch: int, height: int, width: int) -> Cost:
    """Parameters and MACs of `model` (symbolic or not) at batch x height x width."""
    fixed = fix_input_shape(model, batch, height, width)
    return Cost(params=count_params(model), macs_per_inference=count_macs(fixed), batch=batch)
