"""ONNX Runtime (CPU) backend: the engine is ORT's optimised graph for one fixed input shape.

Build: fix batch/height/width in the graph, convert to fp16 when asked (float32 inputs and outputs kept, so the
harness feeds the same tensors to every precision), load it in ORT (which validates it) and save the artifact.
fp32 artifacts are ORT's graph optimised at ORT_ENABLE_BASIC (constant folding, Conv+BatchNorm folding,
redundant-node removal): standard ONNX that any ORT build on any CPU can load. EXTENDED/ALL add contrib fused ops
and CPU-layout (NCHWc) rewrites tied to the build machine's instruction set, so those run at load time on the
device instead (the runner uses ALL). fp16 artifacts are the converted graph itself, not ORT's optimised one:
on a CPU without fp16 kernels ORT's optimiser inserts Cast-to-float nodes around every fp16 op and would save
them, pinning the artifact to that CPU's kernel set (the device's CPU or a GPU provider may have fp16 kernels).
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.engines.backends import Availability, module_found
from edgebench.errors import BadInput, EdgebenchError
from edgebench.files import move_into_place

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import onnx

    from edgebench.engines.manifest import ManifestEntry
    from edgebench.engines.runner import RunOptions
    from edgebench.engines.spec import EngineSpec

INPUT_SEED = 1234  # inputs are random but identical for every engine of the same shape
# onnxruntime ships under several distribution names, one per execution provider build
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino", "onnxruntime-silicon")


def _dist_version(distributions: tuple[str, ...], module: str) -> str:
    """The version of the first installed distribution among `distributions`, else the module's __version__."""
    from importlib.metadata import PackageNotFoundError, version

    for name in distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return str(importlib.import_module(module).__version__)


def convert_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 weights and compute with float32 graph inputs/outputs, checked and topologically sorted."""
    import onnx

    try:  # shipped inside the onnxruntime wheel
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:  # some ARM builds of onnxruntime leave the transformers tools out
        try:
            from onnxconverter_common.float16 import convert_float_to_float16
        except ImportError as exc:
            from edgebench.errors import MissingDependency

            raise MissingDependency(
                "fp16 conversion needs onnxruntime.transformers or onnxconverter-common: "
                "pip install onnxconverter-common"
            ) from exc

    converted = convert_float_to_float16(model, keep_io_types=True)
    _topological_sort(converted.graph)
    onnx.checker.check_model(converted)
    return converted


def _topological_sort(graph: onnx.GraphProto) -> None:
    # keep_io_types inserts Cast nodes at the end of the node list although the graph's first node reads
    # their output; ONNX requires producers before consumers, so reorder (Kahn's algorithm, stable).
    available = {value.name for value in graph.input} | {init.name for init in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        remaining = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                remaining.append(node)
        if len(remaining) == len(pending):
            raise EdgebenchError(f"graph {graph.name!r} has a cycle or an undefined input after fp16 conversion")
        pending = remaining
    del graph.node[:]
    graph.node.extend(ordered)


class OnnxRuntimeBackend:
    """CPU inference with onnxruntime's InferenceSession."""

    name = "onnxruntime"
    artifact_suffix = ".onnx"
    build_optimization_level = "basic"
    run_optimization_level = "all"

    def available(self) -> Availability:
        # found, not imported: importing onnxruntime costs a few hundred milliseconds, and a fully cached sweep
        # never runs it (a broken install is reported by the build or runner that imports it)
        if not module_found("onnxruntime"):
            return Availability(False, "onnxruntime is not installed: pip install onnxruntime")
        return Availability(True)

    def versions(self) -> dict[str, str]:
        # read from the installed distributions, not the modules: importing onnx alone takes about a second,
        # and a fully cached sweep needs only these strings for its cache keys
        return {
            "onnxruntime": _dist_version(ORT_DISTRIBUTIONS, "onnxruntime"),
            "onnx": _dist_version(("onnx",), "onnx"),
            "numpy": _dist_version(("numpy",), "numpy"),
        }

    def build_options(self, spec: EngineSpec) -> dict[str, str | int | float | bool]:
        return {
            "graph_optimization_level": self.build_optimization_level,
            "fp16_keep_io_types": spec.precision == "fp16",
            "saved_graph": "ort-basic-optimised" if spec.precision == "fp32" else "fp16-converted",
            "providers": "CPUExecutionProvider",
        }

    def build(self, model: onnx.ModelProto, spec: EngineSpec, artifact: Path, engines_dir: Path) -> None:
        import onnx
        import onnxruntime as ort

        if spec.precision not in ("fp32", "fp16"):
            raise BadInput(f"onnxruntime cannot build {spec.precision}: use fp32 or fp16")
        if spec.precision == "fp16":
            model = convert_fp16(model)
        artifact.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=artifact.parent, prefix=".build-") as tmp:
            source = Path(tmp) / "specialised.onnx"
            onnx.save(model, source)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            partial = Path(tmp) / artifact.name
            if spec.precision == "fp32":
                options.optimized_model_filepath = str(partial)
            else:
                source.replace(partial)
                source = partial
            options.log_severity_level = 3  # keep ORT's own warnings off the user's terminal
            try:
                ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # ORT raises its own Fail/InvalidGraph/RuntimeException types
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise EdgebenchError(f"onnxruntime could not load {spec.name}: {first}") from exc
            move_into_place(partial, artifact)  # edgebench/files.py: special files refused, symlinks followed

    def open_runner(self, engines_dir: Path, entry: ManifestEntry, options: RunOptions) -> OnnxRuntimeRunner:
        return OnnxRuntimeRunner(Path(engines_dir) / entry.artifact, entry, options)


