"""Machine metadata that explains a timing: CPU, clocks, memory, OS, versions, Jetson power mode, temperatures.

Like pyperf's `collect_metadata`, small `collect_*` functions each add keys to one flat dict and skip silently
when their source is missing (a file that does not exist, a tool that is not installed, a value the kernel
refuses to give). Only OSError, ValueError and subprocess errors are treated as "missing": anything else is a bug
and propagates. Every file is read under an injectable `root` (default "/") so tests can build a fake sysfs tree.

Keys are dotted and carry their unit: "cpu.model", "cpu.cores.logical", "cpufreq.cpu0.cur_khz",
"mem.total_bytes", "jetson.nvpmodel", "gpu.freq.cur_hz", "temp.cpu_c".
"""

from __future__ import annotations

import glob
import importlib.metadata
import platform
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

MetaDict = dict[str, "str | int | float | bool"]

THROTTLE_TEMP_C = 85.0  # Jetson modules start throttling in the high 80s to 90s (C); warn before that
# Zones that report a constant or non-die figure: the Nano's "PMIC-Die" always reads 100.0 C.
HOT_CHECK_SKIPS = ("pmic",)
FREQ_DROP = 0.95  # current below 95 % of max under the performance governor counts as capped
COMMAND_TIMEOUT_S = 5.0

# ARM "CPU part" ids (implementer 0x41 ARM, 0x4e NVIDIA) for boards whose model name says only "ARMv8 Processor".
ARM_PARTS = {
    ("0x41", "0xd03"): "Cortex-A53",
    ("0x41", "0xd04"): "Cortex-A35",
    ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57",
    ("0x41", "0xd08"): "Cortex-A72",
    ("0x41", "0xd09"): "Cortex-A73",
    ("0x41", "0xd0a"): "Cortex-A75",
    ("0x41", "0xd0b"): "Cortex-A76",
    ("0x41", "0xd0d"): "Cortex-A77",
    ("0x41", "0xd41"): "Cortex-A78",
    ("0x41", "0xd42"): "Cortex-A78AE",
    ("0x4e", "0x004"): "NVIDIA Carmel",
    ("0x4e", "0x003"): "NVIDIA Denver 2",
}

VERSIONED_PACKAGES = (
    "edgebench",
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "tensorrt",
    "pycuda",
    "cuda-python",
    "jetson-stats",
)


def _read(root: Path, rel: str) -> str | None:
    """Text of root/rel stripped of whitespace and NULs, or None when it cannot be read."""
    try:
        return (root / rel.lstrip("/")).read_text(encoding="utf-8", errors="replace").strip().strip("\x00").strip()
    except OSError:
        return None


def _read_int(root: Path, rel: str) -> int | None:
    text = _read(root, rel)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _glob(root: Path, pattern: str) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(root / pattern.lstrip("/"))))


def _run(args: list[str]) -> str | None:
    """stdout of a command found on PATH, or None when it is missing, fails or hangs."""
    exe = shutil.which(args[0])
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, *args[1:]], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout


# --- static facts ----------------------------------------------------------------------------------------------


def collect_cpu(meta: MetaDict, root: Path) -> None:
    """CPU model (x86 "model name"; ARM "model name"/"Hardware"/"CPU part"), logical and physical cores."""
    text = _read(root, "proc/cpuinfo")
    if text is None:
        return
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    logical = 0
    physical: set[tuple[str, str]] = set()
    first: dict[str, str] = {}
    parts: list[str] = []
    for block in blocks:
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        for key, value in fields.items():
            first.setdefault(key, value)
        if "processor" in fields and fields["processor"].isdigit():
            logical += 1
            if "physical id" in fields and "core id" in fields:
                physical.add((fields["physical id"], fields["core id"]))
            part = ARM_PARTS.get((fields.get("CPU implementer", ""), fields.get("CPU part", "")))
            if part and part not in parts:
                parts.append(part)
    if "model name" in first:
        meta["cpu.model"] = first["model name"]
    elif "Processor" in first:
        meta["cpu.model"] = first["Processor"]
    if parts:
        meta["cpu.arm_cores"] = "+".join(parts)
        model = meta.get("cpu.model")
        if not isinstance(model, str) or model.startswith("ARMv"):
            meta["cpu.model"] = "ARM " + "+".join(parts)
    if "Hardware" in first:
        meta["cpu.hardware"] = first["Hardware"]
    if "Model" in first:  # Raspberry Pi kernels name the board here
        meta.setdefault("board.model", first["Model"])
    if logical:
        meta["cpu.cores.logical"] = logical
    if physical:
        meta["cpu.cores.physical"] = len(physical)
    elif logical:
        cores = set()
        for topo in _glob(root, "sys/devices/system/cpu/cpu[0-9]*/topology"):
            core = _read(topo, "core_id")
            package = _read(topo, "physical_package_id") or _read(topo, "cluster_id") or "0"
            if core is not None:
                cores.add((package, core))
        meta["cpu.cores.physical"] = len(cores) if cores else logical


