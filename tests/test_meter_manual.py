"""The manual meter: a person typing a plain Kill-a-Watt's display, through a pipe and through a pty as a
terminal, the spot and counter windows' arithmetic, and paper readings entered later as a CSV."""

import fcntl
import json
import math
import os
import re
import select
import subprocess
import termios
import time
from datetime import datetime

import numpy as np
import pytest
from click.testing import CliRunner
from waiting import wait_for

from edgebench.cli import cli, edgebench_argv
from edgebench.host.measuredir import MeasureDir
from edgebench.host.meters.manual import ManualLogger, parse_time_ns
from edgebench.host.spot import KILL_A_WATT_ACCURACY, counter_window, spot_window
from edgebench.host.store import load_trace
from edgebench.records import HOST_CLOCK, MeterTrace, RunRecord, append_jsonl, read_run_records

S = 1_000_000_000
T0 = 1_700_000_000 * S


class Typist:
    """A person at a pipe: types a line, then waits for the logger's answer to it (one answer per line)."""

    def __init__(self, tmp_path, kwh=False):
        r, self.w = os.pipe()
        self.said = []
        self.logger = ManualLogger(tmp_path / "m.sqlite", kwh=kwh, stream=os.fdopen(r, "rb", buffering=0),
                                   say=self.said.append)  # fmt: skip
        self.logger.start()

    def type(self, line):
        before = len(self.said)
        os.write(self.w, line.encode() + b"\n")
        assert wait_for(lambda: len(self.said) > before), f"no answer to {line!r}"
        return self.said[-1]

    def close(self):
        self.logger.stop()
        os.close(self.w)


def test_typed_readings_typos_undo_and_corrections(tmp_path):
    typist = Typist(tmp_path)
    try:
        assert "12.3 W noted" in typist.type("12.3")
        assert "'12..4' is not a reading" in typist.type("12..4")
        assert "is not a reading" in typist.type("abc")
        assert "beyond what the Kill-a-Watt shows" in typist.type("9999")
        assert "12.5 W noted" in typist.type("12.5 W")
        assert "removed 12.5 W" in typist.type("u")
        assert "nothing to undo" in typist.type("u")
        assert "125 W noted" in typist.type("125")
        assert "corrected to 12.6 W" in typist.type("c 12.6")  # the typo 125 was meant as 12.6, same time
        assert "mean 12.45 W" in typist.type("")  # done: two readings so far
        assert "nothing to correct" in typist.type("c 1")  # kept once the window's readings were done
        assert "u: undo the last" in typist.type("?")
    finally:
        typist.close()
    trace = load_trace(tmp_path / "m.sqlite")
    assert trace.sampling == "spot" and trace.meter == "manual Kill-a-Watt" and trace.resolution_w == 0.1
    assert trace.power_w.tolist() == [12.3, 12.6]
    assert typist.logger.typos == 3 and typist.logger.corrections == 2
    assert np.all(np.diff(trace.t_ns) > 0)


def test_the_kwh_counter_mode_refuses_a_counter_going_down(tmp_path):
    typist = Typist(tmp_path, kwh=True)
    try:
        assert "0.37 kWh noted" in typist.type("0.37")
        assert "below the last counter reading" in typist.type("0.36")
        assert "0.38 kWh noted" in typist.type("0.38 kWh")
        assert "0.39 kWh noted" in typist.type("0.39")
    finally:
        typist.close()
    trace = load_trace(tmp_path / "m.sqlite")
    assert trace.sampling == "counter" and trace.energy_wh.tolist() == [370.0, 380.0, 390.0]


def _spot(values, times_s):
    return MeterTrace(np.array([T0 + round(t * S) for t in times_s], dtype=np.int64),
                      np.array(values, dtype=np.float64), "manual Kill-a-Watt", 0.1, sampling="spot")  # fmt: skip


