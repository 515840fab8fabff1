"""The logger end to end through real ptys and sockets: emulator -> MeterLogger -> store -> load_trace."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from edgebench.errors import BadInput, PermissionDenied
from edgebench.host.logger import MeterLogger, translate_open_error
from edgebench.host.meters.emulate import (
    ConstantProfile,
    Faults,
    StepsProfile,
    WattsupEncoder,
    start_emulator,
)
from edgebench.host.store import load_trace


def _rows(path):
    try:
        return len(load_trace(path).t_ns)
    except BadInput:
        return 0  # created but its tables are not there yet


def _wait_for(predicate, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_lines_end_to_end_with_corrupt_frames(tmp_path):
    out = tmp_path / "m.sqlite"
    faults = Faults(corrupt_every=5, garbage_every=7)
    with start_emulator("lines", StepsProfile([(0, 4.0), (0.6, 9.5)]), interval_s=0.05, faults=faults) as emu:
        logger = MeterLogger(emu.port, "lines", out)
        logger.run(1.2)
    trace = load_trace(out)
    good = [w for _, w, bad in emu.sent if not bad]
    assert len(trace.t_ns) >= len(good) - 2  # at most the frames in flight at the end
    assert set(trace.power_w.tolist()) <= {4.0, 9.5} and {4.0, 9.5} <= set(trace.power_w.tolist())
    assert logger.stats.bad_frames >= 3  # every 5th line garbled, counted, not fatal
    assert logger.stats.readings == len(trace.t_ns)
    assert trace.meter == "lines" and logger.rate_hz == pytest.approx(20, rel=0.3)


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
        "lines", ConstantProfile(3.0), interval_s=0.05, faults={"silence": ((0.5, 1.3),)}
    ) as emu:
        logger = MeterLogger(emu.port, "lines", out)
        logger.run(1.8)
    trace = load_trace(out)
    assert logger.stats.gaps >= 1  # more only if this shared box stalled the logger for 0.3 s
    start, end = max(trace.gaps, key=lambda g: g[1] - g[0])
    assert 0.6 <= (end - start) / 1e9 <= 1.2
    # the gap spans exactly the hole between two stored readings
    assert start in trace.t_ns.tolist() and end in trace.t_ns.tolist()


def test_socket_drop_reconnects(tmp_path):
    out = tmp_path / "tcp.sqlite"
    with start_emulator(
        "lines", ConstantProfile(7.0), interval_s=0.05, transport="tcp", faults={"drop_after_s": 0.5}
    ) as emu:
        assert emu.port.startswith("socket://127.0.0.1:")
        logger = MeterLogger(emu.port, "lines", out)
        logger.run(1.6)
    assert logger.stats.reconnects >= 1 and emu.connections >= 2
    trace = load_trace(out)
    assert len(trace.t_ns) >= 15 and set(trace.power_w.tolist()) == {7.0}


def test_port_vanishing_does_not_crash(tmp_path):
    out = tmp_path / "gone.sqlite"
    emu = start_emulator("lines", ConstantProfile(1.0), interval_s=0.05)
    logger = MeterLogger(emu.port, "lines", out).start()
    assert _wait_for(lambda: logger.stats.readings >= 3)
    emu.stop()  # the pty disappears, like a USB adapter pulled out
    time.sleep(0.5)
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
        logger = MeterLogger(emu.port, "auto", None, probe_s=0.5)
        logger.run(0.6)
    assert logger.protocol == protocol and logger.meter == identity
    assert logger.latest() is not None and logger.latest().power_w == pytest.approx(10.0, abs=0.65)


@pytest.mark.parametrize("protocol", ["wattsup", "um"])
def test_commanded_meters_end_to_end(tmp_path, protocol):
    out = tmp_path / f"{protocol}.sqlite"
    with start_emulator(protocol, StepsProfile([(0, 2.5), (0.5, 4.7)]), interval_s=0.1,
                        faults={"corrupt_every": 4}) as emu:  # fmt: skip
        logger = MeterLogger(emu.port, protocol, out)
        logger.run(1.2)
    trace = load_trace(out)
    assert len(trace.t_ns) >= 6 and set(trace.power_w.tolist()) == {2.5, 4.7}
    assert logger.stats.bad_frames >= 1
    if protocol == "um":  # polled: one request in flight, never faster than every 100 ms
        assert len(emu.sent) <= 1.2 / 0.1 + 1


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
    out = tmp_path / "kill.sqlite"
    with start_emulator("lines", ConstantProfile(12.5), interval_s=0.05) as emu:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgebench", "meter", "log", "--meter", emu.port, "--protocol", "lines",
             "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert _wait_for(lambda: _rows(out) >= 10, timeout_s=15), (
                proc.stderr.read1() if proc.poll() is not None else "no readings committed"
            )
            time.sleep(1.0)
            killed_at = time.time_ns()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        finally:
            if proc.poll() is None:
                proc.kill()
    trace = load_trace(out)
    # A commit happens at least every second: everything sent over 1.5 s before the kill is on disk.
    before = [t for t, _, _ in emu.sent if t < killed_at - 1_500_000_000]
    assert len(trace.t_ns) >= len(before) >= 5
    assert set(trace.power_w.tolist()) == {12.5}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_logger_flushes_everything(tmp_path, sig):
    out = tmp_path / "int.csv"
    with start_emulator("lines", ConstantProfile(6.5), interval_s=0.05) as emu:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgebench", "meter", "log", "--meter", emu.port, "--protocol", "lines",
             "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert _wait_for(lambda: _rows(out) >= 5, timeout_s=15)
            time.sleep(0.3)
            proc.send_signal(sig)
            stopped_at = time.time_ns()
            _, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "readings" in err and "Traceback" not in err
    # Flushed on the way out: everything sent up to the signal is there, not just what the last commit held.
    # Counted from the first reading logged: frames the emulator wrote before the logger opened the port are
    # discarded by the open (pyserial resets the input buffer, as a UART that nobody read would have lost them).
    logged = load_trace(out).t_ns
    first = int(logged[0]) - 25_000_000  # half a period: the frame of the first reading, not the one before
    sent = [t for t, _, _ in emu.sent if first <= t < stopped_at - 100_000_000]
    assert len(logged) >= len(sent) >= 5


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
        time.sleep(1.2)  # at least one commit with nan records around it
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
        logger = MeterLogger(emu.port, "lines", tmp_path / "u.sqlite")
        logger.run(1.3)
    err = capsys.readouterr().err
    assert logger.stats.reconnects >= 1
    assert f"warning: lost the meter port {emu.port}" in err
    assert f"warning: the meter port {emu.port} is back" in err and "same meter" in err
    assert (
        err.count("warning: lost the meter port")
        == err.count("is back (reconnect")
        == logger.stats.reconnects
    )


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
            stored = logger.stats.readings
            time.sleep(0.3)
            assert logger.stats.readings == stored  # nothing of the other meter is logged
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