def collect_memory(meta: MetaDict, root: Path) -> None:
    """Total and available RAM from /proc/meminfo (kB there, bytes here)."""
    text = _read(root, "proc/meminfo")
    if text is None:
        return
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields = value.split()
        if key in ("MemTotal", "MemAvailable", "SwapTotal") and fields:
            try:
                kib = int(fields[0])
            except ValueError:
                continue
            name = {"MemTotal": "total", "MemAvailable": "available", "SwapTotal": "swap_total"}[key]
            meta[f"mem.{name}_bytes"] = kib * 1024


def collect_os(meta: MetaDict, root: Path) -> None:
    """Distribution from /etc/os-release; kernel, architecture, hostname and Python from this process."""
    text = _read(root, "etc/os-release")
    if text is not None:
        values = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip('"')
        if "PRETTY_NAME" in values:
            meta["os.name"] = values["PRETTY_NAME"]
        if "VERSION_ID" in values:
            meta["os.version"] = values["VERSION_ID"]
    meta["os.kernel"] = platform.release()
    meta["os.arch"] = platform.machine()
    meta["hostname"] = socket.gethostname()
    meta["python.version"] = platform.python_version()
    meta["python.implementation"] = platform.python_implementation()
    meta["python.executable"] = sys.executable


def collect_versions(meta: MetaDict, root: Path) -> None:
    """Versions of the packages that shape a timing, from installed distribution metadata (no imports)."""
    for name in VERSIONED_PACKAGES:
        try:
            meta[f"version.{name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue


def collect_jetson(meta: MetaDict, root: Path) -> None:
    """L4T release, board model, nvpmodel power mode and fan mode."""
    release = _read(root, "etc/nv_tegra_release")
    if release is not None:
        # "# R32 (release), REVISION: 7.1, GCID: ..." -> "32.7.1"
        m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release)
        if m:
            meta["jetson.l4t"] = f"{m.group(1)}.{m.group(2)}"
        meta["jetson.nv_tegra_release"] = release.splitlines()[0].lstrip("# ").strip()
    model = _read(root, "proc/device-tree/model")
    if model:
        meta["board.model"] = model
    if release is None and not (model and "jetson" in model.lower()):
        return
    out = _run(["nvpmodel", "-q"])
    if out is not None:
        parse_nvpmodel(out, meta)
    out = _run(["jetson_clocks", "--show"])  # needs root on most images; skipped when it fails
    if out is not None:
        parse_jetson_clocks_show(out, meta)


