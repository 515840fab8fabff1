"""Every record round-trips through the file that carries it (issue 15 item 7): write, read back, the same value.

Property tests (hypothesis) over every record type of edgebench/records.py and every file the host reads and
writes: RunRecord (with PowerSample, RailEnergy, ModelFacts, Accuracy inside) through runs.jsonl, ClockOffset
through clock.json, Session through session.json, MeterReading through the meter store (the store gives back
time, power, meter and address; volts, amps, power factor and Wh are kept but pairing reads none of them),
EngineRow through a manifest row. NaN sensor figures are written as null and read back as NaN. Readers of
versioned documents (session.json, table.json, study.json) refuse a newer version with what to do.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebench.errors import BadInput
from edgebench.host.carbon import GridFactor
from edgebench.host.measuredir import MeasureDir, Session
from edgebench.records import (
    Accuracy,
    ClockOffset,
    EngineRow,
    MeterReading,
    ModelFacts,
    PowerSample,
    RailEnergy,
    RunRecord,
    append_jsonl,
    read_run_records,
    read_versioned_json,
)

EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64 = st.integers(-(2**63), 2**63 - 1)
text = st.text(max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
figure = st.one_of(finite, st.just(math.nan))  # a sensor's figure: NaN where the sensor gave none
fraction = st.floats(0.0, 1.0)
metadata_value = st.one_of(st.none(), st.booleans(), st.integers(), finite, text)
metadata = st.dictionaries(text, metadata_value, max_size=4)


def same(a, b) -> bool:
    """Equal, NaN included (repr shows every field; float reprs are exact)."""
    return repr(a) == repr(b)


accuracies = st.builds(
    Accuracy, top1=fraction, top5=st.one_of(st.none(), fraction), samples=st.integers(0, 10**6), dataset=text,
    preprocessing=text,
)  # fmt: skip
model_facts = st.builds(
    ModelFacts, params=st.one_of(st.none(), st.integers(0)), macs_per_inference=st.one_of(st.none(), st.integers(0)),
    flops_per_inference=st.one_of(st.none(), st.integers(0)), cache_key=text, accuracy=st.one_of(st.none(), accuracies),
)  # fmt: skip
power_samples = st.builds(
    PowerSample, t_ns=INT64, rails_mw=st.dictionaries(text, figure, max_size=3), total_mw=figure
)
rail_energies = st.builds(
    RailEnergy, sensor=text, total_rule=text, energy_j=figure, mean_power_w=figure, samples=st.integers(0, 10**6),
    estimate=st.booleans(),
)  # fmt: skip
latencies = st.lists(st.integers(0, 2**63 - 1), max_size=6).map(tuple)


@st.composite
def run_records(draw):
    kind = draw(st.sampled_from(["run", "idle"]))
    error = draw(st.one_of(st.just(""), text))
    start = draw(st.integers(-(2**62), 2**62))
    return RunRecord(
        engine=draw(text), backend=draw(text), clock=draw(st.sampled_from(["agent:realtime", "host:realtime"])),
        window_start_ns=start, window_end_ns=start + draw(st.integers(0, 2**62 - 1)),  # within int64, as read
        iterations=draw(st.integers(0 if error or kind == "idle" else 1, 10**9)),
        batch=draw(st.integers(1 if kind == "run" else 0, 1024)), latencies_ns=draw(latencies),
        warmup_latencies_ns=draw(latencies), kind=kind, timed_region=draw(text), settings=draw(metadata),
        device=draw(metadata), device_end=draw(metadata), sensor=draw(text),
        power_samples=tuple(draw(st.lists(power_samples, max_size=3))),
        rail_energy=draw(st.one_of(st.none(), rail_energies)), run_id=draw(text), repeat=draw(st.integers(0, 99)),
        warnings=tuple(draw(st.lists(text, max_size=2))), error=error, model=draw(st.one_of(st.none(), model_facts)),
        attempt=draw(st.integers(0, 9)), cpu_busy=draw(st.one_of(st.none(), fraction)),
    )  # fmt: skip


def _round_trip_runs(records):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.jsonl"
        append_jsonl(path, records)
        assert same(read_run_records(path), records)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(run_records(), min_size=1, max_size=2))
def test_run_records_round_trip_through_runs_jsonl(records):
    _round_trip_runs(records)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(run_records(), min_size=1, max_size=4))
def test_run_records_round_trip_through_runs_jsonl_at_length(records):
    _round_trip_runs(records)


def test_nan_sensor_figures_are_written_as_null_and_read_back(tmp_path):
    """The defect of issue 15 item 7: null `total_mw` / `mean_power_w` raised RecordError on reading."""
    record = RunRecord(
        engine="e_1_8_8_fp32", backend="b", clock="agent:realtime", window_start_ns=1, window_end_ns=2, iterations=1,
        batch=1, latencies_ns=(1,), sensor="ina3221",
        power_samples=(PowerSample(t_ns=1, rails_mw={"VDD_IN": math.nan}, total_mw=math.nan),),
        rail_energy=RailEnergy("ina3221", "VDD_IN", math.nan, math.nan, 0),
    )  # fmt: skip
    append_jsonl(tmp_path / "runs.jsonl", [record])
    line = json.loads((tmp_path / "runs.jsonl").read_text())
    assert line["power_samples"][0]["total_mw"] is None and line["rail_energy"]["mean_power_w"] is None
    (back,) = read_run_records(tmp_path / "runs.jsonl")
    assert math.isnan(back.power_samples[0].total_mw) and math.isnan(back.rail_energy.mean_power_w)
    assert same(back, record)


clock_offsets = st.builds(
    ClockOffset, offset_ns=INT64, reference_agent_ns=INT64, drift_ppm=finite, uncertainty_ns=st.integers(0, 2**63 - 1),
    method=text,
)  # fmt: skip
grids = st.builds(
    GridFactor, lb_co2_per_mwh=st.floats(0, 1e6), source=text, edition=text, region=text,
    kind=st.sampled_from(["average", "marginal"]),
)  # fmt: skip
sessions = st.builds(
    Session, grid=grids, meter=text, resolution_w=st.one_of(st.none(), st.floats(0, 1e3)), pue=st.floats(1, 10),
    min_samples=st.integers(2, 10**6),
    clock=st.one_of(st.none(), clock_offsets, st.dictionaries(text.filter(lambda k: k != "offset_ns"), clock_offsets,
                                                              min_size=1, max_size=3)),
    extra=st.dictionaries(text, metadata_value, max_size=4),
)  # fmt: skip


@EXAMPLES
@given(sessions)
def test_sessions_round_trip_through_session_json_and_clock_json(session):
    with tempfile.TemporaryDirectory() as tmp:
        d = MeasureDir(tmp)
        d.runs.write_text("")
        d.write_session(session)
        assert same(d.session(), session)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 120_000)), min_size=1, max_size=40, unique_by=lambda r: r[0]),
    st.sampled_from(["UM25C", "wattsup PRO", "lines"]), st.sampled_from(["", "0001"]), st.sampled_from(["sqlite", "csv"]),
)  # fmt: skip
def test_meter_readings_round_trip_through_the_store(rows, meter, address, kind):
    """Readings within their meter's limits, one per instant, in any order: the store gives each back."""
    from edgebench.host.store import load_trace, open_store, power_limit_w, summarize

    readings = [
        MeterReading(t_ns=1_767_225_600_000_000_000 + t, power_w=mw / 1000, meter=meter, address=address,
                     voltage_v=5.0, current_a=mw / 5000)
        for t, mw in rows if mw / 1000 <= power_limit_w(meter)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"log.{kind}"
        with open_store(path) as store:
            for r in readings:
                store.add(r)
        if not readings:
            return
        trace = load_trace(path)
        assert list(zip(trace.t_ns.tolist(), trace.power_w.tolist(), strict=True)) == sorted(
            (r.t_ns, r.power_w) for r in readings
        )
        info = summarize(path)
        assert (info.readings, info.meters, info.addresses) == (len(readings), (meter,), (address,))


@EXAMPLES
@given(
    st.builds(
        lambda backbone, batch, h, w, precision, backend, params, accuracy, versions: (
            backbone, batch, h, w, precision, backend, params, accuracy, versions),
        st.sampled_from(["resnet18", "mobilenet_v2", "squeezenet1_1"]), st.integers(1, 64), st.integers(1, 512),
        st.integers(1, 512), st.sampled_from(["fp32", "fp16"]), text, st.integers(0, 10**9),
        st.one_of(st.none(), accuracies), st.dictionaries(text, text, max_size=3),
    )
)  # fmt: skip
def test_engine_rows_round_trip_through_a_manifest_row(case):
    """What the agent sends for `engines` (ManifestEntry.to_dict over JSON) is what the host reads."""
    from edgebench.engines.manifest import ManifestEntry
    from edgebench.engines.spec import EngineSpec

    backbone, batch, h, w, precision, backend, params, accuracy, versions = case
    spec = EngineSpec(backbone, batch, h, w, precision)
    entry = ManifestEntry(
        name=spec.name, spec=spec, backend=backend, artifact=f"{spec.name}.onnx", cache_key="k" * 8, params=params,
        macs_per_inference=params * 2, macs_per_sample=params, flops_per_inference=params * 4, flops_per_sample=params,
        build_time_s=0.5, versions=versions, accuracy=accuracy,
    )  # fmt: skip
    row = EngineRow.from_wire(json.loads(json.dumps(entry.to_dict())))
    assert same(row, EngineRow(entry.name, backend, batch, entry.model_facts(), versions))


# --- versioned documents: a newer version is refused with what to do -----------------------------------------


def test_the_table_json_measure_writes_is_read_back_and_a_newer_one_refused(tmp_path, paired_result):
    from edgebench.host.table import TABLE_FORMAT, TABLE_VERSION, write_exports

    write_exports(paired_result, tmp_path)
    table = tmp_path / "table.json"
    doc = read_versioned_json(table, format=TABLE_FORMAT, newest=TABLE_VERSION, what="a table", advice="measure again")
    assert {row["engine"] for row in doc["engines"]} == {e.engine for e in paired_result.engines}
    doc["version"] = TABLE_VERSION + 1
    table.write_text(json.dumps(doc))
    with pytest.raises(BadInput, match=f"table.json is a table of format version {TABLE_VERSION + 1}, newer than "
                                       f"this edgebench reads \\({TABLE_VERSION}\\): upgrade edgebench"):  # fmt: skip
        read_versioned_json(table, format=TABLE_FORMAT, newest=TABLE_VERSION, what="a table", advice="measure again")


@pytest.mark.parametrize("content, words", [
    ({"format": "edgebench-study", "version": 3, "points": []}, "newer than this edgebench reads (2): upgrade"),
    ({"format": "edgebench-table", "version": 1}, "is not an edgebench study (format 'edgebench-table')"),
    ({"format": "edgebench-study", "version": "1"}, "is not a format version"),
    ([1, 2], "is not an edgebench study (format 'list')"),
    ("[" * 100_000, "not JSON"),
])  # fmt: skip
def test_study_json_says_what_to_do_with_a_newer_or_foreign_file(tmp_path, content, words):
    from edgebench.agent.study import read_study

    path = tmp_path / "study.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(BadInput, match=words.replace("(", "\\(").replace(")", "\\)")):
        read_study(tmp_path)


def test_session_json_of_a_newer_version_says_upgrade(tmp_path):
    d = MeasureDir(tmp_path)
    d.write_session(Session(grid=GridFactor(767.2, "EPA eGRID", "eGRID2023", "US")))
    data = json.loads(d.session_path.read_text())
    data["version"] += 1
    d.session_path.write_text(json.dumps(data))
    with pytest.raises(BadInput, match="newer than this edgebench reads: upgrade edgebench"):
        d.session()
