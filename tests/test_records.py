import json

import pytest

from edgebench.errors import BadInput
from edgebench.records import (
    ClockOffset,
    PowerSample,
    RailEnergy,
    RunRecord,
    append_jsonl,
    dumps,
    read_run_records,
)


def _record(**changes):
    base = dict(
        engine="resnet18_1_224_224_fp32",
        backend="onnxruntime",
        clock="agent:realtime",
        window_start_ns=1_700_000_000_000_000_000,
        window_end_ns=1_700_000_003_000_000_000,
        iterations=3,
        batch=2,
        latencies_ns=(1_000_000, 1_100_000, 900_000),
        warmup_latencies_ns=(5_000_000,),
        settings={"intra_op_threads": 2},
        power_samples=(PowerSample(t_ns=1, rails_mw={"VDD_IN": 5000.0}, total_mw=5000.0),),
        rail_energy=RailEnergy("ina3221", "VDD_IN", 15.0, 5.0, 3),
    )
    base.update(changes)
    return RunRecord(**base)


def test_run_record_round_trips_through_jsonl(tmp_path):
    path = tmp_path / "runs.jsonl"
    first, second = _record(), _record(engine="mobilenet_v2_1_224_224_fp16", rail_energy=None)
    append_jsonl(path, [first])
    append_jsonl(path, [second])
    assert read_run_records(path) == [first, second]
    assert first.samples_processed == 6
    assert first.duration_ns == 3_000_000_000


def test_record_line_is_tagged_with_type_and_version():
    data = json.loads(dumps(_record()))
    assert data["type"] == "RunRecord"
    assert data["schema"] == 1


def test_newer_format_version_is_refused_with_advice(tmp_path):
    path = tmp_path / "runs.jsonl"
    data = json.loads(dumps(_record()))
    data["schema"] = 99
    path.write_text(json.dumps(data) + "\n")
    with pytest.raises(BadInput, match="upgrade edgebench"):
        read_run_records(path)


def test_garbage_line_names_file_and_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(dumps(_record()) + "\nnot json\n")
    with pytest.raises(BadInput, match=r"runs.jsonl:2"):
        read_run_records(path)


def test_clock_offset_applies_offset_and_drift():
    offset = ClockOffset(offset_ns=1_000, reference_agent_ns=0, drift_ppm=10.0)
    assert offset.to_host_ns(0) == 1_000
    # 10 ppm of one second is 10 microseconds
    assert offset.to_host_ns(1_000_000_000) == 1_000_000_000 + 1_000 + 10_000
