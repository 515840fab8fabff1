"""CodeCarbon beside the wall meter: its offline tracker over the same windows, and our results in its format.

Lab 2 asks students to use CodeCarbon, which estimates energy from CPU/GPU/RAM power models (RAPL, NVML, a TDP
table) rather than measuring the wall. `CodeCarbonWindow` runs its `OfflineEmissionsTracker` over one window so
both figures print side by side; it needs the optional extra `edgebench[codecarbon]` and is imported only when
asked for. `write_emissions_csv` needs nothing: it writes our wall measurements in the columns of CodeCarbon's
emissions.csv (its `EmissionsData` fields, codecarbon 3.x: a superset of the 2.x file), so CodeCarbon's own
tools (`carbonboard`, pandas notebooks written for it) read them. Units are CodeCarbon's: duration s, energy
kWh, emissions kg CO2eq, emissions_rate kg/s, power W.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from edgebench.errors import BadInput, MissingDependency
from edgebench.files import open_append, output_path

from .carbon import country_iso3

if TYPE_CHECKING:
    from codecarbon import OfflineEmissionsTracker

    from .carbon import GridFactor
    from .pairing import PairingResult, WindowResult

# codecarbon.output_methods.emissions_data.EmissionsData fields, in order (checked against codecarbon 3.3.2 by
# tests/test_codecarbon.py when codecarbon is installed)
EMISSIONS_COLUMNS: tuple[str, ...] = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)  # fmt: skip

INSTALL_HINT = "pip install 'edgebench[codecarbon]'"


class EmissionsRow(TypedDict):
    """One row of CodeCarbon's emissions.csv as edgebench writes it: EMISSIONS_COLUMNS, in order; "" where the
    wall meter has no figure (CodeCarbon writes "" there too)."""

    timestamp: str
    project_name: str
    run_id: str
    experiment_id: str
    duration: float
    emissions: float
    emissions_rate: float | str
    cpu_power: float
    gpu_power: float
    ram_power: float
    cpu_energy: float
    gpu_energy: float
    ram_energy: float
    energy_consumed: float
    water_consumed: float
    country_name: str
    country_iso_code: str
    region: str
    cloud_provider: str
    cloud_region: str
    os: str
    python_version: str
    codecarbon_version: str
    cpu_count: str
    cpu_model: str
    gpu_count: str
    gpu_model: str
    longitude: str
    latitude: str
    ram_total_size: str
    tracking_mode: str
    cpu_utilization_percent: str
    gpu_utilization_percent: str
    ram_utilization_percent: str
    ram_used_gb: str
    on_cloud: str
    pue: float
    wue: float


class CodeCarbonEstimate(TypedDict):
    """What CodeCarbon's tracker estimated over one window (kWh, kg CO2eq), for `Monitor` and `run`."""

    energy_kwh: float
    emissions_kg: float
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float
    country_iso_code: str
    codecarbon_version: str


def require_codecarbon() -> type[OfflineEmissionsTracker]:
    """CodeCarbon's OfflineEmissionsTracker class; MissingDependency naming the extra when it is absent."""
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        raise MissingDependency(
            f"--codecarbon needs CodeCarbon, which is not installed: {INSTALL_HINT} (or drop --codecarbon)"
        ) from None
    return OfflineEmissionsTracker


class CodeCarbonWindow:
    """CodeCarbon's offline tracker running over one window; `end()` returns its estimate as a dict."""

    def __init__(self, tracker: OfflineEmissionsTracker, country_iso_code: str) -> None:
        self.tracker, self.country_iso_code = tracker, country_iso_code

    @classmethod
    def begin(cls, country_iso_code: str, *, measure_power_secs: float = 1.0) -> CodeCarbonWindow:
        """Start the tracker (CodeCarbon's grid factor is its own for `country_iso_code`, e.g. USA)."""
        tracker_class = require_codecarbon()
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        tracker = tracker_class(
            country_iso_code=country_iso_code,
            save_to_file=False,
            log_level="error",
            measure_power_secs=measure_power_secs,
        )
        tracker.start()
        return cls(tracker, country_iso_code)

    def end(self) -> CodeCarbonEstimate:
        """Stop the tracker: energy (kWh), emissions (kg CO2eq) and what it attributed them to."""
        emissions_kg = self.tracker.stop()
        data = getattr(self.tracker, "final_emissions_data", None)
        return {
            "energy_kwh": float(getattr(data, "energy_consumed", float("nan"))),
            "emissions_kg": float(emissions_kg if emissions_kg is not None else float("nan")),
            "cpu_energy_kwh": float(getattr(data, "cpu_energy", float("nan"))),
            "gpu_energy_kwh": float(getattr(data, "gpu_energy", float("nan"))),
            "ram_energy_kwh": float(getattr(data, "ram_energy", float("nan"))),
            "country_iso_code": self.country_iso_code,
            "codecarbon_version": str(getattr(data, "codecarbon_version", "")),
        }

    def abandon(self) -> None:
        """Stop without using the figures (a window that is dropped)."""
        try:
            self.tracker.stop()
        except Exception:  # noqa: BLE001 - the window is dropped anyway; CodeCarbon's own failure is not ours
            pass


