import json

import pytest

from edgebench.errors import BadInput
from edgebench.records import (
    SCHEMA_VERSION,
    Accuracy,
    ClockOffset,
    ModelFacts,
    PowerSample,
    RailEnergy,
    RunRecord,
    append_jsonl,
    dumps,
    read_run_records,
    run_record_from_dict,
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
    assert data["schema"] == SCHEMA_VERSION == 3


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


def test_format_1_lines_are_read_into_the_typed_fields():
    line = {
        "type": "RunRecord", "schema": 1, "engine": "resnet18_1_224_224_fp32", "backend": "onnxruntime",
        "clock": "agent:realtime", "window_start_ns": 1, "window_end_ns": 2, "iterations": 0, "batch": 1,
        "latencies_ns": [], "settings": {"error": "engine crashed", "model.params": 11689512,
                                          "model.flops_per_inference": 3600000000, "threads": 2},
    }
    record = run_record_from_dict(line)
    assert record.error == "engine crashed" and record.failed
    assert record.model == ModelFacts(params=11689512, flops_per_inference=3600000000)
    assert dict(record.settings) == {"threads": 2}
    assert record.schema == SCHEMA_VERSION


def test_model_facts_with_accuracy_round_trip(tmp_path):
    facts = ModelFacts(params=10, macs_per_inference=5, flops_per_inference=10, cache_key="k",
                       accuracy=Accuracy(top1=0.9, top5=None, samples=360, dataset="digits", preprocessing="area"))
    path = tmp_path / "runs.jsonl"
    append_jsonl(path, [_record(model=facts, attempt=1, error="")])
    (back,) = read_run_records(path)
    assert back.model == facts and back.attempt == 1



@pytest.mark.parametrize(
    "line, words",
    [
        (b"\xff\xfe garbage\n", "not UTF-8"),
        (b"[1, 2, 3]\n", "not list"),
        (b'"text"\n', "not str"),
        (b"{not json\n", "not a JSON line"),
        (b"[" * 30000 + b"\n", "not a JSON line"),
        (b'{"type": "RunRecord", "engine": "x"}\n', "'clock' is missing"),
        (b'{"type": "RunRecord", "engine": 5, "clock": "c", "window_start_ns": 1, "window_end_ns": 2,'
         b' "iterations": 1, "batch": 1}\n', "'engine' is int"),
        (b'{"type": "RunRecord", "engine": "e", "clock": "c", "window_start_ns": "1", "window_end_ns": 2,'
         b' "iterations": 1, "batch": 1}\n', "'window_start_ns' is str"),
        (b'{"type": "RunRecord", "engine": "e", "clock": "c", "window_start_ns": 1, "window_end_ns": 2,'
         b' "iterations": true, "batch": 1}\n', "'iterations' is True"),
        (b'{"type": "RunRecord", "engine": "e", "clock": "c", "window_start_ns": 1, "window_end_ns": 2,'
         b' "iterations": 1, "batch": 1, "latencies_ns": [1, "a"]}\n', "list of integers"),
        (b'{"type": "RunRecord", "engine": "e", "clock": "c", "window_start_ns": 1, "window_end_ns": 2,'
         b' "iterations": 1, "batch": 1, "settings": [1]}\n', "'settings' is list"),
        (b'{"type": "RunRecord", "schema": "x", "engine": "e"}\n', "unknown run record format"),
        (b'{"type": "RunRecord", "engine": "e", "clock": "c", "window_start_ns": 1, "window_end_ns": 2,'
         b' "iterations": 1, "batch": 1, "rail_energy": {"sensor": "s"}}\n', "'total_rule' is missing"),
        (b'{"type": "RunRecord", "schema": 2, "engine": "e", "clock": "c", "window_start_ns": 1, "window_end_ns": 2,'
         b' "iterations": 1, "batch": 1, "model": {"accuracy": {"top1": 7, "samples": 1, "dataset": "d"}}}\n',
         "fractions"),
    ],
)
def test_corrupt_lines_are_one_line_errors_naming_file_and_line(tmp_path, line, words):
    path = tmp_path / "runs.jsonl"
    append_jsonl(path, [_record()])
    with path.open("ab") as f:
        f.write(line)
    with pytest.raises(BadInput) as err:
        read_run_records(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2: ") and words in message and "\n" not in message


def test_windows_as_their_writers_write_them_read_back(tmp_path):
    """The limits on reading (issue 18 item 5) refuse nothing a writer writes: an idle window of batch 0 (the
    agent's), a failed window stamped at one instant with no iteration (measure's), a one-iteration window."""
    from edgebench.records import append_jsonl, read_run_records

    common = dict(backend="onnxruntime", clock="agent:realtime", latencies_ns=())
    records = [
        RunRecord(engine="idle", window_start_ns=1, window_end_ns=9, iterations=0, batch=0, kind="idle", **common),
        RunRecord(engine="e_1_8_8_fp32", window_start_ns=5, window_end_ns=5, iterations=0, batch=1,
                  error="out of memory", **common),
        RunRecord(engine="e_1_8_8_fp32", window_start_ns=5, window_end_ns=6, iterations=1, batch=1, **common),
    ]  # fmt: skip
    append_jsonl(tmp_path / "runs.jsonl", records)
    assert read_run_records(tmp_path / "runs.jsonl") == records
