"""Checks shared by the HTTP plugs' tests and Kasa's: an outage is one gap said once each way, and `measure`
through an emulated plug agrees with the emulated profile's closed form (no edgebench integration code)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from waiting import wait_for

from edgebench.cli import cli
from edgebench.host.measuredir import MeasureDir
from edgebench.host.meters.emulate import ConstantProfile, start_emulator
from edgebench.host.store import load_trace
from edgebench.records import read_run_records


def check_outage_is_one_gap(logger_class, firmware: str, fault: str, out: Path, capsys) -> None:
    """The plug goes away (`fault`: timeout or drop) from 1 s to 2 s after its start: said once when it goes and
    once when it is back, logging goes on, and the store has one gap around the outage."""
    with start_emulator(firmware, ConstantProfile(5.0), interval_s=0.1, faults={fault: ((1.0, 2.0),)}) as emu:
        logger = logger_class(emu.port, out, timeout_s=0.3).start()
        try:
            assert wait_for(lambda: logger.stats.reconnects >= 1, timeout_s=20)
            count = logger.stats.readings
            assert wait_for(lambda: logger.stats.readings >= count + 3)
        finally:
            logger.stop()
    err = capsys.readouterr().err
    assert err.count(f"warning: lost the plug {emu.port}") == 1
    assert err.count(f"warning: the plug {emu.port} answers again") == 1
    trace = load_trace(out)
    assert len(trace.gaps) == 1
    start, end = trace.gaps[0]
    # the gap runs from the last reading before the outage to the first after it, around the emulator's span
    outage = (emu.t0_ns + 1_000_000_000, emu.t0_ns + 2_000_000_000)
    assert start <= outage[0] + 300_000_000 and end >= outage[1] - 100_000_000
    assert start in trace.t_ns.tolist() and end in trace.t_ns.tolist()


def closed_form(profile, t0_ns):
    """Joules of the emulated (linear) profile between two host-clock times: exact, no edgebench code."""

    def energy(start_ns, end_ns):
        mid_s = ((start_ns + end_ns) / 2 - t0_ns) / 1e9
        return (end_ns - start_ns) / 1e9 * profile.watts_at(mid_s)

    return energy


def measure_through(meter: str, engines: Path, out: Path, *extra: str) -> Result:
    """`edgebench measure` of the tiny engines through `meter`, two repeats of 1.5 s after a 1.5 s idle."""
    return CliRunner().invoke(cli, [
        "measure", "--meter", meter, *extra, "--engines", str(engines), "--duration", "1.5", "--idle", "1.5",
        "--repeat", "2", "--out", str(out), "--warmup", "0.2", "--sensor", "none", "--threads", "1",
    ], catch_exceptions=False)  # fmt: skip


def check_against_closed_form(out: Path, profile, t0_ns: int, protocol: str) -> None:
    """Every engine's gross J per inference within 1 % of the closed form over the windows the table counts; net
    within 3 of its stated sigmas; the session names the meter's protocol."""
    energy = closed_form(profile, t0_ns)
    # the windows the table counts (one the meter invalidated under load is measured again and not counted)
    valid = {(w.engine, w.repeat, w.attempt) for w in MeasureDir(out).pair().windows if w.valid}
    records = [r for r in read_run_records(out / "runs.jsonl") if (r.engine, r.repeat, r.attempt) in valid]
    table = {row["engine"]: row for row in json.loads((out / "table.json").read_text())["engines"]}
    idle = [r for r in records if r.kind == "idle"]
    idle_w = sum(energy(r.window_start_ns, r.window_end_ns) for r in idle) / sum(
        (r.window_end_ns - r.window_start_ns) / 1e9 for r in idle
    )
    assert table
    for name, row in table.items():
        runs = [r for r in records if r.engine == name]
        joules = sum(energy(r.window_start_ns, r.window_end_ns) for r in runs)
        seconds = sum((r.window_end_ns - r.window_start_ns) / 1e9 for r in runs)
        iterations = sum(r.iterations for r in runs)
        assert row["status"] == "ok"
        assert row["gross_j_per_inference"] == pytest.approx(joules / iterations, rel=0.01), name
        # net: within its stated uncertainty (3 sigma) of the closed form
        net = (joules - idle_w * seconds) / iterations
        assert abs(row["net_j_per_inference"] - net) <= 3 * row["net_j_per_inference_u"], (name, row, net)
    session = json.loads((out / "session.json").read_text())
    assert session["extra"]["meter_protocol"] == protocol
