"""The logger end to end through real ptys and sockets: emulator -> MeterLogger -> store -> load_trace."""

import errno
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from waiting import wait_for

from edgebench.errors import BadInput, PermissionDenied
from edgebench.host.logger import MeterLogger, translate_open_error
from edgebench.host.meters.emulate import (
    ConstantProfile,
    Faults,
    RampProfile,
    StepsProfile,
    WattsupEncoder,
    start_emulator,
)
from edgebench.host.store import COMMIT_INTERVAL_S, load_trace


def _rows(path):
    try:
        return len(load_trace(path).t_ns)
    except BadInput:
        return 0  # created but its tables are not there yet


def _wait_for(predicate, timeout_s=5.0, step_s=0.002):
    return wait_for(predicate, timeout_s, step_s)  # this file's defaults: the logger's events come fast


def _sent_values(emu):
    """What the emulator says it sent intact, in order: (send time, watts as the lines encoder prints them)."""
    return [(t, round(w, 2)) for t, w, bad in list(emu.sent) if not bad]


def _a_run_of(stored, sent):
    """The stored values are exactly a contiguous run of the sent ones: nothing lost, doubled or invented between
    the first and the last reading the logger committed. Returns the run's (send time, value) pairs."""
    values = [v for _, v in sent]
    start = values.index(stored[0])
    assert values[start : start + len(stored)] == stored
    return sent[start : start + len(stored)]


def test_lines_end_to_end_with_corrupt_frames(tmp_path):
    """Every intact line the emulator sent after the logger's first reading is stored, in order (a ramp makes
    each value unique); damaged ones are counted. Nothing is counted from the emulator's start: frames written
    before the logger opened the port are not the logger's (the open discards them, as a UART would)."""
    out = tmp_path / "m.sqlite"
    faults = Faults(corrupt_every=5, garbage_every=7)
    with start_emulator("lines", RampProfile(4.0, 1.0), interval_s=0.05, faults=faults) as emu:
        logger = MeterLogger(emu.port, "lines", out).start()
        try:
            assert _wait_for(lambda: logger.stats.readings >= 24 and logger.stats.bad_frames >= 3, timeout_s=20)
        finally:
            logger.stop()
    trace = load_trace(out)
    assert logger.stats.readings == len(trace.t_ns) >= 24
    run = _a_run_of(trace.power_w.tolist(), _sent_values(emu))
    # each reading is stamped when its line arrived, after the emulator wrote it; lines that arrived together (a
    # late read on a busy machine) are spaced back from the arrival by the period, never more than one early
    assert all(t_read >= t_sent - 50_000_000 for (t_sent, _), t_read in zip(run, trace.t_ns.tolist(), strict=True))
    assert trace.meter == "lines" and logger.rate_hz > 0


def test_readings_read_together_keep_their_own_times_and_none_is_lost(tmp_path):
    """At 100 readings/s the logger reads two or more lines at a time (BATCH_S, or late on a busy machine). They
    were stamped with one time, and a store's reader keeps the first of readings sharing a time: 42 % of a 4 s
    log at 100 readings/s was dropped. Each now has its own time, a period apart, and every one is read back."""
    out = tmp_path / "fast.sqlite"
    with start_emulator("lines", RampProfile(12.5, 1.0), interval_s=0.01) as emu:
        logger = MeterLogger(emu.port, "lines", out).start()
        try:
            assert _wait_for(lambda: logger.stats.readings >= 200, timeout_s=30)
        finally:
            logger.stop()
    trace = load_trace(out)
    assert len(trace.t_ns) == logger.stats.readings >= 200 and trace.duplicate_readings == 0
    times = trace.t_ns.tolist()
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    run = _a_run_of(trace.power_w.tolist(), _sent_values(emu))
    assert all(t_read >= t_sent - 10_000_000 for (t_sent, _), t_read in zip(run, times, strict=True))