_NUMPY_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}


class OnnxRuntimeRunner:
    """An InferenceSession with its inputs generated once (seeded) and kept in host memory."""

    backend = "onnxruntime"

    def __init__(self, artifact: Path, entry: ManifestEntry, options: RunOptions) -> None:
        import numpy as np
        import onnxruntime as ort

        self.engine = entry.name
        self.batch = entry.spec.batch
        self.options = options
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.log_severity_level = 3
        if options.intra_op_threads is not None:
            session_options.intra_op_num_threads = options.intra_op_threads
        if options.inter_op_threads is not None:
            session_options.inter_op_num_threads = options.inter_op_threads
        if options.spin_wait is not None:
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spin_wait else "0")
        try:
            self.session = ort.InferenceSession(str(artifact), session_options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgebenchError(f"onnxruntime could not load {artifact}: {first}; rebuild with --force") from exc
        # the model's own metadata (a probe's fit record travels in it; see edgebench.engines.provenance)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        rng = np.random.default_rng(INPUT_SEED)
        self.inputs = {}
        for value in self.session.get_inputs():
            if any(not isinstance(dim, int) for dim in value.shape):
                raise BadInput(f"engine {self.engine} input {value.name!r} has a free dimension {value.shape}: rebuild it")
            dtype = _NUMPY_TYPES.get(value.type)
            if dtype is None:
                raise BadInput(f"engine {self.engine} input {value.name!r} has type {value.type}: only float inputs are fed")
            self.inputs[value.name] = rng.standard_normal(value.shape).astype(dtype)
        self.output_names = [value.name for value in self.session.get_outputs()]
        # interrupt() sets its terminate flag from another thread: the run in progress then fails (the harness's
        # time limits and Ctrl-C); ORT's own log line of that failure would only repeat the exception
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4
        self.input_shapes = [tuple(array.shape) for array in self.inputs.values()]  # what infer() takes
        self._binding = None
        if options.io_binding:
            # inputs bound once; outputs bound to CPU memory that ORT allocates on each run
            self._binding = self.session.io_binding()
            for name, array in self.inputs.items():
                self._binding.bind_cpu_input(name, array)
            for name in self.output_names:
                self._binding.bind_output(name, "cpu")
            self.timed_region = (
                "InferenceSession.run_with_iobinding, inputs bound once in host memory, outputs written to host; "
                "no preprocessing"
            )
        else:
            self.timed_region = (
                "InferenceSession.run, inputs already in host memory, outputs returned to host; no preprocessing"
            )
        used = session_options  # the session copies its options; report what was asked and what ORT resolved
        self.settings = {
            "backend": "onnxruntime",
            "onnxruntime_version": ort.__version__,
            "providers": ",".join(self.session.get_providers()),
            "precision": entry.spec.precision,
            "intra_op_threads": used.intra_op_num_threads,  # 0 = ORT's default, one per physical core
            "inter_op_threads": used.inter_op_num_threads,
            "spin_wait": "ort-default" if options.spin_wait is None else options.spin_wait,
            "graph_optimization_level_build": OnnxRuntimeBackend.build_optimization_level,
            "graph_optimization_level_run": OnnxRuntimeBackend.run_optimization_level,
            "execution_mode": "sequential",
            "include_copies": False,  # host memory is the device's memory on the CPU provider: no copies exist
            "io_binding": options.io_binding,
        }

    def run_once(self) -> None:
        if self._binding is not None:
            self.session.run_with_iobinding(self._binding, self._run_options)
        else:
            self.session.run(self.output_names, self.inputs, self._run_options)

    def interrupt(self) -> None:
        """Stop a run_once() in progress, from another thread: it raises; later runs fail at once."""
        self._run_options.terminate = True

    def outputs(self) -> list:
        """One run's outputs as numpy arrays (for checks, not timed), through the same path as run_once."""
        if self._binding is not None:
            self.session.run_with_iobinding(self._binding)
            return self._binding.copy_outputs_to_cpu()
        return self.session.run(self.output_names, self.inputs)

    def infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs for the given inputs (one array per graph input, in order), each cast to the engine's input
        type; not timed (`edgebench eval` feeds a dataset through it)."""
        names = list(self.inputs)
        if len(arrays) != len(names):
            raise BadInput(f"engine {self.engine} takes {len(names)} input(s), got {len(arrays)}")
        feed = {name: array.astype(self.inputs[name].dtype, copy=False) for name, array in zip(names, arrays, strict=True)}
        return self.session.run(self.output_names, feed)

    def close(self) -> None:
        self._binding = None
        self.session = None
        self.inputs = {}


BACKEND = OnnxRuntimeBackend()