def parse_nvpmodel(text: str, meta: MetaDict) -> None:
    """`nvpmodel -q` output ("NV Fan Mode:quiet", "NV Power Mode: MAXN", then the mode id) into meta."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("NV Power Mode"):
            meta["jetson.nvpmodel"] = line.partition(":")[2].strip()
            if i + 1 < len(lines) and lines[i + 1].isdigit():
                meta["jetson.nvpmodel_id"] = int(lines[i + 1])
        elif line.startswith("NV Fan Mode"):
            meta["jetson.fan_mode"] = line.partition(":")[2].strip()


def parse_jetson_clocks_show(text: str, meta: MetaDict) -> None:
    """`jetson_clocks --show` lines into meta: GPU and EMC min/max/current, and whether clocks are locked.

    Lines look like `cpu0: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1479000 CurrentFreq=1479000 ...`,
    `GPU MinFreq=76800000 MaxFreq=921600000 CurrentFreq=921600000`, `EMC MinFreq=... FreqOverride=1`.
    jetson_clocks pins every clock's min to its max (and sets the EMC override), so "locked" means all CPUs and
    the GPU have MinFreq == MaxFreq.
    """
    locked: list[bool] = []
    for line in text.splitlines():
        head, _, rest = line.strip().partition(" ")
        fields = dict(item.split("=", 1) for item in rest.split() if "=" in item)
        try:
            lo, hi = int(fields["MinFreq"]), int(fields["MaxFreq"])
            cur = int(fields["CurrentFreq"])
        except (KeyError, ValueError):
            continue
        if head.startswith("cpu") and head.endswith(":"):
            if fields.get("Online", "1") == "1":
                locked.append(lo == hi)
        elif head == "GPU":
            locked.append(lo == hi)
            meta.setdefault("gpu.freq.cur_hz", cur)
            meta.setdefault("gpu.freq.min_hz", lo)
            meta.setdefault("gpu.freq.max_hz", hi)
        elif head == "EMC":
            meta.setdefault("emc.freq_hz", cur)
            if "FreqOverride" in fields:
                meta["jetson.emc_override"] = fields["FreqOverride"] == "1"
    if locked:
        meta["jetson.clocks_locked"] = all(locked)


# --- dynamic facts (read again at the end of a run) --------------------------------------------------------------


def collect_cpufreq(meta: MetaDict, root: Path) -> None:
    """Per-CPU governor and current/min/max frequency (kHz) from cpufreq; whether min == max (clocks locked)."""
    locked = []
    for cpufreq in _glob(root, "sys/devices/system/cpu/cpu[0-9]*/cpufreq"):
        cpu = cpufreq.parent.name
        governor = _read(cpufreq, "scaling_governor")
        if governor:
            meta[f"cpufreq.{cpu}.governor"] = governor
        values = {}
        for key, name in (
            ("scaling_cur_freq", "cur"),
            ("scaling_min_freq", "min"),
            ("scaling_max_freq", "max"),
            ("cpuinfo_max_freq", "hw_max"),
        ):
            value = _read_int(cpufreq, key)
            if value is not None:
                meta[f"cpufreq.{cpu}.{name}_khz"] = value
                values[name] = value
        if "min" in values and "max" in values:
            locked.append(values["min"] == values["max"])
    governors = sorted({v for k, v in meta.items() if k.startswith("cpufreq.") and k.endswith(".governor")})
    if governors:
        meta["cpu.governor"] = ",".join(str(g) for g in governors)
    if locked:
        meta["cpu.clocks_locked"] = all(locked)


_GPU_DEVFREQ = (
    "sys/devices/gpu.0/devfreq/*",
    "sys/class/devfreq/*gv11b*",
    "sys/class/devfreq/*gp10b*",
    "sys/class/devfreq/*gm20b*",
    "sys/class/devfreq/*ga10b*",
)


def collect_gpu(meta: MetaDict, root: Path) -> None:
    """Jetson GPU frequency (Hz) from devfreq, and EMC (memory) clock from the BPMP debugfs when readable."""
    for pattern in _GPU_DEVFREQ:
        found = [p for p in _glob(root, pattern) if (p / "cur_freq").exists()]
        if found:
            dev = found[0]
            for key, name in (("cur_freq", "cur"), ("min_freq", "min"), ("max_freq", "max")):
                value = _read_int(dev, key)
                if value is not None:
                    meta[f"gpu.freq.{name}_hz"] = value
            governor = _read(dev, "governor")
            if governor:
                meta["gpu.governor"] = governor
            break
    emc = _read_int(root, "sys/kernel/debug/bpmp/debug/clk/emc/rate")
    if emc is not None:
        meta["emc.freq_hz"] = emc
    elif (value := _read_int(root, "sys/kernel/debug/clk/emc/clk_rate")) is not None:  # L4T 32 (Nano, TX2)
        meta["emc.freq_hz"] = value


def collect_fan(meta: MetaDict, root: Path) -> None:
    """Fan PWM (0-255): Jetson Nano/TX2 pwm-fan, or the first hwmon pwm1 (Orin, PCs)."""
    for rel in ("sys/devices/pwm-fan/cur_pwm", "sys/devices/pwm-fan/target_pwm"):
        value = _read_int(root, rel)
        if value is not None:
            meta["fan.pwm"] = value
            return
    for hwmon in _glob(root, "sys/class/hwmon/hwmon*"):
        value = _read_int(hwmon, "pwm1")
        if value is not None:
            meta["fan.pwm"] = value
            return


def thermal_name(zone_type: str) -> str:
    """A short key for a thermal zone type: "CPU-therm" and "cpu-thermal" -> "cpu", "x86_pkg_temp" -> "x86_pkg"."""
    name = zone_type.strip().lower()
    name = re.sub(r"[-_ ]?(thermal|therm|temp)$", "", name)
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_") or "zone"


def collect_thermal(meta: MetaDict, root: Path) -> None:
    """Temperatures (degrees C) of every thermal zone, keyed by its type ("temp.cpu_c")."""
    for zone in _glob(root, "sys/class/thermal/thermal_zone[0-9]*"):
        zone_type = _read(zone, "type")
        milli = _read_int(zone, "temp")
        if zone_type is None or milli is None:
            continue
        key = f"temp.{thermal_name(zone_type)}_c"
        if key in meta:  # two zones of one type: keep both, the second named by its zone index
            key = f"temp.{thermal_name(zone_type)}_{zone.name.removeprefix('thermal_zone')}_c"
        meta[key] = milli / 1000.0


STATIC_COLLECTORS: tuple[Callable[[MetaDict, Path], None], ...] = (
    collect_os,
    collect_cpu,
    collect_memory,
    collect_versions,
    collect_jetson,
)
DYNAMIC_COLLECTORS: tuple[Callable[[MetaDict, Path], None], ...] = (
    collect_cpufreq,
    collect_gpu,
    collect_fan,
    collect_thermal,
)


def collect_dynamic(root: Path = Path("/")) -> MetaDict:
    """The facts that change during a run: clocks, governor, fan, temperatures."""
    meta: MetaDict = {}
    for collect in DYNAMIC_COLLECTORS:
        collect(meta, Path(root))
    return meta


def collect_metadata(root: Path = Path("/")) -> MetaDict:
    """Everything: static facts (CPU, memory, OS, versions, Jetson mode) and dynamic ones (clocks, temperatures)."""
    meta: MetaDict = {}
    for collect in STATIC_COLLECTORS:
        collect(meta, Path(root))
    meta.update(collect_dynamic(root))
    return dict(sorted(meta.items()))


def throttle_warnings(
    start: Mapping[str, object], end: Mapping[str, object], threshold_c: float = THROTTLE_TEMP_C
) -> list[str]:
    """Signs that the device throttled during a run, each with what to do.

    Hot: a thermal zone at or above `threshold_c` at the end (PMIC zones excepted: they report a constant). Capped: under the performance governor (or with
    clocks locked), a CPU whose current frequency at the end is below 95 % of its max, or the GPU below its max
    while its min == max (jetson_clocks).
    """
    out: list[str] = []
    hot = [
        f"{k[len('temp.'):-2]} {v:.1f} C"
        for k, v in end.items()
        if k.startswith("temp.")
        and isinstance(v, (int, float))
        and v >= threshold_c
        and not any(skip in k for skip in HOT_CHECK_SKIPS)
    ]
    if hot:
        rises = []
        for k, now in end.items():
            before = start.get(k)
            if k.startswith("temp.") and isinstance(before, (int, float)) and isinstance(now, (int, float)) and now > before:
                rises.append(f"{k[len('temp.'):-2]} +{now - before:.1f} C")
        out.append(
            f"hot at the end of the run ({', '.join(hot)}; >= {threshold_c:.0f} C"
            + (f"; rose {', '.join(rises[:3])}" if rises else "")
            + "): the device may have throttled; add a fan or heatsink, let it cool between engines, "
            "or shorten --duration"
        )
    capped = []
    for key, value in end.items():
        if not (key.startswith("cpufreq.") and key.endswith(".cur_khz")) or not isinstance(value, int):
            continue
        cpu = key.split(".")[1]
        governor = end.get(f"cpufreq.{cpu}.governor")
        max_khz = end.get(f"cpufreq.{cpu}.max_khz")
        min_khz = end.get(f"cpufreq.{cpu}.min_khz")
        pinned = governor == "performance" or (min_khz is not None and min_khz == max_khz)
        if pinned and isinstance(max_khz, int) and value < FREQ_DROP * max_khz:
            capped.append(f"{cpu} {value / 1000:.0f}/{max_khz / 1000:.0f} MHz")
    if capped:
        out.append(
            f"CPU clocks below their maximum under a fixed-frequency setting ({', '.join(capped[:4])}"
            + (f" and {len(capped) - 4} more" if len(capped) > 4 else "")
            + "): thermal or power capping; check cooling and the power mode (nvpmodel), then run again"
        )
    gcur, gmin, gmax = end.get("gpu.freq.cur_hz"), end.get("gpu.freq.min_hz"), end.get("gpu.freq.max_hz")
    if isinstance(gcur, int) and isinstance(gmax, int) and gmin == gmax and gcur < FREQ_DROP * gmax:
        out.append(
            f"GPU clock {gcur / 1e6:.0f} MHz below its locked {gmax / 1e6:.0f} MHz: thermal or power capping; "
            "check cooling and the power mode (nvpmodel), then run again"
        )
    return out


def group_lines(meta: Mapping[str, object]) -> list[str]:
    """Readable lines grouped by the key's first part ("cpu", "mem", "jetson", "temp"...), units made human."""
    groups: dict[str, list[tuple[str, object]]] = {}
    for key, value in sorted(meta.items()):
        head, _, rest = key.partition(".")
        groups.setdefault(head, []).append((rest or head, value))
    lines: list[str] = []
    for head, items in groups.items():
        lines.append(f"{head}:")
        width = max(len(k) for k, _ in items)
        for key, value in items:
            lines.append(f"  {key.ljust(width)}  {_human(key, value)}")
    return lines


def _human(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key.endswith("_bytes") and isinstance(value, int):
        return f"{value / 2**30:.2f} GiB ({value} bytes)"
    if key.endswith("_khz") and isinstance(value, int):
        return f"{value / 1000:.0f} MHz"
    if key.endswith("_hz") and isinstance(value, int):
        return f"{value / 1e6:.0f} MHz"
    if key.endswith("_c") and isinstance(value, float):
        return f"{value:.1f} C"
    return str(value)