def test_lines_piled_up_before_the_first_read_are_not_timed_before_they_were_sent(tmp_path):
    """The loop can start late after the open on a busy machine, and its first read then brings several lines.
    The meter's period is not known yet: they were spaced a guessed 20 ms apart back from their arrival, so at
    100 readings/s the first was timed up to 60 ms before the emulator sent it (a stress run). They are now
    spaced back no further than the open, and like every reading never more than one period early."""
    out = tmp_path / "late.sqlite"
    with start_emulator("lines", RampProfile(12.5, 1.0), interval_s=0.01) as emu:
        logger = MeterLogger(emu.port, "lines", out)
        before_open = time.time_ns()
        logger.open()
        opened = emu.frames
        assert _wait_for(lambda: emu.frames >= opened + 8)  # lines pile up unread: the loop has not started
        loop = threading.Thread(target=logger.run)
        loop.start()
        try:
            assert _wait_for(lambda: logger.stats.readings >= 20)
        finally:
            logger.request_stop()
            loop.join(timeout=10)
    assert not loop.is_alive()
    trace = load_trace(out)
    times = trace.t_ns.tolist()
    assert len(times) >= 20 and times[0] > before_open
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    run = _a_run_of(trace.power_w.tolist(), _sent_values(emu))
    assert all(t_read >= t_sent - 10_000_000 for (t_sent, _), t_read in zip(run, times, strict=True))


def test_tweetawatt_end_to_end_through_a_pty(tmp_path):
    out = tmp_path / "twa.csv"
    with start_emulator(
        "tweetawatt", ConstantProfile(42.0), interval_s=0.1, faults={"corrupt_every": 4}
    ) as emu:
        with MeterLogger(emu.port, "tweetawatt", out) as logger:
            assert _wait_for(lambda: logger.stats.readings >= 8)
            latest = logger.latest()
    trace = load_trace(out)
    assert len(trace.t_ns) >= 8
    assert abs(trace.power_w - 42.0).max() <= trace.resolution_w
    assert latest is not None and latest.address == "0001"
    assert logger.stats.bad_frames >= 2 and logger.meter == "tweetawatt"


def test_silence_is_recorded_as_a_gap(tmp_path):
    out = tmp_path / "gap.sqlite"
    with start_emulator(
        "lines", ConstantProfile(3.0), interval_s=0.05, faults={"silence": ((0.4, 1.2),)}
    ) as emu:
        logger = MeterLogger(emu.port, "lines", out).start()
        try:
            # the gap is recorded, and closed by the first reading after the silence
            assert _wait_for(lambda: logger.stats.gaps >= 1 and logger._silent_since_ns is None, timeout_s=20)  # noqa: SLF001
        finally:
            logger.stop()
    trace = load_trace(out)
    assert logger.stats.gaps >= 1  # more only if this shared box stalled the logger for 3 periods
    start, end = max(trace.gaps, key=lambda g: g[1] - g[0])
    # the emulator's silence, from its last frame before to its first after: the gap spans it, less the time the
    # last frame before it took to be read
    sent = [t for t, _, _ in emu.sent]
    before = max(t for t in sent if t <= start)
    first_after = min(t for t in sent if t > before)
    assert first_after - before >= 700_000_000  # the 0.8 s the emulator was told to be silent
    assert end - start >= first_after - before - (start - before)
    # the gap spans exactly the hole between two stored readings
    assert start in trace.t_ns.tolist() and end in trace.t_ns.tolist()


def test_socket_drop_reconnects(tmp_path):
    out = tmp_path / "tcp.sqlite"
    with start_emulator(
        "lines", ConstantProfile(7.0), interval_s=0.05, transport="tcp", faults={"drop_after_s": 0.5}
    ) as emu:
        assert emu.port.startswith("socket://127.0.0.1:")
        logger = MeterLogger(emu.port, "lines", out).start()
        try:
            assert _wait_for(lambda: logger.stats.reconnects >= 1 and logger.stats.readings >= 15, timeout_s=20)
        finally:
            logger.stop()
    assert logger.stats.reconnects >= 1 and emu.connections >= 2
    trace = load_trace(out)
    assert len(trace.t_ns) >= 15 and set(trace.power_w.tolist()) == {7.0}


