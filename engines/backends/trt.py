"""TensorRT backend: an ONNX model parsed and built into a serialized plan for one fixed input shape.

Written against TensorRT 8.x (JetPack 4.6-6.0) and 10.x: explicit-batch networks (the flag only where it still
exists), the ONNX parser with its errors reported, a workspace memory-pool limit, the FP16 builder flag where
present (TensorRT 11 dropped it: an fp16 ONNX graph is built "strongly typed" instead), an optimisation profile
when an input is still dynamic, and a timing cache kept in the engines directory and reused by later builds
(building is slow on a Jetson). Runners use pycuda: page-locked host buffers, device buffers and one stream;
TensorRT 10's tensor API (set_tensor_address + execute_async_v3) or TensorRT 8's bindings (execute_async_v2).

Everything is imported lazily: machines without TensorRT can still import edgebench and build ONNX Runtime
engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from edgebench.engines.backends import Availability
from edgebench.errors import BadInput, EdgebenchError
from edgebench.files import write_atomic

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import onnx

    from edgebench.engines.manifest import ManifestEntry
    from edgebench.engines.runner import RunOptions
    from edgebench.engines.spec import EngineSpec

NOT_INSTALLED = (
    "tensorrt not installed: on a Jetson it comes with JetPack (python3-libnvinfer); "
    "on x86 `pip install edgebench[tensorrt]`"
)
NO_PYCUDA = "pycuda not installed: TensorRT engines need it for GPU buffers (`pip install pycuda`; on a Jetson "
NO_PYCUDA += "it builds against JetPack's CUDA)"
WORKSPACE_BYTES = 1 << 30  # 1 GiB: enough tactics for these backbones, and fits a 4 GB Jetson Nano
TIMING_CACHE = "tensorrt.timing.cache"
INPUT_SEED = 1234  # same seed as the onnxruntime runner: the same inputs for every backend


def _trt() -> ModuleType:
    try:
        import tensorrt
    except ImportError as exc:
        from edgebench.errors import MissingDependency

        raise MissingDependency(NOT_INSTALLED) from exc
    return tensorrt


def _has_fp16_flag(trt: ModuleType) -> bool:
    return hasattr(trt.BuilderFlag, "FP16")


class TensorRTBackend:
    """NVIDIA GPUs and Jetsons through TensorRT."""

    name = "tensorrt"
    artifact_suffix = ".plan"

    def available(self) -> Availability:
        from edgebench.engines.backends import module_found

        # absent packages are found absent without an import; present ones are imported, since only loading
        # libnvinfer and asking the CUDA driver tells whether this machine can run an engine
        if not module_found("tensorrt"):
            return Availability(False, NOT_INSTALLED)
        if not module_found("pycuda"):
            return Availability(False, NO_PYCUDA)
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return Availability(False, NOT_INSTALLED)
        except OSError as exc:  # the module exists but libnvinfer cannot be loaded
            return Availability(False, f"tensorrt is installed but its libraries do not load ({exc}): check CUDA")
        try:
            import pycuda.driver as cuda
        except ImportError:
            return Availability(False, NO_PYCUDA)
        try:
            cuda.init()
            if cuda.Device.count() < 1:
                return Availability(False, "no CUDA device found: TensorRT engines need an NVIDIA GPU")
        except Exception as exc:  # pycuda.driver.Error: no driver, no device
            return Availability(False, f"CUDA is not usable here ({exc}): check the NVIDIA driver")
        return Availability(True)

    def versions(self) -> dict[str, str]:
        trt = _trt()
        versions = {"tensorrt": trt.__version__}
        try:
            import pycuda.driver as cuda

            driver = cuda.get_driver_version()  # CUDA encodes 12.2 as 12020
            versions["cuda_driver"] = f"{driver // 1000}.{driver % 1000 // 10}"
            cuda.init()
            versions["gpu"] = cuda.Device(0).name()
        except Exception:  # versions are informative: a missing driver is reported by available()
            pass
        return versions

    def build_options(self, spec: EngineSpec) -> dict[str, str | int | float | bool]:
        trt = _trt()
        return {
            "workspace_bytes": WORKSPACE_BYTES,
            "fp16_flag": spec.precision == "fp16" and _has_fp16_flag(trt),
            "strongly_typed_fp16": spec.precision == "fp16" and not _has_fp16_flag(trt),
            "timing_cache": TIMING_CACHE,
        }

    def build(self, model: onnx.ModelProto, spec: EngineSpec, artifact: Path, engines_dir: Path) -> None:
        trt = _trt()
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        flags = 0
        creation = trt.NetworkDefinitionCreationFlag
        if hasattr(creation, "EXPLICIT_BATCH"):  # TensorRT 8.x; ignored/deprecated in 10, gone later
            flags |= 1 << int(creation.EXPLICIT_BATCH)
        strongly_typed = spec.precision == "fp16" and not _has_fp16_flag(trt)
        if spec.precision == "fp16":
            if not getattr(builder, "platform_has_fast_fp16", True):
                raise BadInput(f"this GPU has no fast fp16, so TensorRT cannot build {spec.name}: sweep fp32 only")
            if strongly_typed:
                from edgebench.engines.backends.ort import convert_fp16

                model = convert_fp16(model)
                flags |= 1 << int(creation.STRONGLY_TYPED)
        elif spec.precision != "fp32":
            raise BadInput(f"TensorRT cannot build {spec.precision} here: use fp32 or fp16")
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model.SerializeToString()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EdgebenchError(f"TensorRT's ONNX parser rejected {spec.name}: {errors or 'no details'}")

        config = builder.create_builder_config()
        if hasattr(config, "set_memory_pool_limit"):  # TensorRT >= 8.4
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        else:  # pragma: no cover - TensorRT 8.2 (JetPack 4.6)
            config.max_workspace_size = WORKSPACE_BYTES
        if spec.precision == "fp16" and not strongly_typed:
            config.set_flag(trt.BuilderFlag.FP16)

        # the ONNX graph arrives with batch/height/width fixed; a still-dynamic input gets a one-point profile
        dynamic = [network.get_input(i) for i in range(network.num_inputs) if -1 in tuple(network.get_input(i).shape)]
        if dynamic:
            profile = builder.create_optimization_profile()
            for tensor in dynamic:
                shape = _concrete_shape(tuple(tensor.shape), spec)
                profile.set_shape(tensor.name, shape, shape, shape)
            config.add_optimization_profile(profile)

        cache_path = Path(engines_dir) / TIMING_CACHE
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EdgebenchError(f"TensorRT could not build {spec.name}: see the TensorRT messages above")
        _atomic_write(artifact, bytes(serialized))
        _atomic_write(cache_path, bytes(config.get_timing_cache().serialize()))

    def open_runner(self, engines_dir: Path, entry: ManifestEntry, options: RunOptions) -> TensorRTRunner:
        return TensorRTRunner(Path(engines_dir) / entry.artifact, entry, options)


def _concrete_shape(shape: tuple[int, ...], spec: EngineSpec) -> tuple[int, ...]:
    # NCHW: -1 in batch/height/width positions takes the spec's value; any other free dimension is an error
    fill = {0: spec.batch, 2: spec.height, 3: spec.width}
    out = []
    for position, dim in enumerate(shape):
        if dim >= 0:
            out.append(dim)
        elif position in fill:
            out.append(fill[position])
        else:
            raise BadInput(f"input dimension {position} of {spec.backbone} is dynamic: fix it when exporting the ONNX")
    return tuple(out)


def _atomic_write(path: Path, data: bytes) -> None:
    write_atomic(path, data)  # edgebench/files.py: special files refused, symlinks followed


class TensorRTRunner:
    """A deserialized engine with its buffers allocated and inputs (seeded) already in GPU memory.

    pycuda contexts are per thread: call run_once() from the thread that opened the runner.
    """

    backend = "tensorrt"

    def __init__(self, artifact: Path, entry: ManifestEntry, options: RunOptions) -> None:
        import numpy as np
        import pycuda.driver as cuda

        trt = _trt()
        self._cuda = cuda
        self.engine = entry.name
        self.batch = entry.spec.batch
        self.include_copies = options.include_copies
        cuda.init()
        # spin-wait vs blocking sync is a CUDA context flag: it changes CPU use (and power) while waiting
        if options.spin_wait is None:
            flags, sync = cuda.ctx_flags.SCHED_AUTO, "cuda-auto"
        elif options.spin_wait:
            flags, sync = cuda.ctx_flags.SCHED_SPIN, "spin"
        else:
            flags, sync = cuda.ctx_flags.SCHED_BLOCKING_SYNC, "blocking"
        self._ctx = cuda.Device(options.device_id).make_context(flags)
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)  # must outlive the runtime
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(artifact.read_bytes())
            if self._engine is None:
                raise EdgebenchError(
                    f"TensorRT could not load {artifact} (built by another TensorRT version or GPU?): rebuild it "
                    "on this device with `edgebench build-engines --backend tensorrt --force`"
                )
            self._context = self._engine.create_execution_context()
            self._stream = cuda.Stream()
            self._tensor_api = hasattr(self._engine, "num_io_tensors") and hasattr(self._context, "execute_async_v3")
            rng = np.random.default_rng(INPUT_SEED)
            # (host, device): a page-locked numpy array and pycuda's DeviceAllocation (pycuda is untyped)
            self._inputs: list[tuple[np.ndarray, Any]] = []
            self._outputs: list[tuple[np.ndarray, Any]] = []
            self._bindings: list[int] = []
            self._output_shapes: list[tuple[int, ...]] = []
            self.input_shapes: list[tuple[int, ...]] = []  # what infer() takes
            for name, is_input, shape, dtype in self._io(trt, entry):
                (self.input_shapes if is_input else self._output_shapes).append(tuple(shape))
                host = cuda.pagelocked_empty(int(np.prod(shape)), dtype)
                device = cuda.mem_alloc(host.nbytes)
                if is_input:
                    host[:] = rng.standard_normal(host.size).astype(dtype)
                    cuda.memcpy_htod(device, host)  # inputs live on the GPU unless copies are timed
                    self._inputs.append((host, device))
                else:
                    self._outputs.append((host, device))
                if self._tensor_api:
                    self._context.set_tensor_address(name, int(device))
                self._bindings.append(int(device))
        except BaseException:
            self._ctx.pop()
            self._ctx.detach()
            raise
        execute = "execute_async_v3" if self._tensor_api else "execute_async_v2"
        if self.include_copies:
            self.timed_region = (
                f"host->device input copies, {execute}, device->host output copies on one CUDA stream, then "
                "stream.synchronize(); inputs in page-locked host memory; no preprocessing"
            )
        else:
            self.timed_region = (
                f"{execute} on one CUDA stream, then stream.synchronize(); inputs already on the GPU and outputs "
                "left there; no preprocessing"
            )
        self.settings = {
            "backend": "tensorrt",
            "tensorrt_version": trt.__version__,
            "precision": entry.spec.precision,
            "device_id": options.device_id,
            "gpu": cuda.Device(options.device_id).name(),
            "include_copies": self.include_copies,
            "cuda_sync": sync,
            "spin_wait": options.spin_wait if options.spin_wait is not None else "cuda-auto",
            "api": "tensors/execute_async_v3" if self._tensor_api else "bindings/execute_async_v2",
        }

    def _io(self, trt: ModuleType, entry: ManifestEntry) -> Iterator[tuple[str, bool, tuple[int, ...], type]]:
        """(name, is_input, shape, numpy dtype) of each I/O tensor, setting input shapes where dynamic."""
        engine, context = self._engine, self._context
        if self._tensor_api:
            for index in range(engine.num_io_tensors):
                name = engine.get_tensor_name(index)
                is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                if is_input and -1 in tuple(engine.get_tensor_shape(name)):
                    context.set_input_shape(name, _concrete_shape(tuple(engine.get_tensor_shape(name)), entry.spec))
            for index in range(engine.num_io_tensors):
                name = engine.get_tensor_name(index)
                is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                yield name, is_input, tuple(context.get_tensor_shape(name)), trt.nptype(engine.get_tensor_dtype(name))
        else:  # pragma: no cover - TensorRT 8.x before the tensor API
            for index in range(engine.num_bindings):
                if engine.binding_is_input(index) and -1 in tuple(engine.get_binding_shape(index)):
                    context.set_binding_shape(index, _concrete_shape(tuple(engine.get_binding_shape(index)), entry.spec))
            for index in range(engine.num_bindings):
                yield (
                    engine.get_binding_name(index), engine.binding_is_input(index),
                    tuple(context.get_binding_shape(index)), trt.nptype(engine.get_binding_dtype(index)),
                )

    def run_once(self) -> None:
        cuda = self._cuda
        if self.include_copies:
            for host, device in self._inputs:
                cuda.memcpy_htod_async(device, host, self._stream)
        if self._tensor_api:
            self._context.execute_async_v3(self._stream.handle)
        else:
            self._context.execute_async_v2(self._bindings, self._stream.handle)
        if self.include_copies:
            for host, device in self._outputs:
                cuda.memcpy_dtoh_async(host, device, self._stream)
        self._stream.synchronize()  # without it the timing would measure the enqueue only

    def outputs(self) -> list:
        """One run's outputs copied to host (for checks, not timed)."""
        self.run_once()
        for host, device in self._outputs:
            self._cuda.memcpy_dtoh(host, device)
        return [host.copy() for host, _ in self._outputs]

    def infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs for the given inputs (one host array per engine input, in order, cast to the engine's input
        type: fp16 for a strongly typed fp16 engine), copied in and out; not timed (`edgebench eval`)."""
        cuda = self._cuda
        if len(arrays) != len(self._inputs):
            raise BadInput(f"engine {self.engine} takes {len(self._inputs)} input(s), got {len(arrays)}")
        for (host, device), array in zip(self._inputs, arrays, strict=True):
            if array.size != host.size:
                raise BadInput(f"engine {self.engine}: an input of {array.size} values does not fit {host.size}")
            host[:] = array.ravel().astype(host.dtype, copy=False)
            cuda.memcpy_htod_async(device, host, self._stream)
        if self._tensor_api:
            self._context.execute_async_v3(self._stream.handle)
        else:
            self._context.execute_async_v2(self._bindings, self._stream.handle)
        for host, device in self._outputs:
            cuda.memcpy_dtoh_async(host, device, self._stream)
        self._stream.synchronize()
        return [host.copy().reshape(shape) for (host, _), shape in zip(self._outputs, self._output_shapes, strict=True)]

    def close(self) -> None:
        for _, device in self._inputs + self._outputs:
            device.free()
        self._inputs, self._outputs = [], []
        # TensorRT objects and the stream must die while their CUDA context is still current
        self._context = None
        self._engine = None
        self._stream = None
        self._ctx.pop()
        self._ctx.detach()


BACKEND = TensorRTBackend()
