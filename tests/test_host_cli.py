import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgebench.cli import cli
from edgebench.errors import BadInput
from edgebench.host.carbon import egrid_factor
from edgebench.host.cli import parse_clock_offset
from edgebench.host.measuredir import MeasureDir, Session
from edgebench.records import ClockOffset, RunRecord, append_jsonl

EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


# --- carbon ---------------------------------------------------------------------------------------------------


def test_carbon_seed_inference_example():
    res = invoke("carbon", "--energy", "0.386J", "--grid", "RFCW", "--egrid", "2019")
    assert res.exit_code == 0, res.output
    assert "1.145e-07 lbs" in res.output
    assert "1.072e-07 kWh" in res.output
    assert "5.193e-08 kg" in res.output
    assert "eGRID2019" in res.output


def test_carbon_seed_training_row_json():
    res = invoke(
        "carbon",
        "--power",
        "147W",
        "--hours",
        "9.25",
        "--pue",
        "1.58",
        "--intensity",
        "0.954lb/kWh",
        "--json",
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    # seed 004 baseline row: 2.149 kWh, 2.049 lbs (hand-rounded); the formula gives 2.1484 kWh, 2.0496 lbs
    assert data["energy_kwh"] == pytest.approx(2.149, abs=0.001)
    assert data["co2_lb"] == pytest.approx(2.049, abs=0.001)
    assert data["pue"] == 1.58
    assert data["grid"]["source"] == "user-given"


def test_carbon_country_and_equivalents():
    res = invoke("carbon", "--energy", "1kWh", "--country", "France", "--equivalents")
    assert res.exit_code == 0, res.output
    assert "0.056 kg" in res.output
    assert "smartphone charges" in res.output and "confirm before quoting" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--energy", "0.386"], "unit"),
        (["--energy", "1J", "--grid", "NOPE"], "RFCW"),
        (["--energy", "1J", "--grid", "RFCW", "--egrid", "2001"], "2019, 2022, 2023"),
        (["--energy", "1J", "--grid", "RFCW", "--intensity", "400g/kWh"], "exactly one"),
        (["--energy", "1J", "--country", "Atlantis"], "Atlantis"),
        (["--energy", "1J", "--pue", "0.5"], "--pue"),
        (["--energy", "1J", "--pue", "nan"], "--pue"),
        (["--power", "1W", "--hours", "inf"], "--hours"),
        (["--power", "147W"], "--hours"),
        (["--energy", "1J", "--power", "1W", "--hours", "1"], "either"),
        (["--energy", "1J", "--intensity", "400"], "unit"),
    ],
)
def test_carbon_bad_input_exits_2_with_one_line(args, message):
    res = invoke("carbon", *args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_parse_clock_offset():
    assert parse_clock_offset("0") == 0
    assert parse_clock_offset("1500000") == 1_500_000
    assert parse_clock_offset("12.5ms") == 12_500_000
    assert parse_clock_offset("-1.2s") == -1_200_000_000
    assert parse_clock_offset("300us") == 300_000
    for bad in ("1.5", "abc", "5 min"):
        with pytest.raises(BadInput):
            parse_clock_offset(bad)


# --- pair and report (through the meter store's loader) --------------------------------------------------------


def _write_meter_csv(path, offset_s=0.0):
    t_s = np.arange(0, 60, 0.1)
    p = np.where(t_s < 20, 2.0, np.where(t_s < 40, 6.0, 4.0))
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["t_ns", "power_w"])
        for t, w in zip(t_s, p, strict=True):
            writer.writerow([EPOCH + int(round((t + offset_s) * 1e9)), w])


def _records(path, shift_s=0.0):
    def rec(engine, a, b, iterations, kind="run"):
        return RunRecord(
            engine=engine,
            backend="onnxruntime",
            clock="agent:realtime",
            window_start_ns=EPOCH + int((a - shift_s) * S),
            window_end_ns=EPOCH + int((b - shift_s) * S),
            iterations=iterations,
            batch=2,
            latencies_ns=(50_000_000,) * iterations,
            kind=kind,
        )

    append_jsonl(
        path,
        [
            rec("idle", 2, 18, 0, kind="idle"),
            rec("resnet18_2_224_224_fp16", 22, 38, 320),  # 6 W x 16 s / 320 = 0.3 J gross, 0.2 net
            rec("mbv2_2_224_224_fp16", 42, 58, 320),  # 4 W: 0.2 gross, 0.1 net
        ],
    )