def test_port_vanishing_does_not_crash(tmp_path):
    out = tmp_path / "gone.sqlite"
    emu = start_emulator("lines", ConstantProfile(1.0), interval_s=0.05)
    logger = MeterLogger(emu.port, "lines", out).start()
    assert _wait_for(lambda: logger.stats.readings >= 3)
    emu.stop()  # the pty disappears, like a USB adapter pulled out
    assert _wait_for(lambda: logger.stats.gaps == 1)
    logger.stop()
    assert logger.stats.gaps == 1
    trace = load_trace(out)
    assert len(trace.t_ns) >= 3 and len(trace.gaps) == 1


@pytest.mark.parametrize(
    "protocol, identity",
    [("tweetawatt", "tweetawatt"), ("lines", "lines"), ("um", "UM25C"), ("wattsup", "wattsup PRO")],
)
def test_auto_picks_the_protocol(protocol, identity):
    with start_emulator(protocol, ConstantProfile(10.0), interval_s=0.1) as emu:
        logger = MeterLogger(emu.port, "auto", None, probe_s=0.5).start()
        try:
            assert _wait_for(lambda: logger.latest() is not None, timeout_s=10)
        finally:
            logger.stop()
    assert logger.protocol == protocol and logger.meter == identity
    assert logger.latest() is not None and logger.latest().power_w == pytest.approx(10.0, abs=0.65)


@pytest.mark.parametrize("protocol", ["wattsup", "um"])
def test_commanded_meters_end_to_end(tmp_path, protocol):
    out = tmp_path / f"{protocol}.sqlite"
    with start_emulator(protocol, StepsProfile([(0, 2.5), (0.5, 4.7)]), interval_s=0.1,
                        faults={"corrupt_every": 4}) as emu:  # fmt: skip
        logger = MeterLogger(emu.port, protocol, out).start()
        started = time.monotonic()
        seen: set[float] = set()
        try:
            def done():
                if logger.latest() is not None:
                    seen.add(logger.latest().power_w)
                return logger.stats.readings >= 6 and logger.stats.bad_frames >= 1 and 4.7 in seen

            assert _wait_for(done, timeout_s=20)
        finally:
            logger.stop()
            elapsed_s = time.monotonic() - started
    trace = load_trace(out)
    assert len(trace.t_ns) >= 6 and set(trace.power_w.tolist()) <= {2.5, 4.7} and 4.7 in trace.power_w
    assert logger.stats.bad_frames >= 1
    if protocol == "um":  # polled: one request in flight, never faster than every 100 ms
        assert len(emu.sent) <= elapsed_s / 0.1 + 1


def test_auto_says_what_it_heard():
    with start_emulator("lines", ConstantProfile(1.0), interval_s=0.05) as emu:
        pass  # stopped: a silent pty that still opens is what an unpowered meter looks like
    import serial

    from edgebench.host.meters.probe import probe_port

    port = serial.serial_for_url("loop://", timeout=0.05)
    port.write(b"\x01\x02\x03hello")
    with pytest.raises(BadInput, match="match no known meter protocol; they look like: 01 02 03 68"):
        probe_port(port, 0.2, "loop://")
    assert emu.port


def test_open_errors_are_plain():
    with pytest.raises(BadInput, match="no serial port /dev/ttyNOPE0: ports on this machine"):
        MeterLogger("/dev/ttyNOPE0", "lines").start()
    with pytest.raises(BadInput, match="unknown meter protocol"):
        MeterLogger("/dev/ttyNOPE0", "smoke-signals")
    error = translate_open_error("/dev/ttyUSB0", OSError(errno.EACCES, "Permission denied"))
    assert isinstance(error, PermissionDenied) and "usermod -aG dialout" in str(error)


