"""The device's CPU utilisation over every window (RunRecord.cpu_busy): /proc/stat read at the window's start and end.

Fake trees give /proc/stat as a FIFO that serves one snapshot per open, so the figure is known exactly whatever the
machine's load; one test measures a real idle window while a CPU-bound child process runs.
"""

import fcntl
import os
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from edgebench import protocol as wire
from edgebench.agent.harness import idle_window, run_engine
from edgebench.agent.sensors.cpuload import MIN_JIFFIES, CpuLoad, busy_between, busy_since_boot, read_jiffies
from edgebench.agent.serve import AgentService, Session
from edgebench.host.transport import AgentSpec, connect
from edgebench.records import run_record_from_dict


def _stat_line(busy: int, idle: int) -> str:
    # user nice system idle iowait irq softirq steal guest guest_nice; busy split over user and system
    return f"cpu  {busy - busy // 3} 0 {busy // 3} {idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n"


def _write(root: Path, busy: int, idle: int) -> None:
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/stat").write_text(_stat_line(busy, idle))


class StatFifo:
    """/proc/stat under `root` as a FIFO: the n-th reader gets the n-th snapshot. Two reads of a window get two
    known snapshots however long the window takes; a third read would block, so the serving thread is bounded.

    The server holds the FIFO open read-write for its whole life, so a reader's open never waits and never meets
    a write end that is about to close (a reader that opened in that gap would read an empty end of file). It
    writes the next snapshot only once the last one has left the pipe: a reader takes a whole snapshot in one
    read (one write of under PIPE_BUF bytes) and reads no more once it has the first line, so each snapshot goes
    to exactly one reader, whenever that reader comes."""

    def __init__(self, root: Path, snapshots: list[tuple[int, int]]) -> None:
        (root / "proc").mkdir(exist_ok=True)
        self.path = root / "proc/stat"
        os.mkfifo(self.path)
        self.snapshots = snapshots
        self.served = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _unread(self, fd: int) -> int:
        buf = bytearray(4)
        fcntl.ioctl(fd, termios.FIONREAD, buf)
        return int.from_bytes(buf, sys.byteorder)

    def _serve(self) -> None:
        fd = os.open(self.path, os.O_RDWR)  # Linux opens a FIFO read-write at once, with or without a reader
        try:
            for busy, idle in self.snapshots:
                os.write(fd, _stat_line(busy, idle).encode("ascii"))
                # a reader taking it is the event waited for: the pipe offers no wake-up on emptying, so look
                while self._unread(fd) and not self._stop.wait(0.001):
                    pass
                if self._stop.is_set():
                    return
                self.served += 1
        finally:
            os.close(fd)

    def join(self) -> None:
        self.thread.join(10)
        self._stop.set()
        assert self.served == len(self.snapshots), f"only {self.served} of {len(self.snapshots)} snapshots were read"


def test_busy_fraction_between_two_reads_of_a_fake_tree(tmp_path):
    _write(tmp_path, busy=1000, idle=9000)
    assert read_jiffies(tmp_path) == (1000, 10_000)
    load = CpuLoad(tmp_path)
    load.start()
    _write(tmp_path, busy=1000 + 150, idle=9000 + 50)
    assert load.stop() == pytest.approx(0.75)
    assert busy_since_boot(tmp_path) == pytest.approx(1150 / 10_200)


