"""Device metadata from fake sysfs/procfs trees under a temporary root, and a fake `nvpmodel` on PATH."""

import os

import pytest
from programs import write_program

from edgebench.agent.metadata import (
    collect_dynamic,
    collect_metadata,
    group_lines,
    parse_nvpmodel,
    thermal_name,
    throttle_warnings,
)

NANO_CPUINFO = "".join(
    f"processor\t: {i}\nmodel name\t: ARMv8 Processor rev 1 (v8l)\nBogoMIPS\t: 38.40\n"
    "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\nCPU implementer\t: 0x41\n"
    "CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\nCPU revision\t: 1\n\n"
    for i in range(4)
)

X86_CPUINFO = "".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz\n"
    f"physical id\t: 0\ncore id\t\t: {i % 4}\ncpu cores\t: 4\n\n"
    for i in range(8)
)


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _nano_tree(root, temps=(("AO-therm", 38500), ("CPU-therm", 41000), ("GPU-therm", 39500), ("PMIC-Die", 100000)),
               cur_khz=1479000, governor="schedutil", min_khz=102000):
    _write(root, "proc/cpuinfo", NANO_CPUINFO)
    _write(root, "proc/meminfo", "MemTotal:        4051048 kB\nMemFree:  100 kB\nMemAvailable:    2951048 kB\n")
    _write(root, "etc/os-release", 'NAME="Ubuntu"\nVERSION_ID="18.04"\nPRETTY_NAME="Ubuntu 18.04.6 LTS"\n')
    _write(root, "etc/nv_tegra_release",
           "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n")
    _write(root, "proc/device-tree/model", "NVIDIA Jetson Nano Developer Kit\x00")
    for i in range(4):
        base = f"sys/devices/system/cpu/cpu{i}/cpufreq/"
        _write(root, base + "scaling_governor", governor + "\n")
        _write(root, base + "scaling_cur_freq", f"{cur_khz}\n")
        _write(root, base + "scaling_min_freq", f"{min_khz}\n")
        _write(root, base + "scaling_max_freq", "1479000\n")
        _write(root, base + "cpuinfo_max_freq", "1479000\n")
    gpu = "sys/devices/gpu.0/devfreq/57000000.gpu/"
    _write(root, gpu + "cur_freq", "921600000\n")
    _write(root, gpu + "min_freq", "76800000\n")
    _write(root, gpu + "max_freq", "921600000\n")
    _write(root, "sys/kernel/debug/clk/emc/clk_rate", "1600000000\n")
    _write(root, "sys/devices/pwm-fan/cur_pwm", "0\n")
    for i, (kind, milli) in enumerate(temps):
        _write(root, f"sys/class/thermal/thermal_zone{i}/type", kind + "\n")
        _write(root, f"sys/class/thermal/thermal_zone{i}/temp", f"{milli}\n")