@pytest.mark.slow
def test_killed_logger_keeps_committed_readings(tmp_path):
    """SIGKILL loses at most the last second: every reading the logger took more than a commit interval before
    the kill is on disk. What it took is known from the emulator's unique ramp values and their send times; how
    late the logger read each one (its latency on this machine, now) is measured from the stored readings."""
    out = tmp_path / "kill.sqlite"
    with start_emulator("lines", RampProfile(12.5, 1.0), interval_s=0.05) as emu:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgebench", "meter", "log", "--meter", emu.port, "--protocol", "lines",
             "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert _wait_for(lambda: _rows(out) >= 10, timeout_s=30, step_s=0.05), (
                proc.stderr.read1() if proc.poll() is not None else "no readings committed"
            )
            committed = _rows(out)
            assert _wait_for(lambda: _rows(out) > committed, timeout_s=30, step_s=0.05)  # a later commit too
            killed_at = time.time_ns()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        finally:
            if proc.poll() is None:
                proc.kill()
    trace = load_trace(out)
    sent = _sent_values(emu)
    run = _a_run_of(trace.power_w.tolist(), sent)  # the committed readings: no hole, from the logger's first
    latency_ns = max(t_read - t_sent for (t_sent, _), t_read in zip(run, trace.t_ns.tolist(), strict=True))
    # frames sent after the first stored one and read (sent + latency) over a commit interval before the kill
    first_sent = run[0][0]
    due = [v for t, v in sent if first_sent <= t and t + latency_ns < killed_at - COMMIT_INTERVAL_S * 1e9]
    assert len(due) >= 5 and trace.power_w.tolist()[: len(due)] == due


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_logger_flushes_everything(tmp_path, sig):
    out = tmp_path / "int.csv"
    with start_emulator("lines", RampProfile(6.5, 1.0), interval_s=0.05) as emu:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgebench", "meter", "log", "--meter", emu.port, "--protocol", "lines",
             "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert _wait_for(lambda: _rows(out) >= 5, timeout_s=30, step_s=0.05)
            proc.send_signal(sig)
            stopped_at = time.time_ns()
            _, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "readings" in err and "Traceback" not in err
    # Flushed on the way out: everything read before the signal is there, not just what the last commit held.
    # Counted from the first reading logged (frames the emulator wrote before the logger opened the port are
    # discarded by the open, as a UART that nobody read would have lost them); what was read before the signal is
    # known from the send times and the logger's read latency on this machine, now, from the stored readings.
    trace = load_trace(out)
    sent = _sent_values(emu)
    run = _a_run_of(trace.power_w.tolist(), sent)
    latency_ns = max(t_read - t_sent for (t_sent, _), t_read in zip(run, trace.t_ns.tolist(), strict=True))
    due = [v for t, v in sent if run[0][0] <= t and t + latency_ns + 100_000_000 < stopped_at]
    assert len(due) >= 5 and trace.power_w.tolist()[: len(due)] == due


def test_permission_denied_names_dialout(tmp_path):
    import shutil

    with start_emulator("lines", ConstantProfile(1.0)) as emu:
        os.chmod(emu.port, 0o600)
        if os.geteuid() != 0:
            os.chmod(emu.port, 0o000)
            with pytest.raises(PermissionDenied, match="dialout"):
                MeterLogger(emu.port, "lines").start()
            return
        # root opens anything: run the CLI as `nobody` instead
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop privileges to provoke EACCES")
        res = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "edgebench",
             "meter", "log", "--meter", emu.port, "--protocol", "lines", "--out", "/tmp/never.sqlite"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    if "Permission denied" in res.stderr and "edgebench" not in res.stderr:
        pytest.skip(f"nobody cannot run this interpreter here: {res.stderr.strip()[:200]}")
    assert res.returncode == 2, res.stderr
    assert "permission denied on" in res.stderr and "usermod -aG dialout" in res.stderr