def test_a_spot_window_is_the_mean_with_its_stated_uncertainty():
    trace = _spot([10.0, 10.2, 9.8, 50.0], [5, 25, 45, 70])  # the 50 W reading is after the window
    w = spot_window(trace, T0, T0 + 60 * S, clock_u_s=0.0)
    assert w.samples == 3 and w.reasons == ()
    assert w.mean_power_w == pytest.approx(10.0) and w.energy_j == pytest.approx(600.0)
    sd = np.std([10.0, 10.2, 9.8], ddof=1)
    expected_w = math.sqrt((0.1 / math.sqrt(9)) ** 2 + (KILL_A_WATT_ACCURACY * 10 / math.sqrt(3)) ** 2
                           + (sd / math.sqrt(3)) ** 2)  # fmt: skip
    assert w.energy_u_j == pytest.approx(60 * expected_w)
    for values, times in (([], []), ([10.0], [30])):
        w = spot_window(_spot(values, times), T0, T0 + 60 * S, 0.0)
        assert w.reasons and "two or more times" in w.reasons[0] and w.meter_fault  # never guessed


def test_a_counter_window_interpolates_the_edges_and_refuses_too_few_steps():
    t = np.array([T0, T0 + 3600 * S, T0 + 7200 * S], dtype=np.int64)
    trace = MeterTrace(t, np.zeros(3), "manual Kill-a-Watt kWh counter", 0.1, sampling="counter",
                       energy_wh=np.array([1000.0, 1050.0, 1100.0]))  # fmt: skip
    w = counter_window(trace, T0, T0 + 7200 * S, 0.0)  # 0.10 kWh: ten 0.01 kWh steps
    assert w.reasons == () and w.energy_j == pytest.approx(100 * 3600)
    assert w.energy_u_j == pytest.approx(10 * math.sqrt(2 / 3) * 3600)  # two readings, one step each
    assert w.mean_power_w == pytest.approx(50.0)
    short = counter_window(trace, T0 + 1800 * S, T0 + 5400 * S, 0.0)  # 0.05 kWh, both edges interpolated
    assert short.energy_j == pytest.approx(50 * 3600)
    assert "moved 0.05 kWh over this 60m00s window (5 steps of 0.01 kWh" in short.reasons[0]
    assert "a window needs >= 10 steps (0.1 kWh); at the 50 W seen here, windows of 120m00s or more" in short.reasons[0]
    # each interpolated edge, half way between readings, adds a quarter of the bracket's 50 Wh / sqrt(3)
    assert short.energy_u_j == pytest.approx(
        3600 * math.sqrt(2 / 3 * 10**2 + 2 * (50 * 0.5 / math.sqrt(3)) ** 2)
    )
    late = counter_window(trace, T0 + 3600 * S, T0 + 9000 * S, 0.0)
    assert "no kWh counter reading at or after the window's end" in late.reasons[0]


