"""A linear probe: a classifier fitted on a backbone's pooled features and written into its ONNX graph.

The built-in backbones carry generated (untrained) weights, so their 1000 logits classify nothing. A linear probe
makes a model that really classifies without training the backbone: cut the graph at its last global average
pool (the pooled features the original classifier reads), run the training images through it, fit a
multinomial logistic regression (scikit-learn) on the standardised features, and append the fitted layer as one
Gemm, the standardisation folded into its weights. The result is an ordinary ONNX file with symbolic batch,
height and width, built and timed like any `--model`. Its accuracy on held-out images is computed, never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgebench.engines.datasets import STUDY_EXTRA, Dataset, Images, Prepare, Preprocess
from edgebench.errors import BadInput, MissingDependency

if TYPE_CHECKING:
    import onnx
    import onnxruntime as ort

FEATURES = "features"
LOGITS = "logits"
FEATURE_BATCH = 128


@dataclass(frozen=True)
class ProbeResult:
    """A fitted probe and how well it does."""

    path: Path
    source: str  # backbone name or ONNX file it was cut from
    feature_dim: int
    classes: int
    height: int
    width: int
    train_top1: float  # on the images it was fitted on
    train_samples: int
    test_top1: float | None  # on held-out images (None when none were given)
    test_samples: int
    preprocessing: str


def feature_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` that outputs the flattened output of its last GlobalAveragePool as `features`."""
    import onnx
    from onnx import helper

    pools = [node for node in model.graph.node if node.op_type == "GlobalAveragePool"]
    if not pools:
        raise BadInput(
            f"model {model.graph.name!r} has no GlobalAveragePool to read pooled features from: "
            "a probe needs a CNN with global average pooling before its classifier"
        )
    pooled = pools[-1].output[0]
    needed = {pooled}
    keep = []
    for node in reversed(model.graph.node):
        if any(out in needed for out in node.output):
            keep.append(node)
            needed.update(name for name in node.input if name)
    keep.reverse()
    graph = model.graph
    flatten = helper.make_node("Flatten", [pooled], [FEATURES], name="probe_flatten", axis=1)
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    batch = batch_dim.dim_param or batch_dim.dim_value or "batch"
    new_graph = helper.make_graph(
        [*keep, flatten], graph.name, list(graph.input),
        [helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, [batch, None])],
        [init for init in graph.initializer if init.name in needed],
    )
    out = helper.make_model(new_graph, opset_imports=list(model.opset_import), producer_name="edgebench-probe")
    out.ir_version = model.ir_version
    return out


