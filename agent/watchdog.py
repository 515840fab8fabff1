"""Time limits on a window, and SIGINT during one: a watchdog thread that stops a runner from outside.

An engine can run for ever: a checker-valid ONNX Loop of 2^62 iterations builds and loads like any model, and
its first inference never returns. Inside the runner's call the main thread is in C++ with the GIL released, so
neither a Python timer nor Ctrl-C (whose Python handler only runs between bytecodes) can reach it. The watchdog
runs beside the window on its own thread and, when a limit passes or SIGINT arrives, calls the runner's
`interrupt()` (onnxruntime: `RunOptions.terminate`, which the running call checks between nodes and between
Loop iterations, and then fails); the harness turns that failure into `WindowStopped` with the reason.

Limits (TimeLimits): one inference (a `run_once`, warm-up included) and the whole window (warm-up and measured
part, from the first warm-up iteration). SIGINT is seen through `signal.set_wakeup_fd`, which the interpreter's C
handler writes to even while the main thread is blocked in C: only in the main thread, and only when no one else
uses the wakeup fd (asyncio does); the usual KeyboardInterrupt follows once the runner's call has returned.

A runner without `interrupt()` (TensorRT's execute cannot be cancelled) is not stopped: its window is reported
as stopped when the call finally returns.
"""

from __future__ import annotations

import math
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgebench.errors import EdgebenchError

DEFAULT_INFERENCE_TIMEOUT_S = 60.0  # one inference; real engines on edge CPUs take milliseconds to a few seconds
# A window given in seconds (warm-up + measured) may overrun them by this much before it is stopped: the minimum
# iteration count and the last iteration overrunning the duration need room. Windows given as iteration counts
# have no window limit by default (each inference still has its own).
DEFAULT_WINDOW_GRACE_S = 120.0


class WindowStopped(EdgebenchError):
    """A window was stopped before its end: an inference or the window ran past its limit, or SIGINT came
    (`interrupted`: the caller should stop rather than go on with the next engine)."""

    def __init__(self, message: str, *, interrupted: bool = False) -> None:
        super().__init__(message)
        self.interrupted = interrupted


@dataclass(frozen=True)
class TimeLimits:
    """How long one inference (`inference_s`) and one whole window (`window_s`, warm-up included) may take;
    None: no limit."""

    inference_s: float | None = DEFAULT_INFERENCE_TIMEOUT_S
    window_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("inference_s", "window_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"TimeLimits: {name} must be a finite number of seconds above 0, got {value!r}")

    def words(self) -> str:
        """The limits in words, for a record's settings."""
        one = f"{self.inference_s:g} s per inference" if self.inference_s else "no limit per inference"
        whole = f"{self.window_s:g} s per window" if self.window_s else "no limit per window"
        return f"{one}, {whole}"


def default_window_s(warmup_s: float | None, duration_s: float | None) -> float | None:
    """The default window limit: warm-up and measured seconds plus DEFAULT_WINDOW_GRACE_S when the window is
    given in seconds (a warm-up count adds nothing), None when the measured part is an iteration count."""
    if duration_s is None:
        return None
    return (warmup_s or 0.0) + duration_s + DEFAULT_WINDOW_GRACE_S


class Watchdog:
    """Watches one window of `engine`; use as a context manager around warm-up and measurement.

    The timing loop writes each iteration's start (`time.perf_counter_ns()`) into `mark[0]`, one list store per
    iteration; the thread sleeps until the earliest deadline that mark and the window's start give, and fires
    at most once: `reason` says why, and `interrupt` (the runner's, or None) is called.
    """

    def __init__(
        self,
        engine: str,
        limits: TimeLimits,
        interrupt: Callable[[], None] | None,
        *,
        watch_sigint: bool = True,
    ) -> None:
        self.engine = engine
        self.limits = limits
        self.interrupt = interrupt
        self.watch_sigint = watch_sigint
        self.mark = [time.perf_counter_ns()]
        self.reason = ""
        self.interrupted = False  # True when the reason is SIGINT (the caller should stop, not go on)
        self._start_ns = self.mark[0]
        self._stop_r, self._stop_w = -1, -1
        self._sig_r, self._sig_w = -1, -1
        self._old_wakeup = -1
        self._thread: threading.Thread | None = None

    @property
    def fired(self) -> bool:
        return bool(self.reason)

    def __enter__(self) -> Watchdog:
        self._start_ns = self.mark[0] = time.perf_counter_ns()
        if self.watch_sigint and threading.current_thread() is threading.main_thread():
            self._sig_r, self._sig_w = os.pipe()
            os.set_blocking(self._sig_w, False)
            try:
                self._old_wakeup = signal.set_wakeup_fd(self._sig_w, warn_on_full_buffer=False)
            except ValueError:  # not the main thread of the main interpreter after all
                self._old_wakeup = -1
                self._close(self._sig_r, self._sig_w)
                self._sig_r = self._sig_w = -1
            else:
                if self._old_wakeup != -1:  # someone else's (asyncio's): give it back, do without
                    signal.set_wakeup_fd(self._old_wakeup)
                    self._old_wakeup = -1
                    self._close(self._sig_r, self._sig_w)
                    self._sig_r = self._sig_w = -1
        if not (self.limits.inference_s or self.limits.window_s or self._sig_r != -1):
            return self  # nothing to watch
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._watch, name=f"watchdog-{self.engine}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join()
            self._thread = None
        if self._sig_w != -1:
            signal.set_wakeup_fd(-1)
        self._close(self._stop_r, self._stop_w, self._sig_r, self._sig_w)
        self._stop_r = self._stop_w = self._sig_r = self._sig_w = -1

    @staticmethod
    def _close(*fds: int) -> None:
        for fd in fds:
            if fd != -1:
                os.close(fd)

    def _next_deadline_ns(self) -> int | None:
        deadlines = []
        if self.limits.window_s:
            deadlines.append(self._start_ns + int(self.limits.window_s * 1e9))
        if self.limits.inference_s:
            deadlines.append(self.mark[0] + int(self.limits.inference_s * 1e9))
        return min(deadlines) if deadlines else None

    def _watch(self) -> None:
        fds = [self._stop_r] + ([self._sig_r] if self._sig_r != -1 else [])
        while True:
            deadline = self._next_deadline_ns()
            wait_s = None if deadline is None else max(0.0, (deadline - time.perf_counter_ns()) / 1e9)
            ready, _, _ = select.select(fds, [], [], wait_s)
            if self._stop_r in ready:
                return
            if self._sig_r in ready and signal.SIGINT in os.read(self._sig_r, 512):
                self._fire(f"interrupted (SIGINT) while running {self.engine}", interrupted=True)
                return
            now = time.perf_counter_ns()
            window_s, inference_s = self.limits.window_s, self.limits.inference_s
            if window_s and now - self._start_ns >= window_s * 1e9:
                self._fire(f"the window of {self.engine} ran past its {window_s:g} s limit (warm-up included): "
                           "stopped; a longer window needs a larger window time limit")
                return
            mark = self.mark[0]
            if inference_s and now - mark >= inference_s * 1e9:
                self._fire(f"one inference of {self.engine} ran past the {inference_s:g} s limit: stopped (an "
                           "engine that never finishes, e.g. a model with an unbounded Loop?); a slower engine "
                           "needs a larger inference time limit")
                return

    def _fire(self, reason: str, *, interrupted: bool = False) -> None:
        self.reason = reason
        self.interrupted = interrupted
        if self.interrupt is not None:
            self.interrupt()
