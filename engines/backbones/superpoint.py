"""SuperPoint (DeTone et al., 2018) as MagicLeap's pretrained network defines it: 1,300,865 parameters.

Shared VGG-style encoder on a 1-channel image (three 2x2 max-pools: 8x8 cells), a detector head giving a
softmax over 65 channels (64 cell positions + the "no keypoint" dustbin) and a descriptor head giving 256-d
L2-normalised descriptors per cell. The dustbin is kept and no pixel-shuffle is applied: those are cheap
post-processing steps outside the network proper.
"""

from __future__ import annotations

import onnx

from edgebench.engines.backbones.graph import GraphBuilder


def build(name: str = "superpoint") -> onnx.ModelProto:
    g = GraphBuilder(name, 1, input_name="image")
    x = "image"
    c_in = 1
    for stage, c_out in enumerate((64, 64, 128, 128)):
        x = g.relu(g.conv(x, c_in, c_out, 3, bias=True))
        x = g.relu(g.conv(x, c_out, c_out, 3, bias=True))
        c_in = c_out
        if stage < 3:
            x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    semi = g.conv(g.relu(g.conv(x, 128, 256, 3, bias=True)), 256, 65, 1, pad=0, bias=True)
    g.output(g.node("Softmax", [semi], axis=1), "scores", 65, rank=4)
    desc = g.conv(g.relu(g.conv(x, 128, 256, 3, bias=True)), 256, 256, 1, pad=0, bias=True)
    g.output(g.node("LpNormalization", [desc], axis=1, p=2), "descriptors", 256, rank=4)
    return g.model()
