"""A small ONNX graph builder: layers the way torchvision writes them, weights He-initialised from a seed."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgebench.engines.backbones import INPUT_DIMS, IR_VERSION, OPSET, SEED


class GraphBuilder:
    """Accumulates nodes and initializers; each layer method returns the name of its output tensor."""

    def __init__(self, name: str, channels: int, input_name: str = "input") -> None:
        self.name = name
        self.rng = np.random.default_rng(SEED)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.counter = 0
        self.input = helper.make_tensor_value_info(
            input_name, TensorProto.FLOAT, ["batch", channels, INPUT_DIMS[2], INPUT_DIMS[3]]
        )
        self.outputs: list[onnx.ValueInfoProto] = []

    def _fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def constant(self, name: str, array: np.ndarray) -> str:
        """Add an initializer and return its name."""
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], prefix: str | None = None, **attrs: Any) -> str:
        """Add one node with a single output."""
        out = self._fresh(prefix or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(
        self, x: str, c_in: int, c_out: int, k: int, stride: int = 1, pad: int | None = None, groups: int = 1,
        bias: bool = False,
    ) -> str:
        """Conv2d (torchvision's padding (k-1)//2 unless given), He-normal weights (fan_out, as torchvision)."""
        pad = (k - 1) // 2 if pad is None else pad
        base = self._fresh("conv")
        fan_out = c_out * k * k // groups
        weight = self.rng.standard_normal((c_out, c_in // groups, k, k), dtype=np.float32) * np.float32(
            np.sqrt(2.0 / fan_out)
        )
        inputs = [x, self.constant(f"{base}.weight", weight)]
        if bias:
            inputs.append(self.constant(f"{base}.bias", np.zeros(c_out, np.float32)))
        self.nodes.append(
            helper.make_node(
                "Conv", inputs, [base], name=base, kernel_shape=[k, k], strides=[stride, stride],
                pads=[pad, pad, pad, pad], group=groups,
            )
        )
        return base

    def bn(self, x: str, channels: int) -> str:
        """BatchNormalization in inference form; ORT folds it into the preceding Conv."""
        base = self._fresh("bn")
        scale = self.constant(f"{base}.weight", np.ones(channels, np.float32))
        shift = self.constant(f"{base}.bias", np.zeros(channels, np.float32))
        mean = self.constant(f"{base}.running_mean", np.zeros(channels, np.float32))
        var = self.constant(f"{base}.running_var", np.ones(channels, np.float32))
        self.nodes.append(
            helper.make_node("BatchNormalization", [x, scale, shift, mean, var], [base], name=base, epsilon=1e-5)
        )
        return base

    def relu(self, x: str) -> str:
        return self.node("Relu", [x])

    def relu6(self, x: str) -> str:
        lo = self.constant(self._fresh("clip_min"), np.array(0.0, np.float32))
        hi = self.constant(self._fresh("clip_max"), np.array(6.0, np.float32))
        return self.node("Clip", [x, lo, hi], prefix="relu6")

    def hardswish(self, x: str) -> str:
        # torch's hardswish x * relu6(x + 3) / 6, spelled for opset 13 (ONNX HardSwish arrived in opset 14)
        return self.node("Mul", [x, self.hardsigmoid(x)], prefix="hardswish")

    def hardsigmoid(self, x: str) -> str:
        # torch's hardsigmoid is relu6(x + 3) / 6: alpha 1/6, beta 0.5
        return self.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)

    def linear(self, x: str, c_in: int, c_out: int) -> str:
        """nn.Linear as Gemm(transB=1); x must be 2-D."""
        base = self._fresh("fc")
        bound = 1.0 / np.sqrt(c_in)
        weight = self.rng.uniform(-bound, bound, (c_out, c_in)).astype(np.float32)
        w = self.constant(f"{base}.weight", weight)
        b = self.constant(f"{base}.bias", np.zeros(c_out, np.float32))
        self.nodes.append(helper.make_node("Gemm", [x, w, b], [base], name=base, transB=1))
        return base

    def output(self, x: str, name: str, channels: int | None = None, rank: int = 2) -> None:
        """Rename tensor `x` to a graph output `name`."""
        self.nodes.append(helper.make_node("Identity", [x], [name], name=f"{name}_out"))
        dims: list[int | str | None] = ["batch", channels] + [None] * (rank - 2)
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))

    def model(self) -> onnx.ModelProto:
        """The finished, checked model."""
        graph = helper.make_graph(self.nodes, self.name, [self.input], self.outputs, self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgebench", ir_version=IR_VERSION
        )
        onnx.checker.check_model(model)
        return model