def _measure_dir(tmp_path, shift_s=0.0, **session):
    """A measure directory as `measure` leaves it: the meter log, the runs (agent clock `shift_s` behind), and a
    session on eGRID2019 RFCW with `session`'s other fields."""
    d = tmp_path / "measure"
    d.mkdir()
    _write_meter_csv(d / "meter.csv")
    _records(d / "runs.jsonl", shift_s=shift_s)
    MeasureDir(d).write_session(Session(grid=egrid_factor("RFCW", 2019), meter="test", **session))
    return d


@pytest.fixture
def store():
    from edgebench.host import store

    return store


def test_pair_command_ranks_engines_and_writes_exports(tmp_path, store):
    _write_meter_csv(tmp_path / "meter.csv")
    _records(tmp_path / "runs.jsonl")
    res = invoke(
        "pair", str(tmp_path / "runs.jsonl"), str(tmp_path / "meter.csv"), "--grid", "RFCW", "--egrid", "2019",
        "--format", "json", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    first, second = doc["engines"]
    assert first["engine"] == "mbv2_2_224_224_fp16"
    assert first["net_j_per_inference"] == pytest.approx(0.1, rel=1e-6)
    assert second["gross_j_per_inference"] == pytest.approx(0.3, rel=1e-6)
    assert (tmp_path / "out" / "table.csv").is_file()


def test_pair_command_applies_clock_offset(tmp_path, store):
    _write_meter_csv(tmp_path / "meter.csv")
    _records(tmp_path / "runs.jsonl", shift_s=3.5)  # the agent clock runs 3.5 s behind the host
    args = [str(tmp_path / "runs.jsonl"), str(tmp_path / "meter.csv"), "--format", "csv", "--sort", "engine"]
    right = list(csv.DictReader(invoke("pair", *args, "--clock-offset", "3500ms").stdout.splitlines()))
    assert float(right[0]["gross_j_per_inference"]) == pytest.approx(0.2, rel=1e-6)
    wrong = list(csv.DictReader(invoke("pair", *args).stdout.splitlines()))
    assert float(wrong[0]["gross_j_per_inference"]) != pytest.approx(0.2, rel=1e-3)


def test_pair_command_bad_input(tmp_path, store):
    _write_meter_csv(tmp_path / "meter.csv")
    _records(tmp_path / "runs.jsonl")
    res = invoke("pair", str(tmp_path / "runs.jsonl"), str(tmp_path / "meter.csv"), "--sort", "colour")
    assert res.exit_code == 2 and "unknown sort column" in res.output
    res = invoke("pair", str(tmp_path / "missing.jsonl"), str(tmp_path / "meter.csv"))
    assert res.exit_code == 2 and "run-record file" in res.output
    res = invoke("pair", str(tmp_path / "runs.jsonl"), str(tmp_path / "meter.csv"), "--clock-offset", "soon")
    assert res.exit_code == 2 and "clock offset" in res.output


def _write_two_sensor_log(store, path):
    """A Tweet-a-Watt receiver's log: sensor 0001 follows the runs' profile, sensor 0002 (another plug) 100 W."""
    from edgebench.records import MeterReading

    t_s = np.arange(0, 60, 0.1)
    p = np.where(t_s < 20, 2.0, np.where(t_s < 40, 6.0, 4.0))
    with store.open_store(path) as log:
        for t, w in zip(t_s, p, strict=True):
            t_ns = EPOCH + int(round(t * 1e9))
            log.add(MeterReading(t_ns=t_ns, power_w=float(w), meter="tweetawatt", address="0001"))
            log.add(MeterReading(t_ns=t_ns + 1_000, power_w=100.0, meter="tweetawatt", address="0002"))


def test_pair_address_picks_one_sensor_of_several(tmp_path, store):
    _write_two_sensor_log(store, tmp_path / "twa.sqlite")
    _records(tmp_path / "runs.jsonl")
    args = ["pair", str(tmp_path / "runs.jsonl"), str(tmp_path / "twa.sqlite"), "--format", "json"]
    res = invoke(*args, "--address", "0001")
    assert res.exit_code == 0, res.output
    engines = {e["engine"]: e for e in json.loads(res.stdout)["engines"]}
    assert engines["resnet18_2_224_224_fp16"]["gross_j_per_inference"] == pytest.approx(0.3, rel=1e-6)
    assert engines["mbv2_2_224_224_fp16"]["net_j_per_inference"] == pytest.approx(0.1, rel=1e-6)
    other = json.loads(invoke(*args, "--address", "0002").stdout)["engines"]
    assert other[0]["gross_j_per_inference"] == pytest.approx(100.0 * 16 / 320, rel=1e-6)  # the other plug
    for spelling in ("2", "0x2", "0x0002"):  # read as hexadecimal, as the addresses are shown
        same = json.loads(invoke(*args, "--address", spelling).stdout)["engines"]
        assert same[0]["gross_j_per_inference"] == other[0]["gross_j_per_inference"]


def _error_lines(res):
    return [line for line in res.output.splitlines() if line.startswith("edgebench: error:")]


def test_pair_address_missing_or_unknown_is_one_line_exit_2(tmp_path, store):
    _write_two_sensor_log(store, tmp_path / "twa.sqlite")
    _records(tmp_path / "runs.jsonl")
    args = ["pair", str(tmp_path / "runs.jsonl"), str(tmp_path / "twa.sqlite")]
    res = invoke(*args)
    assert res.exit_code == 2 and "Traceback" not in res.output
    (line,) = _error_lines(res)
    assert "holds several sensors (0001, 0002): choose one with --address (e.g. --address 0001)" in line
    res = invoke(*args, "--address", "0009")
    assert res.exit_code == 2
    (line,) = _error_lines(res)
    assert "has no sensor '0009': it has 0001, 0002; pass one of them to --address" in line
    _write_meter_csv(tmp_path / "one.csv")  # a single meter: no addresses at all
    res = invoke("pair", str(tmp_path / "runs.jsonl"), str(tmp_path / "one.csv"), "--address", "0001")
    assert res.exit_code == 2 and "records no sensor addresses (one meter), drop --address" in res.output


def test_report_re_renders_a_measure_directory(tmp_path, store):
    d = _measure_dir(tmp_path, shift_s=1.0, clock=ClockOffset(offset_ns=S))
    res = invoke("report", str(d), "--format", "md", "--write")
    assert res.exit_code == 0, res.output
    assert "| 1 | mbv2_2_224_224_fp16 |" in res.stdout
    assert "RFCW" in res.stdout
    doc = json.loads((d / "table.json").read_text())
    assert doc["engines"][0]["net_j_per_inference"] == pytest.approx(0.1, rel=1e-6)
    res = invoke("report", str(d), "--country", "DEU", "--format", "json")
    assert json.loads(res.stdout)["grid"]["region"].startswith("DEU")
    res = invoke("report", str(tmp_path / "nothing"))
    assert res.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [["--resolution", "nan"], ["--resolution", "-1"], ["--pue", "inf"], ["--pue", "0.5"], ["--min-samples", "1"]],
)
def test_pair_refuses_numbers_that_are_not_finite_or_in_range(tmp_path, store, args):
    _write_meter_csv(tmp_path / "meter.csv")
    _records(tmp_path / "runs.jsonl")
    res = invoke("pair", str(tmp_path / "runs.jsonl"), str(tmp_path / "meter.csv"), *args)
    assert res.exit_code == 2 and f"Invalid value for '{args[0]}'" in res.output, res.output


