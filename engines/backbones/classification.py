"""torchvision's resnet18, mobilenet_v2, squeezenet1_1 and mobilenet_v3_small, layer for layer, as ONNX."""

from __future__ import annotations

import onnx

from edgebench.engines.backbones.graph import GraphBuilder

NUM_CLASSES = 1000


def _make_divisible(value: float, divisor: int = 8) -> int:
    # torchvision's rounding of channel counts (from the original TensorFlow MobileNet code)
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _head(g: GraphBuilder, x: str, channels: int) -> str:
    # GlobalAveragePool keeps height and width symbolic (torch's AdaptiveAvgPool2d(1) + flatten)
    pooled = g.node("GlobalAveragePool", [x])
    return g.node("Flatten", [pooled], axis=1)


def resnet18() -> onnx.ModelProto:
    g = GraphBuilder("resnet18", 3)
    x = g.relu(g.bn(g.conv("input", 3, 64, 7, stride=2, pad=3), 64))
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            identity = x
            out = g.relu(g.bn(g.conv(x, c_in, c_out, 3, stride=s), c_out))
            out = g.bn(g.conv(out, c_out, c_out, 3), c_out)
            if s != 1 or c_in != c_out:
                identity = g.bn(g.conv(x, c_in, c_out, 1, stride=s, pad=0), c_out)
            x = g.relu(g.node("Add", [out, identity]))
            c_in = c_out
    g.output(g.linear(_head(g, x, 512), 512, NUM_CLASSES), "logits", NUM_CLASSES)
    return g.model()


def mobilenet_v2(width: float = 1.0, name: str = "mobilenet_v2") -> onnx.ModelProto:
    """torchvision's MobileNetV2(width_mult=width): every layer's channels scaled and rounded to multiples of 8,
    the last 1x1 conv kept at 1280 unless the width exceeds 1."""
    g = GraphBuilder(name, 3)
    first = _make_divisible(32 * width)
    last = _make_divisible(1280 * max(1.0, width))
    x = g.relu6(g.bn(g.conv("input", 3, first, 3, stride=2), first))
    c_in = first
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        c_out = _make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = round(c_in * t)
            out = x
            if t != 1:
                out = g.relu6(g.bn(g.conv(out, c_in, hidden, 1), hidden))
            out = g.relu6(g.bn(g.conv(out, hidden, hidden, 3, stride=stride, groups=hidden), hidden))
            out = g.bn(g.conv(out, hidden, c_out, 1), c_out)
            x = g.node("Add", [x, out]) if stride == 1 and c_in == c_out else out
            c_in = c_out
    x = g.relu6(g.bn(g.conv(x, c_in, last, 1), last))
    g.output(g.linear(_head(g, x, last), last, NUM_CLASSES), "logits", NUM_CLASSES)
    return g.model()


def squeezenet1_1() -> onnx.ModelProto:
    g = GraphBuilder("squeezenet1_1", 3)

    def pool(x: str) -> str:
        return g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)

    def fire(x: str, c_in: int, squeeze: int, e1: int, e3: int) -> str:
        s = g.relu(g.conv(x, c_in, squeeze, 1, pad=0, bias=True))
        a = g.relu(g.conv(s, squeeze, e1, 1, pad=0, bias=True))
        b = g.relu(g.conv(s, squeeze, e3, 3, pad=1, bias=True))
        return g.node("Concat", [a, b], axis=1)

    x = pool(g.relu(g.conv("input", 3, 64, 3, stride=2, pad=0, bias=True)))
    x = fire(x, 64, 16, 64, 64)
    x = pool(fire(x, 128, 16, 64, 64))
    x = fire(x, 128, 32, 128, 128)
    x = pool(fire(x, 256, 32, 128, 128))
    x = fire(x, 256, 48, 192, 192)
    x = fire(x, 384, 48, 192, 192)
    x = fire(x, 384, 64, 256, 256)
    x = fire(x, 512, 64, 256, 256)
    x = g.relu(g.conv(x, 512, NUM_CLASSES, 1, pad=0, bias=True))
    g.output(_head(g, x, NUM_CLASSES), "logits", NUM_CLASSES)
    return g.model()


def mobilenet_v3_small() -> onnx.ModelProto:
    g = GraphBuilder("mobilenet_v3_small", 3)
    x = g.hardswish(g.bn(g.conv("input", 3, 16, 3, stride=2), 16))
    # (input, kernel, expanded, output, squeeze-excite, activation, stride): torchvision's bneck table
    table = (
        (16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
        (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
        (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1), (48, 5, 288, 96, True, "HS", 2),
        (96, 5, 576, 96, True, "HS", 1), (96, 5, 576, 96, True, "HS", 1),
    )
    for c_in, k, exp, c_out, se, act, stride in table:
        activate = g.relu if act == "RE" else g.hardswish
        out = x
        if exp != c_in:
            out = activate(g.bn(g.conv(out, c_in, exp, 1), exp))
        out = activate(g.bn(g.conv(out, exp, exp, k, stride=stride, groups=exp), exp))
        if se:
            squeeze = _make_divisible(exp // 4)
            s = g.node("GlobalAveragePool", [out])
            s = g.relu(g.conv(s, exp, squeeze, 1, pad=0, bias=True))
            s = g.hardsigmoid(g.conv(s, squeeze, exp, 1, pad=0, bias=True))
            out = g.node("Mul", [out, s])
        out = g.bn(g.conv(out, exp, c_out, 1), c_out)
        x = g.node("Add", [x, out]) if stride == 1 and c_in == c_out else out
    x = g.hardswish(g.bn(g.conv(x, 96, 576, 1), 576))
    x = g.hardswish(g.linear(_head(g, x, 576), 576, 1024))
    g.output(g.linear(x, 1024, NUM_CLASSES), "logits", NUM_CLASSES)
    return g.model()


_BUILDERS = {
    "resnet18": resnet18,
    "mobilenet_v2": mobilenet_v2,
    "squeezenet1_1": squeezenet1_1,
    "mobilenet_v3_small": mobilenet_v3_small,
}


# mobilenet_v2 at the other width multipliers (backbones/__init__.py MOBILENET_V2_WIDTHS)
WIDTH_PREFIX = "mobilenet_v2_x"


def build(name: str) -> onnx.ModelProto:
    """The named classification backbone."""
    if name.startswith(WIDTH_PREFIX):
        return mobilenet_v2(float(name[len(WIDTH_PREFIX):]), name)
    return _BUILDERS[name]()