@pytest.mark.parametrize(
    "start, end, why",
    [
        (None, (10, 100), "unreadable at the start"),
        ((10, 100), None, "unreadable at the end"),
        ((10, 100), (10, 100), "counters did not move"),
        ((10, 100), (10 + MIN_JIFFIES // 2, 100 + MIN_JIFFIES - 1), "too few jiffies to mean anything"),
        ((500, 1000), (400, 1200), "busy went backwards"),
        ((500, 1000), (900, 800), "total went backwards"),
        ((0, 1000), (300, 1100), "more busy than total"),
    ],
)
def test_unknown_is_none_never_a_guess(start, end, why):
    assert busy_between(start, end) is None, why


@pytest.mark.parametrize(
    "text",
    ["", "intr 1 2 3\n", "cpu  a b c d e f g h\n", "cpu  -5 0 0 10 0 0 0 0\n", "cpu 1 2\n", "\xff\xfe garbage\n"],
)
def test_a_malformed_stat_reads_as_unknown(tmp_path, text):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/stat").write_bytes(text.encode("latin-1"))
    assert read_jiffies(tmp_path) is None
    assert busy_since_boot(tmp_path) is None
    assert read_jiffies(tmp_path / "missing") is None


def test_an_idle_window_carries_the_busy_fraction_read_at_its_edges(tmp_path):
    fifo = StatFifo(tmp_path, [(1000, 9000), (1000 + 93, 9000 + 7)])
    rec = idle_window(0.05, metadata=False, metadata_root=tmp_path)
    fifo.join()
    assert rec.kind == "idle" and rec.cpu_busy == pytest.approx(0.93)


@pytest.mark.slow  # an onnxruntime session: about 2 s (test_harness's runner)
def test_an_engine_window_carries_it_too_and_warm_up_stays_out(tmp_path):
    from test_harness import TinyOrtRunner

    # the first snapshot is read after the warm-up, right before the window: 40 of 100 jiffies busy inside it
    fifo = StatFifo(tmp_path, [(5000, 5000), (5040, 5060)])
    rec = run_engine(TinyOrtRunner(), warmup_iterations=3, iterations=20, metadata=False, metadata_root=tmp_path)
    fifo.join()
    assert rec.kind == "run" and rec.cpu_busy == pytest.approx(0.4)


def test_a_window_on_a_tree_without_proc_stat_records_unknown(tmp_path):
    rec = idle_window(0.05, metadata=False, metadata_root=tmp_path)
    assert rec.cpu_busy is None


def test_hello_gives_the_cpu_level_since_boot_once_per_session(tiny_engines, tmp_path):
    _write(tmp_path, busy=300, idle=9700)
    session = Session(AgentService(engines_dir=tiny_engines, metadata_root=tmp_path))
    answer = session.handle(wire.request(1, "hello", versions=[1]))
    assert answer["ok"], answer
    assert answer["result"]["device"]["cpu.busy_since_boot"] == pytest.approx(0.03)
    # without /proc/stat the key is left out, not guessed
    session = Session(AgentService(engines_dir=tiny_engines, metadata_root=tmp_path / "empty"))
    assert "cpu.busy_since_boot" not in session.handle(wire.request(1, "hello", versions=[1]))["result"]["device"]


def _ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (the unit of /proc/stat's jiffies)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux's /proc/stat")
def test_a_cpu_hog_beside_a_real_idle_window_shows_in_its_cpu_busy():
    quiet = idle_window(1.0, metadata=False)
    hog = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        deadline = time.monotonic() + 30
        while _ticks(hog.pid) < 5:  # the hog is running (not still starting) before the window opens
            assert time.monotonic() < deadline, "the hog never got the CPU"
            time.sleep(0.01)
        before_total, before_hog = read_jiffies()[1], _ticks(hog.pid)
        busy = idle_window(1.0, metadata=False)
        after_total, after_hog = read_jiffies()[1], _ticks(hog.pid)
    finally:
        hog.kill()
        hog.wait()
    # The hog's own share of all CPUs' time around the window: what the window must at least show, however
    # loaded the machine is (on an otherwise quiet 2-CPU machine about 0.5; less when others compete for it).
    hog_share = (after_hog - before_hog) / (after_total - before_total)
    ncpu = os.cpu_count() or 1
    assert hog_share > 0.1 / ncpu, f"the hog got almost no CPU ({hog_share:.3f}): cannot check"
    tolerance = 3 / ncpu / 100 + 0.02  # a few jiffies of tick sampling over a 1 s window
    assert quiet.cpu_busy is not None and 0.0 <= quiet.cpu_busy <= 1.0
    # (a comparison with `quiet` alone would depend on what the machine's other users did between the two)
    assert busy.cpu_busy is not None and busy.cpu_busy >= hog_share - tolerance, (quiet.cpu_busy, busy.cpu_busy,
                                                                                  hog_share)


def test_idle_windows_over_the_agent_protocol_carry_on_board_power_and_cpu_busy(tiny_engines):
    with connect(AgentSpec("local"), engines_dir=tiny_engines, sensor="estimate") as client:
        device = client.hello["device"]
        record = run_record_from_dict(client.call("idle", duration_s=0.5)["record"])
    assert record.kind == "idle" and record.sensor == "estimate"
    assert len(record.power_samples) >= 2 and record.rail_energy is not None and record.rail_energy.energy_j > 0
    assert record.cpu_busy is not None and 0.0 <= record.cpu_busy <= 1.0
    assert 0.0 <= device["cpu.busy_since_boot"] <= 1.0
