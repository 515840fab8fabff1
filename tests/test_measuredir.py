"""The measure directory: session/clock I/O, what resume keeps, and metadata that must agree across runs."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from edgebench.cli import cli
from edgebench.errors import BadInput
from edgebench.host.carbon import egrid_factor
from edgebench.host.measuredir import MeasureDir, Session, make_writable_dir, metadata_conflicts
from edgebench.records import SCHEMA_VERSION, ClockOffset, RunRecord, append_jsonl

GRID = egrid_factor("RFCW", 2019)


def _record(run_id, **device):
    return RunRecord(engine="e_1_8_8_fp32", backend="onnxruntime", clock="host:realtime", window_start_ns=1,
                     window_end_ns=2, iterations=1, batch=1, latencies_ns=(1,), run_id=run_id, device=device)


def test_session_round_trip(tmp_path):
    clock = ClockOffset(offset_ns=123, uncertainty_ns=456, method="ntp-style, 8 round trips")
    d = MeasureDir(tmp_path)
    d.write_session(Session(grid=GRID, meter="wattsup PRO", resolution_w=0.1, clock=clock))
    back = d.session()
    assert back.grid == GRID and back.clock == clock and back.meter == "wattsup PRO" and back.resolution_w == 0.1
    with pytest.raises(BadInput, match="session.json"):
        MeasureDir(tmp_path / "missing").session()


def test_device_facts_must_agree_and_versions_should():
    same = [_record("a", **{"board.model": "Jetson Orin Nano", "version.onnxruntime": "1.17"}),
            _record("a", **{"board.model": "Jetson Orin Nano", "version.onnxruntime": "1.17"})]
    assert metadata_conflicts(same) == ([], [])
    other_board = same + [_record("b", **{"board.model": "Raspberry Pi 5", "version.onnxruntime": "1.17"})]
    errors, warnings = metadata_conflicts(other_board)
    assert errors == ["board.model differs between runs (Jetson Orin Nano, Raspberry Pi 5)"] and warnings == []
    upgraded = same + [_record("b", **{"board.model": "Jetson Orin Nano", "version.onnxruntime": "1.18"})]
    assert metadata_conflicts(upgraded) == ([], ["version.onnxruntime differs between runs (1.17, 1.18)"])


def test_report_warns_when_runs_of_different_set_ups_are_mixed(tmp_path):
    import numpy as np

    from edgebench.host.store import open_store
    from edgebench.records import MeterReading

    d = MeasureDir(tmp_path / "m")
    d.path.mkdir()
    with open_store(d.path / "meter.sqlite") as store:
        for t in np.arange(0, 10, 0.1):
            store.add(MeterReading(t_ns=int(t * 1e9), power_w=5.0, meter="test"))
    runs = [dataclasses.replace(_record("a", **{"jetson.nvpmodel": "MAXN"}), window_start_ns=1_000_000_000,
                                window_end_ns=4_000_000_000, iterations=10, latencies_ns=(1,) * 10),
            dataclasses.replace(_record("b", **{"jetson.nvpmodel": "15W"}), window_start_ns=5_000_000_000,
                                window_end_ns=8_000_000_000, iterations=10, latencies_ns=(1,) * 10)]
    append_jsonl(d.runs, runs)
    d.write_session(Session(grid=GRID, meter="test"))
    result = CliRunner().invoke(cli, ["report", str(d.path)])
    assert result.exit_code == 0, result.output
    assert "jetson.nvpmodel differs between runs (15W, MAXN)" in result.output


def test_writable_dir_checks(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("")
    for bad, words in ((a_file, "is a file"), (a_file / "x", "lies under the file"),
                       (tmp_path / "exp#1?%", None)):
        if words is None:  # an odd but legal name is fine
            make_writable_dir(bad)
            assert bad.is_dir()
            continue
        with pytest.raises(BadInput, match=words):
            make_writable_dir(bad)


def test_resume_state_counts_valid_windows(tmp_path):
    d = MeasureDir(tmp_path)
    append_jsonl(d.runs, [dataclasses.replace(_record("a"), repeat=0), dataclasses.replace(_record("a"), repeat=1)])
    state = d.resume_state(None)  # nothing paired: nothing valid, both windows to measure again
    assert state.engines["e_1_8_8_fp32"].windows == 2 and state.engines["e_1_8_8_fp32"].next_repeat == 2
    assert state.missing("e_1_8_8_fp32", 3) == 3 and state.missing("other", 2) == 2
    assert json.loads(d.runs.read_text().splitlines()[0])["schema"] == SCHEMA_VERSION


def test_setup_facts_round_trip_in_session_json_and_say_what_changed(tmp_path):
    from edgebench.host.measuredir import SetupFacts
    from edgebench.records import AgentHello

    device = {"board.model": "Jetson Orin Nano", "cpu.model": "ARMv8 Processor rev 1 (v8l)", "os.arch": "aarch64",
              "jetson.nvpmodel": "15W", "version.onnxruntime": "1.17", "version.numpy": "1.26", "cpu.cores.logical": 6}
    hello = AgentHello(protocol=2, edgebench="0.1.0", hostname="orin", engines=3, device=device)
    facts = SetupFacts.from_hello(hello, "tweetawatt")
    assert facts == SetupFacts(agent_host="orin", meter_protocol="tweetawatt", board_model="Jetson Orin Nano",
                               cpu_model="ARMv8 Processor rev 1 (v8l)", arch="aarch64", power_mode="15W",
                               versions={"onnxruntime": "1.17", "numpy": "1.26"})  # fmt: skip
    d = MeasureDir(tmp_path)
    d.write_session(Session(grid=GRID, meter="test", setup=facts, extra={"agent": "local"}))
    assert json.loads(d.session_path.read_text())["setup"]["power_mode"] == "15W"
    assert d.session().setup == facts
    # what must agree, and what only warns; a fact one side does not know is not compared
    now = dataclasses.replace(facts, power_mode="MAXN", meter_protocol="", versions={"onnxruntime": "1.18"})
    assert facts.mismatches(now) == ["jetson.nvpmodel 15W -> MAXN"]
    assert facts.version_changes(now) == ["version.onnxruntime 1.17 -> 1.18"]
    assert facts.mismatches(facts) == [] and facts.version_changes(facts) == []
    # a malformed setup is one line naming the file
    bad = json.loads(d.session_path.read_text())
    for broken in ({**bad["setup"], "arch": 64}, {**bad["setup"], "versions": ["1.17"]}, "aarch64"):
        d.session_path.write_text(json.dumps({**bad, "setup": broken}))
        with pytest.raises(BadInput, match="session.json: setup"):
            d.session()


def test_an_older_session_json_gives_its_set_up_from_extra_and_the_records(tmp_path):
    from edgebench.host.measuredir import SetupFacts, earlier_setup

    d = MeasureDir(tmp_path)
    append_jsonl(d.runs, [_record("a", **{"board.model": "Raspberry Pi 5", "version.onnxruntime": "1.17"})])
    d.session_path.write_text(json.dumps({"version": 1, "grid": GRID.to_dict(), "meter": "test",
                                          "extra": {"agent_hostname": "pi", "meter_protocol": "wattsup"}}))
    session = d.session()
    assert session.setup is None
    assert earlier_setup(session, d.records()) == SetupFacts(
        agent_host="pi", meter_protocol="wattsup", board_model="Raspberry Pi 5", versions={"onnxruntime": "1.17"}
    )