def _fixed_size(model: onnx.ModelProto) -> tuple[int | None, int | None]:
    """The height and width a model's input is fixed at (None where it is symbolic)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise BadInput(f"model input {model.graph.input[0].name!r} has rank {len(dims)}: a probe needs one NCHW image input")
    height, width = (d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims[2:])
    return height, width


def check_model_input(model: onnx.ModelProto, height: int, width: int) -> None:
    """BadInput before any work when a height x width input cannot go through `model`: a fixed input of another
    size (naming the --resolution to give) or a tensor that would be empty (the one resolution check)."""
    from edgebench.engines.spec import check_resolution

    fixed = _fixed_size(model)
    if any(size is not None and size != want for size, want in zip(fixed, (height, width), strict=True)):
        shown = "x".join(str(size) if size is not None else "?" for size in fixed)
        raise BadInput(
            f"the model's input is fixed at {shown}, not {height}x{width}: use --resolution {shown}, or export it "
            "with dynamic height and width"
        )
    check_resolution(None, height, width, model=model)


def _run_batched(session: ort.InferenceSession, output: str, images: Images, prepare: Prepare) -> np.ndarray:
    """`output` for every image, each chunk preprocessed by `prepare` just before it runs (memory stays one chunk
    of inputs whatever the dataset's size), in chunks that fit the model's batch dimension (padded when fixed)."""
    value = session.get_inputs()[0]
    fixed = value.shape[0] if isinstance(value.shape[0], int) else None
    step = fixed or FEATURE_BATCH
    parts = []
    for i in range(0, len(images), step):
        chunk = prepare(images[i : i + step])
        real = len(chunk)
        if fixed and real < fixed:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - real, axis=0)])
        parts.append(session.run([output], {value.name: chunk})[0][:real])
    return np.concatenate(parts)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's Fail / InvalidGraph: the model cannot run here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"onnxruntime cannot load {model.graph.name or 'the model'}: {first}") from None


def extract_features(feature_model: onnx.ModelProto, images: Images, prepare: Prepare) -> np.ndarray:
    """Pooled features (N x D) of `images`, preprocessed chunk by chunk by `prepare`, through onnxruntime on
    the CPU."""
    return _run_batched(_session(feature_model), FEATURES, images, prepare).astype(np.float64)


def fit_linear(
    features: np.ndarray, labels: np.ndarray, c: float = 1.0, classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(weight K x D, bias K) of a multinomial logistic regression on standardised features, the standardisation
    folded in so that logits = features @ weight.T + bias on raw features. K is `classes` (the dataset's class
    count), else the highest label + 1."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise MissingDependency(f"train-probe fits with scikit-learn: {STUDY_EXTRA}") from exc
    if len(np.unique(labels)) < 2:
        raise BadInput("the training images hold one class only: a classifier needs at least two")
    if not np.isfinite(features).all():
        raise BadInput(
            "the backbone's pooled features are not finite on these images (NaN or inf): check the preprocessing "
            "(--mean/--std) and the model"
        )
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std[std < 1e-12] = 1.0  # a constant feature carries nothing; keep it from dividing by zero
    classifier = LogisticRegression(C=c, max_iter=3000)
    classifier.fit((features - mean) / std, labels)
    coef = classifier.coef_
    intercept = classifier.intercept_
    classes = max(classes or 0, int(labels.max()) + 1)
    if coef.shape[0] == 1:  # scikit-learn stores a two-class problem as one row: class 1 against class 0
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    weight = np.zeros((classes, features.shape[1]))
    bias = np.zeros(classes)
    # classes absent from the training labels keep -inf-like logits so they are never predicted
    bias[:] = -1e4
    for row, label in enumerate(classifier.classes_):
        weight[label] = coef[row] / std
        bias[label] = intercept[row] - float(coef[row] @ (mean / std))
    return weight.astype(np.float32), bias.astype(np.float32)


def probe_model(feature_model: onnx.ModelProto, weight: np.ndarray, bias: np.ndarray, name: str) -> onnx.ModelProto:
    """`feature_model` with a Gemm classifier appended: output `logits`, batch x classes."""
    import onnx
    from onnx import helper, numpy_helper

    graph = feature_model.graph
    gemm = helper.make_node("Gemm", [FEATURES, "probe.weight", "probe.bias"], [LOGITS], name="probe_gemm", transB=1)
    batch = graph.output[0].type.tensor_type.shape.dim[0]
    new_graph = helper.make_graph(
        [*graph.node, gemm], name, list(graph.input),
        [helper.make_tensor_value_info(LOGITS, onnx.TensorProto.FLOAT, [batch.dim_param or batch.dim_value, weight.shape[0]])],
        [*graph.initializer, numpy_helper.from_array(weight, "probe.weight"), numpy_helper.from_array(bias, "probe.bias")],
    )
    model = helper.make_model(new_graph, opset_imports=list(feature_model.opset_import), producer_name="edgebench-probe")
    model.ir_version = feature_model.ir_version
    onnx.checker.check_model(model)
    return model


def writable_output(out: Path) -> Path:
    """The file `--out` names, checked before any work: not a folder, a device, a FIFO or a socket; its folder
    created (parents too) and writable. A symlink is written through to its target, never replaced."""
    import os
    import tempfile

    out = Path(out)
    target = Path(os.path.realpath(out)) if out.is_symlink() else out
    if target.is_dir():
        raise BadInput(f"--out {out} is a folder: give a file name, e.g. {out / 'probe.onnx'}")
    if target.exists() and not target.is_file():
        raise BadInput(f"--out {out} is not a regular file (a device, FIFO or socket): give a path for an .onnx file")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BadInput(f"cannot write --out {out}: {folder} is not a writable folder ({reason}); choose another path") from None
    return target


def _save_atomically(model: onnx.ModelProto, target: Path) -> None:
    """Write `model` to `target` through a temporary file in the same folder and a rename: a crash or a full disk
    never leaves half a model under the final name."""
    import os
    import tempfile

    import onnx

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a model is meant to be shared
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BadInput(f"cannot write {target} ({exc.strerror or exc}): free space or choose another --out") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def train_probe(
    model: onnx.ModelProto,
    source: str,
    train: Dataset,
    test: Dataset | None,
    height: int,
    width: int,
    preprocess: Preprocess,
    out: Path,
    c: float = 1.0,
) -> ProbeResult:
    """Fit a probe on `train` at height x width, write the probed model to `out`, and measure its top-1 on
    `train` and on `test` by running the written model (onnxruntime, fp32). The resolution and `out` are checked
    before any image is processed; the probe records what it was fitted on (`ProbeFit`, in its metadata)."""
    from edgebench.engines.provenance import FIT_KEY, ProbeFit

    check_model_input(model, height, width)
    target = writable_output(out)
    if test is not None and test.digest and test.digest == train.digest and not (
        train.part and test.part and train.part != test.part
    ):
        raise BadInput(
            f"the held-out images {test.name} include the training images {train.name}: give the other split, "
            f"e.g. --data {train.source}:train --test {train.source}:test"
        )
    channels = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value or 3

    def prepare(images: Images) -> np.ndarray:
        return preprocess.apply(images, height, width, channels)

    features_model = feature_graph(model)
    features = extract_features(features_model, train.images, prepare)
    weight, bias = fit_linear(features, train.labels, c, classes=train.class_count)
    name = Path(out).stem
    probed = probe_model(features_model, weight, bias, name)
    description = preprocess.describe(height, width, channels)
    fit = ProbeFit(
        dataset=train.name, source=train.source, digest=train.digest, part=train.part, images=len(train),
        description=train.description, method=preprocess.method, mean=tuple(preprocess.mean),
        std=tuple(preprocess.std), channel_order=preprocess.channel_order, height=height, width=width,
    )
    for key, value in (
        ("edgebench.probe.source", source),
        ("edgebench.probe.dataset", train.description),
        ("edgebench.probe.preprocessing", description),
        (FIT_KEY, fit.to_json()),
    ):
        probed.metadata_props.add(key=key, value=value)
    _save_atomically(probed, target)
    train_top1 = _top1(probed, train.images, train.labels, prepare)
    test_top1 = None
    if test is not None and len(test):
        test_top1 = _top1(probed, test.images, test.labels, prepare)
    return ProbeResult(
        path=target, source=source, feature_dim=int(weight.shape[1]), classes=int(weight.shape[0]), height=height,
        width=width, train_top1=train_top1, train_samples=len(train), test_top1=test_top1,
        test_samples=len(test) if test is not None else 0, preprocessing=description,
    )


def _top1(model: onnx.ModelProto, images: Images, labels: np.ndarray, prepare: Prepare) -> float:
    logits = _run_batched(_session(model), LOGITS, images, prepare)
    return float(np.mean(np.argmax(logits, axis=1) == labels))