def test_calibration_reaches_the_decoder(tmp_path):
    cal = tmp_path / "cal.json"
    cal.write_text('{"1": {"current_norm": 31.0}}')  # twice the counts per amp: half the watts
    with start_emulator("tweetawatt", ConstantProfile(80.0), interval_s=0.1) as emu:
        logger = MeterLogger(emu.port, "tweetawatt", None, calibration=cal)
        logger.run(0.5)
    assert logger.latest().power_w == pytest.approx(40.0, abs=0.65)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with start_emulator("tweetawatt", ConstantProfile(80.0), interval_s=0.1) as emu:
        with pytest.raises(BadInput, match="expected an object keyed by sensor address"):
            MeterLogger(
                emu.port, "tweetawatt", tmp_path / "x.sqlite", calibration=tmp_path / "bad.json"
            ).start()
    assert not (tmp_path / "x.sqlite").exists()


# --- issue 9: impossible readings, unplugs, another meter on the same path ------------------------------------


class _NanWattsup(WattsupEncoder):
    """A Watts up? whose every other record carries `nan` watts (float() takes it; SQLite stores NULL)."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def frame(self, watts, t_s):
        self.n += 1
        record = super().frame(watts, t_s)
        if self.n % 2:
            cells = record.split(b",", 4)
            cells[3] = b"nan"  # the W field
            record = b",".join(cells)
        return record


def test_nan_records_are_bad_frames_and_logging_goes_on(tmp_path):
    out = tmp_path / "nan.sqlite"
    encoder = _NanWattsup()
    with start_emulator("wattsup", ConstantProfile(42.0), interval_s=0.05, encoder=encoder) as emu:
        logger = MeterLogger(emu.port, "wattsup", out).start()
        assert _wait_for(lambda: logger.stats.readings >= 6 and logger.stats.bad_frames >= 6, timeout_s=10)
        assert _wait_for(lambda: _rows(out) >= 6, timeout_s=10, step_s=0.05)  # a commit with nan records around
        assert logger.failure is None and logger.alive
        logger.stop()
    trace = load_trace(out)
    assert len(trace.t_ns) == logger.stats.readings >= 6 and set(trace.power_w.tolist()) == {42.0}


def _tcp_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unplug_is_said_on_stderr_in_any_mode(tmp_path, capsys):
    with start_emulator(
        "lines", ConstantProfile(7.0), interval_s=0.05, transport="tcp", faults={"drop_after_s": 0.5}
    ) as emu:
        logger = MeterLogger(emu.port, "lines", tmp_path / "u.sqlite").start()
        try:
            assert _wait_for(lambda: logger.stats.reconnects >= 1, timeout_s=20)
        finally:
            logger.stop()
    err = capsys.readouterr().err
    assert f"warning: lost the meter port {emu.port}" in err
    assert f"warning: the meter port {emu.port} is back" in err and "same meter" in err
    # once each way: every loss said once, every return said once (stopped while lost: one loss more)
    assert err.count("is back (reconnect") == logger.stats.reconnects >= 1
    assert err.count("warning: lost the meter port") - logger.stats.reconnects in (0, 1)


@pytest.mark.slow
def test_a_different_meter_on_the_same_path_is_not_logged(tmp_path, capsys):
    from edgebench.host.meters.emulate import UMEncoder

    port = _tcp_port()
    out = tmp_path / "swap.sqlite"
    first = start_emulator("um", ConstantProfile(4.0), transport="tcp", tcp_port=port)
    logger = MeterLogger(first.port, "um", out).start()
    try:
        assert _wait_for(lambda: logger.stats.readings >= 3)
        first.stop()
        # Another meter gets the same path: a UM34C where a UM25C was.
        with start_emulator(
            "um", ConstantProfile(9.0), transport="tcp", tcp_port=port, encoder=UMEncoder(model="UM34C")
        ):
            assert _wait_for(lambda: logger.stats.foreign >= 3, timeout_s=8)
            stored, refused = logger.stats.readings, logger.stats.foreign
            assert _wait_for(lambda: logger.stats.foreign >= refused + 3, timeout_s=8)  # more of it arrived...
            assert logger.stats.readings == stored  # ...and nothing of the other meter is logged
        # The right meter comes back: logging resumes.
        with start_emulator("um", ConstantProfile(4.0), transport="tcp", tcp_port=port):
            assert _wait_for(lambda: logger.stats.readings >= stored + 3, timeout_s=8)
    finally:
        logger.stop()
    err = capsys.readouterr().err
    assert err.count("a different meter answers on") == 1 and "(UM34C, not UM25C)" in err
    assert "waiting for the right meter" in err
    trace = load_trace(out)
    assert set(trace.power_w.tolist()) == {4.0} and trace.meter == "UM25C"


def test_another_protocol_on_the_same_path_is_said(tmp_path, capsys):
    port = _tcp_port()
    first = start_emulator("um", ConstantProfile(4.0), transport="tcp", tcp_port=port)
    logger = MeterLogger(first.port, "um", None).start()
    try:
        assert _wait_for(lambda: logger.stats.readings >= 3)
        first.stop()
        with start_emulator("lines", ConstantProfile(4.0), interval_s=0.05, transport="tcp", tcp_port=port):
            assert _wait_for(lambda: "no um reading" in capsys.readouterr().err, timeout_s=8)
    finally:
        logger.stop()


# --- issue 18: two readers on one port ---------------------------------------------------------------------------


def test_a_second_reader_of_the_same_port_is_refused_naming_the_first(tmp_path):
    """Two loggers on one pty would split its bytes (one stored 5.0 and 134.5 from a 1234.5 W stream): the port is
    opened exclusively and the second gets one line naming the process that holds it."""
    with start_emulator("lines", ConstantProfile(1234.5), interval_s=0.05) as emu:
        first = MeterLogger(emu.port, "lines", tmp_path / "a.sqlite").start()
        try:
            assert _wait_for(lambda: first.stats.readings >= 3)
            with pytest.raises(BadInput) as caught:
                MeterLogger(emu.port, "lines", tmp_path / "b.sqlite").start()
            message = str(caught.value)
            assert f"{emu.port} is in use by another reader" in message
            assert f"pid {os.getpid()}" in message  # the holder: this very test process
            assert "\n" not in message
            # a CLI reader gets the same one line, exit 2
            res = subprocess.run(
                [sys.executable, "-m", "edgebench", "meter", "log", "--meter", emu.port, "--protocol", "lines",
                 "--out", str(tmp_path / "c.sqlite"), "--duration", "1"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert res.returncode == 2 and "is in use by another reader" in res.stderr, res.stderr
            assert "Traceback" not in res.stderr
        finally:
            first.stop()
    assert set(load_trace(tmp_path / "a.sqlite").power_w.tolist()) == {1234.5}  # never a split value


def test_a_port_taken_by_another_reader_while_unplugged_is_not_read(tmp_path, capsys):
    """After an unplug the logger reopens only what it can hold exclusively: a port another process took in the
    meantime stays that process's, and the logger says so instead of consuming its stream."""
    import fcntl

    with start_emulator("lines", ConstantProfile(5.0), interval_s=0.05) as emu:
        logger = MeterLogger(emu.port, "lines", tmp_path / "t.sqlite").start()
        try:
            assert _wait_for(lambda: logger.stats.readings >= 3)
            # simulate the unplug: the logger loses its handle; at once someone else locks the port (the lock is
            # free once the logger's read returns; its first retry comes 0.1 s after the loss)
            other = os.open(emu.port, os.O_RDWR | os.O_NOCTTY)
            logger._port.close()  # noqa: SLF001 - the read fails as on a pulled cable

            def take():
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    return False

            assert _wait_for(take, timeout_s=2) and logger.stats.reconnects == 0
            try:
                assert _wait_for(lambda: "held by another reader" in capsys.readouterr().err, timeout_s=10)
                stored = logger.stats.readings
                assert logger.stats.readings == stored and logger.stats.reconnects == 0
            finally:
                fcntl.flock(other, fcntl.LOCK_UN)
                os.close(other)
            assert _wait_for(lambda: logger.stats.reconnects == 1 and logger.stats.readings >= stored + 3)
        finally:
            logger.stop()