@pytest.fixture
def fake_nvpmodel(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "nvpmodel"
    write_program(script, "#!/bin/sh\n[ \"$1\" = -q ] || exit 3\necho 'NV Fan Mode:quiet'\necho 'NV Power Mode: MAXN'\necho 0\n")
    clocks = bindir / "jetson_clocks"
    write_program(clocks,
        "#!/bin/sh\n[ \"$1\" = --show ] || exit 3\ncat <<'END'\n"
        "SOC family:tegra210  Machine:NVIDIA Jetson Nano Developer Kit\nOnline CPUs: 0-3\n"
        + "".join(
            f"cpu{i}: Online=1 Governor=schedutil MinFreq=1479000 MaxFreq=1479000 CurrentFreq=1479000 "
            "IdleStates: WFI=0 c7=0\n"
            for i in range(4)
        )
        + "GPU MinFreq=921600000 MaxFreq=921600000 CurrentFreq=921600000\n"
        "EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=1\n"
        "Fan: PWM=255\nNV Power Mode: MAXN\nEND\n"
    )
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return script


def test_jetson_nano_tree(tmp_path, fake_nvpmodel):
    root = tmp_path / "root"
    _nano_tree(root)
    meta = collect_metadata(root)
    assert meta["board.model"] == "NVIDIA Jetson Nano Developer Kit"
    assert meta["jetson.l4t"] == "32.7.1"
    assert meta["jetson.nvpmodel"] == "MAXN" and meta["jetson.nvpmodel_id"] == 0
    assert meta["jetson.fan_mode"] == "quiet"
    assert meta["jetson.clocks_locked"] is True and meta["jetson.emc_override"] is True
    assert meta["cpu.model"] == "ARM Cortex-A57" and meta["cpu.arm_cores"] == "Cortex-A57"
    assert meta["cpu.cores.logical"] == 4 and meta["cpu.cores.physical"] == 4
    assert meta["mem.total_bytes"] == 4051048 * 1024 and meta["mem.available_bytes"] == 2951048 * 1024
    assert meta["os.name"] == "Ubuntu 18.04.6 LTS" and meta["os.version"] == "18.04"
    assert meta["cpufreq.cpu0.cur_khz"] == 1479000 and meta["cpufreq.cpu3.hw_max_khz"] == 1479000
    assert meta["cpu.governor"] == "schedutil" and meta["cpu.clocks_locked"] is False
    assert meta["gpu.freq.cur_hz"] == 921600000 and meta["gpu.freq.max_hz"] == 921600000
    assert meta["emc.freq_hz"] == 1600000000
    assert meta["fan.pwm"] == 0
    assert meta["temp.cpu_c"] == 41.0 and meta["temp.gpu_c"] == 39.5 and meta["temp.ao_c"] == 38.5
    assert meta["temp.pmic_die_c"] == 100.0
    assert "version.numpy" in meta and "python.version" in meta
    assert all(isinstance(v, (str, int, float, bool)) for v in meta.values())
    text = "\n".join(group_lines(meta))
    assert "jetson:" in text and "3.86 GiB" in text and "1479 MHz" in text and "41.0 C" in text


def test_nvpmodel_missing_is_skipped_silently(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _nano_tree(root)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    meta = collect_metadata(root)
    assert "jetson.nvpmodel" not in meta and meta["jetson.l4t"] == "32.7.1"


def test_failing_nvpmodel_is_skipped(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _nano_tree(root)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    write_program(bindir / "nvpmodel", "#!/bin/sh\necho 'not root' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", str(bindir))
    assert "jetson.nvpmodel" not in collect_metadata(root)


def test_x86_tree(tmp_path):
    root = tmp_path / "root"
    _write(root, "proc/cpuinfo", X86_CPUINFO)
    _write(root, "proc/meminfo", "MemTotal:       16000000 kB\n")
    for i in range(8):
        base = f"sys/devices/system/cpu/cpu{i}/cpufreq/"
        _write(root, base + "scaling_governor", "performance\n")
        _write(root, base + "scaling_cur_freq", "4200000\n")
        _write(root, base + "scaling_min_freq", "400000\n")
        _write(root, base + "scaling_max_freq", "4200000\n")
    _write(root, "sys/class/thermal/thermal_zone0/type", "acpitz\n")
    _write(root, "sys/class/thermal/thermal_zone0/temp", "27800\n")
    _write(root, "sys/class/thermal/thermal_zone1/type", "x86_pkg_temp\n")
    _write(root, "sys/class/thermal/thermal_zone1/temp", "52000\n")
    _write(root, "sys/class/thermal/thermal_zone2/type", "acpitz\n")
    _write(root, "sys/class/thermal/thermal_zone2/temp", "30000\n")
    meta = collect_metadata(root)
    assert meta["cpu.model"] == "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz"
    assert meta["cpu.cores.logical"] == 8 and meta["cpu.cores.physical"] == 4
    assert meta["cpu.governor"] == "performance"
    assert meta["temp.acpitz_c"] == 27.8 and meta["temp.acpitz_2_c"] == 30.0 and meta["temp.x86_pkg_c"] == 52.0
    assert not any(k.startswith(("jetson.", "gpu.", "board.", "fan.", "os.name")) for k in meta)


def test_empty_root_gives_only_process_facts(tmp_path):
    meta = collect_metadata(tmp_path)
    assert set(k.split(".")[0] for k in meta) <= {"os", "hostname", "python", "version"}
    assert collect_dynamic(tmp_path) == {}


def test_unreadable_value_is_skipped(tmp_path):
    _write(tmp_path, "sys/class/thermal/thermal_zone0/type", "CPU-therm\n")
    _write(tmp_path, "sys/class/thermal/thermal_zone0/temp", "garbage\n")
    _write(tmp_path, "sys/class/thermal/thermal_zone1/type", "GPU-therm\n")
    (tmp_path / "sys/class/thermal/thermal_zone1/temp").mkdir(parents=True)  # reading it is an OSError
    assert collect_dynamic(tmp_path) == {}


def test_thermal_names():
    assert thermal_name("CPU-therm") == "cpu"
    assert thermal_name("cpu-thermal") == "cpu"
    assert thermal_name("x86_pkg_temp") == "x86_pkg"
    assert thermal_name("thermal-fan-est") == "thermal_fan_est"
    assert thermal_name("Tboard_tegra") == "tboard_tegra"


def test_jetson_clocks_show_fills_gpu_and_emc_when_sysfs_is_unreadable():
    from edgebench.agent.metadata import parse_jetson_clocks_show

    meta = {}
    parse_jetson_clocks_show(
        "cpu0: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1479000 CurrentFreq=1036800 IdleStates: WFI=1\n"
        "cpu1: Online=0 Governor=schedutil MinFreq=102000 MaxFreq=102000 CurrentFreq=102000\n"
        "GPU MinFreq=76800000 MaxFreq=921600000 CurrentFreq=76800000\n"
        "EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=0\n",
        meta,
    )
    assert meta == {
        "gpu.freq.cur_hz": 76800000,
        "gpu.freq.min_hz": 76800000,
        "gpu.freq.max_hz": 921600000,
        "emc.freq_hz": 1600000000,
        "jetson.emc_override": False,
        "jetson.clocks_locked": False,
    }


def test_parse_nvpmodel_orin_output():
    meta = {}
    parse_nvpmodel("NV Power Mode: 15W\n1\n", meta)
    assert meta == {"jetson.nvpmodel": "15W", "jetson.nvpmodel_id": 1}


def test_throttle_warnings_hot_and_capped(tmp_path):
    start_root, end_root = tmp_path / "a", tmp_path / "b"
    _nano_tree(start_root, governor="performance")
    _nano_tree(end_root, temps=(("CPU-therm", 88500), ("GPU-therm", 86000)), cur_khz=918000, governor="performance")
    start, end = collect_dynamic(start_root), collect_dynamic(end_root)
    warnings = throttle_warnings(start, end)
    assert len(warnings) == 2
    assert "cpu 88.5 C" in warnings[0] and "rose cpu +47.5 C" in warnings[0] and "fan" in warnings[0]
    assert "cpu0 918/1479 MHz" in warnings[1] and "nvpmodel" in warnings[1]
    assert throttle_warnings(start, start) == []


def test_throttle_warning_for_locked_clocks_and_gpu(tmp_path):
    root = tmp_path / "r"
    _nano_tree(root, cur_khz=1479000, min_khz=1479000, temps=())
    (root / "sys/devices/gpu.0/devfreq/57000000.gpu/min_freq").write_text("921600000\n")
    (root / "sys/devices/gpu.0/devfreq/57000000.gpu/cur_freq").write_text("614400000\n")
    end = collect_dynamic(root)
    assert end["cpu.clocks_locked"] is True
    warnings = throttle_warnings({}, end)
    assert len(warnings) == 1 and "GPU clock 614 MHz below its locked 922 MHz" in warnings[0]
