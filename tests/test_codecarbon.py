"""CodeCarbon beside the wall meter: the emissions.csv export (no CodeCarbon needed; runs in CI), its columns
against CodeCarbon's own schema and its offline tracker over a `run` window (both only where CodeCarbon is
installed, the optional extra `edgebench[codecarbon]`)."""

import csv
import dataclasses
import importlib.util
import json
import subprocess
import sys

import pytest

from edgebench.cli import edgebench_argv
from edgebench.errors import BadInput
from edgebench.host.carbon import country_factor, egrid_factor
from edgebench.host.codecarbon_bridge import EMISSIONS_COLUMNS, pairing_rows, write_emissions_csv
from edgebench.host.meters.emulate import ConstantProfile, start_emulator
from edgebench.host.pairing import WindowResult

HAVE_CODECARBON = importlib.util.find_spec("codecarbon") is not None
needs_codecarbon = pytest.mark.skipif(
    not HAVE_CODECARBON, reason="codecarbon is not installed (optional extra: pip install 'edgebench[codecarbon]')"
)
S = 1_000_000_000
EPOCH = 1_700_000_000 * S


def _window(**changes):
    """A measured window as the pairing gives it (`run`, `Monitor` and `measure` all return these)."""
    fields = dict(
        engine="train", kind="run", run_id="abc123", repeat=0, start_host_ns=EPOCH, end_host_ns=EPOCH + 120 * S,
        duration_s=120.0, iterations=1000, batch=1, samples=1200, coverage=1.0, largest_gap_s=0.1,
        gross_energy_j=18_000.0, gross_energy_u_j=3.0, mean_power_w=150.0, net_energy_j=12_000.0,
        net_energy_u_j=4.0,
    )  # fmt: skip
    fields.update(changes)
    return WindowResult(**fields)


def test_emissions_csv_has_codecarbons_columns_and_units(tmp_path):
    path = tmp_path / "emissions.csv"
    write_emissions_csv(path, [_window()], grid=egrid_factor("RFCW", 2019), meter="wattsup PRO")
    write_emissions_csv(path, [_window(engine="eval")], grid=country_factor("DEU"), pue=1.5, use_net=True)
    with path.open() as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames) == EMISSIONS_COLUMNS
        rows = list(reader)
    assert len(rows) == 2  # the second write appends, without a second header
    first, second = rows
    # 18,000 J = 0.005 kWh; x 1067.7 lb/MWh = 5.3385e-3 lb = 2.4215e-3 kg; over 120 s
    assert float(first["energy_consumed"]) == pytest.approx(0.005)
    assert float(first["emissions"]) == pytest.approx(0.005 * 1.0677 * 0.45359237)
    assert float(first["duration"]) == pytest.approx(120.0)
    assert float(first["emissions_rate"]) == pytest.approx(float(first["emissions"]) / 120.0)
    assert first["country_iso_code"] == "USA" and first["region"] == "RFCW"
    assert (first["project_name"], first["run_id"], first["experiment_id"]) == ("edgebench", "abc123", "train#0")
    assert "wattsup PRO" in first["tracking_mode"]
    # net energy above idle, PUE 1.5 included, on Germany's 381 g/kWh
    assert float(second["energy_consumed"]) == pytest.approx(12_000 / 3.6e6 * 1.5)
    assert float(second["emissions"]) == pytest.approx(12_000 / 3.6e6 * 1.5 * 0.381)
    assert second["country_iso_code"] == "DEU" and second["country_name"] == "Germany"
    assert float(second["pue"]) == 1.5


def test_emissions_csv_reads_back_with_pandas_as_codecarbon_users_do(tmp_path):
    import pandas as pd

    path = write_emissions_csv(tmp_path / "emissions.csv", [_window(), _window(engine="b")], grid=egrid_factor())
    frame = pd.read_csv(path)
    assert list(frame.columns) == list(EMISSIONS_COLUMNS)
    assert frame["energy_consumed"].sum() == pytest.approx(0.01)
    assert frame["duration"].dtype.kind == "f"


def test_pairing_result_windows_export(paired_result, tmp_path):
    rows = pairing_rows(paired_result)
    valid = [w for w in paired_result.windows if w.kind == "run" and w.valid]
    assert len(rows) == len(valid) == 3
    for row, w in zip(rows, valid, strict=True):
        assert (row["project_name"], row["experiment_id"]) == ("edgebench", f"{w.engine}#{w.repeat}")
        assert row["energy_consumed"] == pytest.approx(w.gross_energy_j / 3.6e6)
        assert row["emissions"] == pytest.approx(paired_result.grid.co2_kg(w.gross_energy_j))
        assert set(row) == set(EMISSIONS_COLUMNS)


@needs_codecarbon
def test_our_columns_are_codecarbons_emissions_data_fields():
    from codecarbon.output_methods.emissions_data import EmissionsData

    assert tuple(f.name for f in dataclasses.fields(EmissionsData)) == EMISSIONS_COLUMNS


def test_codecarbon_missing_is_named_before_the_meter_opens(tmp_path):
    # CodeCarbon made unimportable in a child interpreter (a None entry in sys.modules), installed or not
    code = (
        "import sys; sys.modules['codecarbon'] = None; from edgebench.cli import main; "
        f"main(['run', '--meter', {str(tmp_path / 'no-port')!r}, '--codecarbon', '--', 'true'])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "edgebench[codecarbon]" in proc.stderr and "no serial port" not in proc.stderr


@needs_codecarbon
@pytest.mark.slow
def test_codecarbon_side_by_side_over_the_same_window(tmp_path):
    out = tmp_path / "o"
    with start_emulator("lines", ConstantProfile(40.0), interval_s=0.05) as meter:
        proc = subprocess.run(
            [*edgebench_argv(), "run", "--meter", meter.port, "--protocol", "lines", "--idle-power", "10",
             "--codecarbon", "--country", "FRA", "--out", str(out), "--", sys.executable, "-c",
             "import time; time.sleep(2)"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "result.json").read_text())
    cc = data["codecarbon"]
    assert cc["country_iso_code"] == "FRA"
    assert cc["energy_kwh"] > 0 and cc["emissions_kg"] > 0
    assert data["gross_energy_j"] == pytest.approx(40.0 * data["duration_s"], rel=0.01)
    assert "codecarbon" in proc.stdout and "not a wall figure" in proc.stdout


def test_appending_to_an_emissions_csv_with_other_columns_is_refused_in_one_line(tmp_path):
    other = tmp_path / "emissions.csv"
    other.write_text("timestamp,project_name,duration,emissions\n2024-01-01T00:00:00,x,1.0,0.1\n")
    before = other.read_text()
    # said by `run` before the meter opens, not after the command ran
    res = subprocess.run(
        [*edgebench_argv(), "run", "--meter", str(tmp_path / "no-port"), "--emissions-csv", str(other), "--", "true"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "other columns" in res.stderr and "no serial port" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    with pytest.raises(BadInput, match="other columns"):
        write_emissions_csv(other, [_window()], grid=egrid_factor())
    assert other.read_text() == before  # nothing appended under the wrong header
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(BadInput, match="not"):
        write_emissions_csv(binary, [_window()], grid=egrid_factor())
