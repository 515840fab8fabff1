"""The last resort: CPU utilisation from /proc/stat times the CPU's TDP. A model, never a measurement.

Utilisation is busy / total jiffies between two reads of the aggregate `cpu` line (since boot until they move).
The TDP comes from a small table matched on /proc/cpuinfo's model name, with a default. A CPU at 0 % still draws
power, so the model is linear between an idle floor and the TDP:

    power_w = tdp_w x (idle_share + (1 - idle_share) x utilisation)

with `idle_share` = 0.2 by default: Cloud Carbon Footprint's per-vCPU coefficients put idle at about a fifth of
full load (AWS 0.74 / 3.5 W, Azure 0.78 / 3.76 W, GCP 0.71 / 4.26 W), where a plain util x TDP (0 W when idle)
would make every idle baseline zero and every net figure equal the gross one. The figure still ignores GPU,
memory and disk, so it is always flagged `estimate=True` and its total rule says so.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgebench.errors import BadInput, DeviceError
from edgebench.records import PowerSample

from .base import ESTIMATE_RULE, SensorUnavailable, now_ns

DEFAULT_TDP_W = 15.0
DEFAULT_IDLE_SHARE = 0.2  # idle draw as a share of TDP (see the module docstring for where 0.2 comes from)
# (pattern on the model name, TDP in W): vendor datasheet figures for the CPU package alone.
TDP_TABLE: tuple[tuple[str, float], ...] = (
    (r"Core\(TM\) i\d-\d{4,5}U", 15.0),
    (r"Core\(TM\) i\d-\d{4,5}H", 45.0),
    (r"Core\(TM\) i\d-\d{4,5}K", 125.0),
    (r"Ryzen \d \d{4}U", 15.0),
    (r"Cortex-A76|BCM2712|Raspberry Pi 5", 8.0),  # Raspberry Pi 5 SoC
    (r"Cortex-A72|BCM2711|Raspberry Pi 4", 6.0),  # Raspberry Pi 4 SoC
)
# Server parts come in 8 to 128 threads under one name, and VMs see a few of them: a per-logical-CPU share of a
# typical package (EPYC 7763: 280 W / 128 threads; Xeon Platinum 8380: 270 W / 80 threads) times the CPUs seen.
PER_CPU_TABLE: tuple[tuple[str, float], ...] = (
    (r"EPYC", 2.2),
    (r"Xeon", 3.4),
)


def tdp_for(model: str, logical_cpus: int = 1) -> tuple[float, str]:
    """TDP in W for a CPU model name and where it came from ("table: <pattern>", "per CPU ..." or "default")."""
    for pattern, tdp in TDP_TABLE:
        if re.search(pattern, model):
            return tdp, f"table: {pattern}"
    for pattern, per_cpu in PER_CPU_TABLE:
        if re.search(pattern, model):
            return per_cpu * logical_cpus, f"{per_cpu:g} W per logical CPU x {logical_cpus} ({pattern})"
    return DEFAULT_TDP_W, "default"


def logical_cpus(root: Path = Path("/")) -> int:
    """Logical CPUs listed in /proc/cpuinfo under `root` (1 when unreadable)."""
    try:
        text = (root / "proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 1
    return max(1, len(re.findall(r"^processor\s*:", text, re.MULTILINE)))


def cpu_model(root: Path = Path("/")) -> str:
    """The CPU model name from /proc/cpuinfo under `root` ("" when none is given)."""
    try:
        text = (root / "proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for key in ("model name", "Model", "Hardware", "CPU part"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return ""


def read_cpu_jiffies(stat: Path) -> tuple[int, int]:
    """(busy, total) jiffies from the aggregate `cpu` line of /proc/stat."""
    with stat.open(encoding="ascii") as f:
        first = f.readline(4096).split()
    if not first or first[0] != "cpu" or len(first) < 5:
        raise ValueError(f"{stat}: first line is not the aggregate cpu line")
    fields = first[1:9]  # user nice system idle iowait irq softirq steal (guest is in user)
    if not all(v.isascii() and v.isdigit() and len(v) <= 20 for v in fields):  # u64 jiffies, never negative
        raise ValueError(f"{stat}: the cpu line holds {' '.join(fields)[:60]!r}, not jiffy counts")
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values)
    return total - idle, total


def model_power_w(utilisation: float, tdp_w: float, idle_share: float = DEFAULT_IDLE_SHARE) -> float:
    """Modelled CPU power in W: linear from `idle_share` x TDP at 0 % to the full TDP at 100 % utilisation."""
    return tdp_w * (idle_share + (1.0 - idle_share) * utilisation)


class EstimateSensor:
    """CPU utilisation between an idle floor and the TDP, as one pseudo-rail named CPU_EST."""

    name = "estimate"
    estimate = True
    total_rule = ESTIMATE_RULE
    rails = ("CPU_EST",)

    def __init__(
        self, root: Path = Path("/"), tdp_w: float | None = None, idle_share: float = DEFAULT_IDLE_SHARE
    ) -> None:
        if not 0.0 <= idle_share <= 1.0:
            raise BadInput(
                f"idle share {idle_share:g} is not a fraction of TDP: give a value from 0 to 1 (e.g. 0.2)"
            )
        if tdp_w is not None and tdp_w <= 0:
            raise BadInput(f"TDP {tdp_w:g} W is not a power: give the CPU's TDP in W (e.g. 15)")
        self.idle_share = idle_share
        self.total_rule = f"CPU util x TDP above an idle floor of {idle_share:g} x TDP (estimate)"
        self.stat = root / "proc/stat"
        try:
            self._last = read_cpu_jiffies(self.stat)
        except (OSError, ValueError) as exc:
            raise SensorUnavailable(f"cannot read CPU utilisation from {self.stat}: {exc}") from None
        self.model = cpu_model(root)
        if tdp_w is None:
            self.tdp_w, self.tdp_source = tdp_for(self.model, logical_cpus(root))
        else:
            self.tdp_w, self.tdp_source = tdp_w, "given"
        busy, total = self._last
        self._util = min(max(busy / total, 0.0), 1.0) if total > 0 else 0.0  # since boot, until the counters move

    def utilisation(self) -> float:
        """Busy fraction since the previous read that saw the counters move (since boot until they do).

        /proc/stat counts in jiffies (usually 10 ms per CPU), so reads closer together than a jiffy see no
        change: the previous figure is held rather than reported as 0 % or 100 %.
        """
        busy, total = read_cpu_jiffies(self.stat)
        db, dt = busy - self._last[0], total - self._last[1]
        if dt > 0:
            self._last = (busy, total)
            self._util = min(max(db / dt, 0.0), 1.0)
        return self._util

    def read(self) -> PowerSample:
        t_ns = now_ns()
        try:
            util = self.utilisation()
        except (OSError, ValueError) as exc:
            raise DeviceError(f"CPU utilisation read failed: {exc}") from None
        power_mw = model_power_w(util, self.tdp_w, self.idle_share) * 1000.0  # W -> mW
        return PowerSample(t_ns=t_ns, rails_mw={"CPU_EST": power_mw}, total_mw=power_mw)

    def close(self) -> None:
        pass


def open_sensor(root: Path = Path("/")) -> EstimateSensor:
    """The estimate sensor on /proc under `root`."""
    return EstimateSensor(root)