def _row_base(
    *, end_ns: int, duration_s: float, energy_kwh: float, emissions_kg: float, grid: GridFactor, pue: float, meter: str
) -> EmissionsRow:
    iso = country_iso3(grid)
    egrid = grid.source.startswith("EPA eGRID")
    return {
        "timestamp": _dt.datetime.fromtimestamp(end_ns / 1e9).isoformat(timespec="seconds"),
        "project_name": "edgebench",
        "run_id": "",
        "experiment_id": "",
        "duration": duration_s,
        "emissions": emissions_kg,
        "emissions_rate": emissions_kg / duration_s if duration_s > 0 else "",
        # the wall meter sees the whole box: no CPU/GPU/RAM split
        "cpu_power": 0.0, "gpu_power": 0.0, "ram_power": 0.0,
        "cpu_energy": 0.0, "gpu_energy": 0.0, "ram_energy": 0.0,
        "energy_consumed": energy_kwh,
        "water_consumed": 0.0,
        "country_name": grid.region.partition("(")[2].rstrip(")") if "(" in grid.region else "",
        "country_iso_code": iso or ("USA" if egrid else ""),
        "region": grid.region if egrid else "",
        "cloud_provider": "", "cloud_region": "",
        "os": platform.platform(),
        "python_version": platform.python_version(),
        "codecarbon_version": "",
        "cpu_count": "", "cpu_model": "", "gpu_count": "", "gpu_model": "",
        "longitude": "", "latitude": "", "ram_total_size": "",
        "tracking_mode": f"wall meter ({meter})" if meter else "wall meter",
        "cpu_utilization_percent": "", "gpu_utilization_percent": "", "ram_utilization_percent": "",
        "ram_used_gb": "",
        "on_cloud": "N",
        "pue": pue,
        "wue": 0.0,
    }  # fmt: skip


def window_row(
    window: WindowResult,
    *,
    grid: GridFactor,
    pue: float = 1.0,
    meter: str = "",
    project_name: str = "edgebench",
    use_net: bool = False,
) -> EmissionsRow:
    """One measured window (the pairing's WindowResult: `run`, `Monitor`, `measure`) as an emissions.csv row:
    the wall energy, PUE included, goes into `energy_consumed` and its CO2 under `grid` into `emissions`;
    `use_net` writes the energy above idle instead of the gross. experiment_id is `name#repeat`."""
    energy_j = (window.net_energy_j if use_net else window.gross_energy_j) * pue
    row = _row_base(
        end_ns=window.end_host_ns, duration_s=window.duration_s, energy_kwh=energy_j / 3.6e6,
        emissions_kg=grid.co2_kg(energy_j), grid=grid, pue=pue, meter=meter,
    )  # fmt: skip
    row["project_name"] = project_name
    row["run_id"] = window.run_id
    row["experiment_id"] = f"{window.engine}#{window.repeat}"
    return row


def pairing_rows(result: PairingResult, *, project_name: str = "edgebench", use_net: bool = False) -> list[EmissionsRow]:
    """Every valid run window of a PairingResult (`run`, `measure`, `pair`, `report`) as emissions.csv rows."""
    return [
        window_row(w, grid=result.grid, pue=result.pue, meter=result.meter, project_name=project_name, use_net=use_net)
        for w in result.windows
        if w.kind != "idle" and w.valid
    ]


def check_emissions_csv(path: str | Path) -> bool:
    """True when `path` is new or empty (a header is due); BadInput, one line, when its folder is missing, it is
    not a regular file or its header is not CodeCarbon's columns (rows appended under another header would be read
    as garbage). Commands call it before their work, so the mistake is said at once."""
    if not Path(path).parent.is_dir():
        raise BadInput(
            f"--emissions-csv {path}: no folder {Path(path).parent} to write it in; create it or pick another"
        )
    target = output_path(path, "--emissions-csv")
    if not target.exists() or target.stat().st_size == 0:
        return True
    try:
        with target.open(encoding="utf-8", newline="") as stream:
            header = next(csv.reader(stream), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(getattr(exc, "strerror", "") or exc)
        raise BadInput(f"--emissions-csv {path}: cannot read its header ({why}): append to another file") from None
    if tuple(header) != EMISSIONS_COLUMNS:
        shown = ",".join(header)[:60]
        raise BadInput(
            f"--emissions-csv {path} has other columns than CodeCarbon's emissions.csv ({shown}...): append to "
            "another file, or move this one away"
        )
    return False


def write_rows(path: str | Path, rows: Iterable[EmissionsRow]) -> Path:
    """Append rows to a CodeCarbon-style emissions.csv (the header is written when the file is new or empty;
    an existing file must have CodeCarbon's header: `check_emissions_csv`)."""
    path = Path(path)
    new = check_emissions_csv(path)
    with open_append(path, "--emissions-csv", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=EMISSIONS_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return path


def write_emissions_csv(
    path: str | Path,
    windows: Iterable[WindowResult],
    *,
    grid: GridFactor,
    pue: float = 1.0,
    meter: str = "",
    project_name: str = "edgebench",
    use_net: bool = False,
) -> Path:
    """Append measured windows (WindowResults) to a CodeCarbon-style emissions.csv."""
    rows: Sequence[EmissionsRow] = [
        window_row(w, grid=grid, pue=pue, meter=meter, project_name=project_name, use_net=use_net) for w in windows
    ]
    return write_rows(path, rows)