def test_paper_readings_are_paired(tmp_path):
    """Readings written on paper (local time) entered as time,watts: `pair` takes the CSV."""
    start = datetime(2024, 5, 1, 14, 0, 0)
    base = round(start.astimezone().timestamp()) * S
    paper = tmp_path / "paper.csv"
    lines = ["# Kill-a-Watt at the lab bench", "time,watts"]
    for k, watts in enumerate([3.1, 2.9, 3.0, 9.4, 9.6, 9.5]):  # idle 0-60 s, the engine 60-120 s
        minute, second = divmod(10 + 20 * k, 60)
        lines.append(f"2024-05-01 14:{minute:02d}:{second:02d},{watts}")
    paper.write_text("\n".join(lines) + "\n")
    runs = tmp_path / "runs.jsonl"
    append_jsonl(runs, [
        RunRecord(engine="idle", backend="monitor", clock=HOST_CLOCK, window_start_ns=base,
                  window_end_ns=base + 60 * S, iterations=0, batch=1, latencies_ns=(), kind="idle"),
        RunRecord(engine="resnet18_1_224_224_fp32", backend="onnxruntime", clock=HOST_CLOCK,
                  window_start_ns=base + 60 * S, window_end_ns=base + 120 * S, iterations=600, batch=1,
                  latencies_ns=(100_000_000,) * 600),
    ])  # fmt: skip
    res = CliRunner().invoke(cli, ["pair", str(runs), str(paper), "--format", "json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["engines"][0]
    assert row["status"] == "ok"
    assert row["gross_j_per_inference"] == pytest.approx(9.5 * 60 / 600)
    assert row["net_j_per_inference"] == pytest.approx((9.5 - 3.0) * 60 / 600)
    paper.write_text("time,watts\n2024-05-01 14:00:10,3.1\n2024-05-01 14:00:30,3..0\n")
    res = CliRunner().invoke(cli, ["pair", str(runs), str(paper)])
    assert res.exit_code == 2 and "paper.csv, line 3: watts '3..0' is not a number" in res.output
    paper.write_text("time,watts\n14:00:10,3.1\n")
    res = CliRunner().invoke(cli, ["pair", str(runs), str(paper)])
    assert res.exit_code == 2 and "line 2: time '14:00:10' is not a date and time" in res.output


def test_paper_times_take_iso_and_unix_seconds():
    assert parse_time_ns("1714572000") == 1714572000 * S
    assert parse_time_ns("2024-05-01T14:00:00Z") == 1714572000 * S
    assert parse_time_ns("2024-05-01T16:00:00+02:00") == 1714572000 * S
    for bad in ("14:00", "soon", "12"):
        with pytest.raises(ValueError):
            parse_time_ns(bad)


def test_meter_log_manual_reads_a_pipe_until_q(tmp_path):
    out = tmp_path / "log.sqlite"
    proc = subprocess.run([*edgebench_argv(), "meter", "log", "--meter", "manual", "--out", str(out)],
                          input="4.5\nfour\n4.7\n\nq\n", capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "'four' is not a reading" in proc.stderr and "2 readings" in proc.stderr
    assert load_trace(out).power_w.tolist() == [4.5, 4.7]
    proc = subprocess.run([*edgebench_argv(), "meter", "log", "--meter", "manual", "--out", str(out),
                           "--protocol", "um"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "--protocol applies to serial meters" in proc.stderr


# --- through a pty, as a person at a terminal ---------------------------------------------------------------

PROMPT = re.compile(rb"> ([^\n]*?) \(about [^\n]*\): ([^\n]*)\n")


def _own_terminal():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`edgebench measure --meter manual` with its stdin and stderr on a pty (a terminal), the table on a pipe."""

    def __init__(self, args):
        self.master, slave = os.openpty()
        # its own session with the pty as controlling terminal: ^C typed there is SIGINT to it, as at a desk
        self.proc = subprocess.Popen([*edgebench_argv(), "measure", "--meter", "manual", *args], stdin=slave,
                                     stdout=subprocess.PIPE, stderr=slave, preexec_fn=_own_terminal)  # fmt: skip
        os.close(slave)
        self.seen = b""
        self.pos = 0

    def _read(self, timeout_s):
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if ready:
            try:
                self.seen += os.read(self.master, 65536)
            except OSError:
                return False
        return True

    def next_prompt(self, timeout_s=90.0):
        """(label, what) of the next window prompt; None when the session ended first."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            match = PROMPT.search(self.seen, self.pos)
            if match:
                self.pos = match.end()
                return match.group(1).decode(), match.group(2).decode()
            if self.proc.poll() is not None and not self._read(0.05):
                return None
            self._read(0.05)
        raise AssertionError(f"no prompt in {timeout_s} s: {self.seen[-800:].decode(errors='replace')}")

    def type(self, text):
        os.write(self.master, text.encode())

    def finish(self, timeout_s=60):
        stdout, _ = self.proc.communicate(timeout=timeout_s)
        while self._read(0.05) and self.proc.poll() is not None and select.select([self.master], [], [], 0)[0]:
            pass
        return stdout.decode()


WATTS = {"idle": 3.0, "squeezenet1_1_1_32_32_fp32": 9.5, "squeezenet1_1_2_32_32_fp32": 12.0}
NOISE = (-0.2, 0.3, -0.1, 0.2)  # what a display moving a little looks like


def _truth(label):
    return next(w for key, w in WATTS.items() if key in label) if "idle" not in label else WATTS["idle"]


@pytest.mark.slow
def test_measure_with_a_person_typing_the_display(tiny_engines, tmp_path):
    """A scripted person: readings through the window (with a typo, a correction), one window left empty (it is
    invalid and measured again); every engine within its stated uncertainty of the watts the person saw."""
    out = tmp_path / "m"
    term = Terminal(["--engines", str(tiny_engines), "--duration", "4", "--idle", "4", "--repeat", "1",
                     "--allow-short", "--warmup", "0.2", "--sensor", "none", "--threads", "1", "--out", str(out)])
    windows = 0
    while (prompt := term.next_prompt()) is not None:
        label, what = prompt
        windows += 1
        assert "two or more times" in what
        if windows == 2:  # the first engine's first window: the person is away
            term.type("\n")
            continue
        watts = _truth(label)
        time.sleep(1.2)  # the engine loads and warms up before its window opens
        for k, noise in enumerate(NOISE[:3]):
            if k == 1:
                term.type("9..x\n")  # a typo: said, not kept
                term.type(f"{(watts + noise) * 10:g}\n")  # a slip of the decimal point...
                term.type(f"c {watts + noise:g}\n")  # ...corrected
            else:
                term.type(f"{watts + noise:g}\n")
            time.sleep(0.7)
        term.type("\n")
    stdout = term.finish()
    screen = term.seen.decode(errors="replace")
    assert term.proc.returncode == 0, screen
    assert "'9..x' is not a reading" in screen and "corrected to" in screen
    assert "window over with no reading: it is invalid" in screen
    table = {row["engine"]: row for row in json.loads((out / "table.json").read_text())["engines"]}
    # the windows the table counts: not the first engine's empty first try (nor one that got too few readings
    # on a loaded machine; each is measured again)
    valid = {(w.engine, w.repeat, w.attempt) for w in MeasureDir(out).pair().windows if w.valid}
    records = [r for r in read_run_records(out / "runs.jsonl") if (r.engine, r.repeat, r.attempt) in valid]
    assert ("squeezenet1_1_1_32_32_fp32", 0, 0) not in valid
    for name, row in table.items():
        assert row["status"] == "ok", row
        runs = [r for r in records if r.engine == name]
        seconds = sum((r.window_end_ns - r.window_start_ns) / 1e9 for r in runs)
        truth = WATTS[name] * seconds / sum(r.iterations for r in runs)
        assert abs(row["gross_j_per_inference"] - truth) <= 3 * row["gross_j_per_inference_u"], (row, truth)
    assert table["squeezenet1_1_1_32_32_fp32"]["retried"] >= 1  # the empty window, measured again
    assert "squeezenet1_1_1_32_32_fp32" in stdout


@pytest.mark.slow
def test_ctrl_c_at_the_terminal_keeps_the_windows_typed(tiny_engines, tmp_path):
    out = tmp_path / "m"
    term = Terminal(["--engines", str(tiny_engines), "--duration", "3", "--idle", "3", "--repeat", "1",
                     "--allow-short", "--warmup", "0.2", "--sensor", "none", "--threads", "1", "--out", str(out)])
    for _ in range(2):  # the idle window and the first engine's
        label, _what = term.next_prompt()
        time.sleep(1.0)
        for noise in NOISE[:2]:
            term.type(f"{_truth(label) + noise:g}\n")
            time.sleep(0.6)
    term.next_prompt()  # the second engine's window opens: Ctrl-C, as a person at the keyboard does
    term.type("\x03")
    term.finish()
    screen = term.seen.decode(errors="replace")
    assert term.proc.returncode == 130, screen
    assert "interrupted (SIGINT): every finished window is in" in screen and "Traceback" not in screen
    row = {r["engine"]: r for r in json.loads((out / "table.json").read_text())["engines"]}
    assert row["squeezenet1_1_1_32_32_fp32"]["status"] == "ok"
    trace = load_trace(out / "meter.sqlite")
    assert trace.sampling == "spot" and len(trace.t_ns) >= 4


def test_a_meter_that_is_not_manual_refuses_kwh(tmp_path):
    res = CliRunner().invoke(cli, ["meter", "log", "--meter", "/dev/ttyNOPE", "--kwh", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--kwh is the manual meter's counter mode" in res.output



class Prompted:
    """A subprocess whose stdin is typed into when its stderr shows a line matching one of `script`'s patterns
    (pattern -> lines to type, after a pause); stderr is kept."""

    def __init__(self, argv, script):
        import threading

        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)  # fmt: skip
        self.err = []
        self.script = list(script)

        def follow():
            for line in self.proc.stderr:
                self.err.append(line)
                if self.script and re.search(self.script[0][0], line):
                    _, pause, lines = self.script.pop(0)
                    for text in lines:
                        time.sleep(pause)
                        self.proc.stdin.write(text + "\n")
                        self.proc.stdin.flush()

        self.thread = threading.Thread(target=follow, daemon=True)
        self.thread.start()

    def finish(self, timeout_s=60):
        stdout = self.proc.stdout.read()
        self.proc.wait(timeout_s)
        self.thread.join(5)
        return stdout, "".join(self.err)


@pytest.mark.slow
def test_run_with_the_manual_meter(tmp_path):
    out = tmp_path / "r"
    prompted = Prompted(
        [*edgebench_argv(), "run", "--meter", "manual", "--idle", "2", "--out", str(out), "--json", "--",
         "python3", "-c", "import time; time.sleep(2.5)"],
        [(r"> idle baseline", 0.5, ["3.1", "2.9"]), (r"> command", 0.6, ["15.2", "14.8", "15.0"])],
    )  # fmt: skip
    stdout, err = prompted.finish()
    assert prompted.proc.returncode == 0, err
    result = json.loads(stdout)
    assert result["status"] == "ok" and result["samples"] == 3
    assert result["mean_power_w"] == pytest.approx(15.0)
    assert result["idle_power_w"] == pytest.approx(3.0)
    assert result["net_energy_j"] == pytest.approx(12.0 * result["duration_s"])


@pytest.mark.slow
def test_the_kwh_counter_refuses_a_window_too_short_with_the_figure(tmp_path):
    out = tmp_path / "k"
    prompted = Prompted(
        [*edgebench_argv(), "run", "--meter", "manual", "--kwh", "--idle-power", "2", "--out", str(out), "--json",
         "--", "python3", "-c", "import time; time.sleep(1.5)"],
        [(r"type the kWh counter shown now, to start", 0.1, ["12.34"]), (r"window over: type the kWh counter now", 0.3, ["12.35"])],
    )  # fmt: skip
    stdout, err = prompted.finish()
    result = json.loads(stdout)
    # the counter read 12.34 before and 12.35 after the window: about 0.01 kWh (interpolated), far too few steps
    assert re.match(r"invalid: the kWh counter moved 0.0\d+ kWh over this \d", result["status"]), result["status"]
    assert "a window needs >= 10 steps (0.1 kWh); at the " in result["status"]
    trace = load_trace(out / "meter.sqlite")
    assert trace.sampling == "counter" and trace.energy_wh.tolist() == [12340.0, 12350.0]