def test_pair_out_under_a_file_is_refused_before_writing(tmp_path, store):
    _write_meter_csv(tmp_path / "meter.csv")
    _records(tmp_path / "runs.jsonl")
    (tmp_path / "f").write_text("")
    res = invoke("pair", str(tmp_path / "runs.jsonl"), str(tmp_path / "meter.csv"), "--out", str(tmp_path / "f" / "o"))
    assert res.exit_code == 2 and "lies under the file" in res.output and "Traceback" not in res.output


def test_report_projects_the_first_engine_over_a_lifetime(tmp_path, store):
    from edgebench.host.carbon import kg_to_lb

    d = _measure_dir(tmp_path, shift_s=1.0, clock=ClockOffset(offset_ns=S))
    doc = json.loads(invoke("report", str(d), "--format", "json").stdout)
    best = doc["engines"][0]
    res = invoke("report", str(d), "--per-day", "1000", "--years", "3", "--embodied", "20kg",
                 "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 0, res.output
    assert f"{best['engine']} (rank 1) over its life, wall energy:" in res.stdout
    assert "lifetime 1,000 images/day x 3 years = 1,095,750 images" in res.stdout
    kwh = best["gross_j_per_sample"] * 1_095_750 / 3.6e6  # per image: --per-day counts images
    assert f"energy {kwh:.4g} kWh" in res.stdout
    co2 = egrid_factor("RFCW", 2019).co2_kg(best["gross_j_per_sample"] * 1_095_750)
    assert f"operational CO2 {co2:.4g} kg = {kg_to_lb(co2):.4g} lbs" in res.stdout
    page = (tmp_path / "r.html").read_text()
    assert 'id="lifetime"' in page and "1,095,750 images" in page
    bad = invoke("report", str(d), "--per-day", "1000")
    assert bad.exit_code == 2 and "--per-day and --years together" in bad.output


def test_pair_refuses_a_min_samples_beyond_any_window(tmp_path, store):
    """--min-samples is one option on pair, measure and run, bounded on all three: a huge count used to reach the
    pairing (and end in an OverflowError traceback) on pair and measure."""
    _write_meter_csv(tmp_path / "meter.csv")
    _records(tmp_path / "runs.jsonl")
    res = invoke("pair", str(tmp_path / "runs.jsonl"), str(tmp_path / "meter.csv"), "--min-samples", "9" * 400)
    assert res.exit_code == 2, res.output
    assert "Invalid value for '--min-samples'" in res.output and "Traceback" not in res.output


def test_report_and_pair_append_every_valid_window_to_an_emissions_csv(tmp_path, store):
    """`--emissions-csv` on report and pair: codecarbon_bridge.pairing_rows reaches users, one row per valid
    engine window, in CodeCarbon's columns; a file of other columns is refused before any work."""
    from edgebench.host.codecarbon_bridge import EMISSIONS_COLUMNS

    d = _measure_dir(tmp_path, pue=1.5)
    out = tmp_path / "emissions.csv"
    res = invoke("report", str(d), "--emissions-csv", str(out), "--format", "json")
    assert res.exit_code == 0, res.output
    engines = {e["engine"]: e for e in json.loads(res.stdout)["engines"]}
    rows = list(csv.DictReader(out.open()))
    assert tuple(rows[0]) == EMISSIONS_COLUMNS
    assert [r["experiment_id"] for r in rows] == ["resnet18_2_224_224_fp16#0", "mbv2_2_224_224_fp16#0"]
    for row in rows:
        gross_j = engines[row["experiment_id"].split("#")[0]]["gross_j_per_inference"] * 320
        assert float(row["energy_consumed"]) == pytest.approx(gross_j * 1.5 / 3.6e6)  # the session's PUE
        assert float(row["emissions"]) == pytest.approx(egrid_factor("RFCW", 2019).co2_kg(gross_j * 1.5))
    res = invoke("pair", str(d / "runs.jsonl"), str(d / "meter.csv"), "--emissions-csv", str(out))
    assert res.exit_code == 0, res.output
    assert len(list(csv.DictReader(out.open()))) == 4  # appended under the one header
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    res = invoke("report", str(d), "--emissions-csv", str(other))
    assert res.exit_code == 2 and "other columns than CodeCarbon's" in res.output and "Traceback" not in res.output
    assert other.read_text() == "a,b\n1,2\n"
