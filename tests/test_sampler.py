"""The Sampler thread on a real sensor (INA3221 on a fake sysfs tree) and window energy of a known trace."""

import math
import threading
import time

import pytest
from test_sensors import make_nano_iio

from edgebench.agent.harness import WindowSampler
from edgebench.agent.sensors.base import NullSensor
from edgebench.agent.sensors.ina3221 import open_sensor
from edgebench.agent.sensors.sampler import Sampler, rail_energy
from edgebench.errors import DeviceError
from edgebench.records import PowerSample


class _Fixed:
    """A sensor with a known rule, used only to name the RailEnergy of synthetic samples."""

    name = "synthetic"
    rails = ("VDD_IN",)
    total_rule = "VDD_IN"
    estimate = False


class Reads:
    """The real sensor, its reads counted, so that a test waits for the sampler's readings instead of sleeping
    for a time in which a quiet machine would have taken them."""

    def __init__(self, sensor):
        self.sensor, self.count, self._changed = sensor, 0, threading.Condition()
        self.name, self.rails, self.total_rule = sensor.name, sensor.rails, sensor.total_rule
        self.estimate, self.counter_based = sensor.estimate, getattr(sensor, "counter_based", False)

    def read(self):
        sample = self.sensor.read()
        with self._changed:
            self.count += 1
            self._changed.notify_all()
        return sample

    def wait_for(self, count, timeout_s=60.0):
        """Block until `count` reads in all were taken (the timeout only guards against a hang)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self.count >= count, timeout_s), f"{self.count} reads, not {count}"

    def close(self):
        self.sensor.close()


def test_window_energy_of_a_known_trace_within_half_a_percent():
    # P(t) = 5 W + 2 W sin(2 pi t / 1 s), sampled every 10 ms; window [0.123 s, 2.877 s] with epoch-size times
    t0 = 1_700_000_000_000_000_000
    samples = [
        PowerSample(t0 + k * 10_000_000, {"VDD_IN": p}, p)
        for k in range(301)
        for p in [1000 * (5 + 2 * math.sin(2 * math.pi * k * 0.01))]
    ]
    a, b = 0.123, 2.877
    exact_j = 5 * (b - a) - 2 / (2 * math.pi) * (math.cos(2 * math.pi * b) - math.cos(2 * math.pi * a))
    energy = rail_energy(samples, t0 + int(a * 1e9), t0 + int(b * 1e9), _Fixed())
    assert energy.energy_j == pytest.approx(exact_j, rel=0.005)
    assert energy.mean_power_w == pytest.approx(exact_j / (b - a), rel=0.005)
    assert (energy.sensor, energy.total_rule, energy.estimate) == ("synthetic", "VDD_IN", False)
    assert energy.samples == 275  # samples inside the window: k = 13 .. 287


def test_sampler_runs_on_a_fake_tree_and_covers_the_window(tmp_path):
    make_nano_iio(tmp_path)
    sensor = Reads(open_sensor(tmp_path))
    sampler = Sampler(sensor, period_s=0.005)
    assert isinstance(sampler, WindowSampler)
    try:
        with sampler:
            sensor.wait_for(3)
            start = time.time_ns()
            sensor.wait_for(sensor.count + 10)  # ten readings of the thread inside the window
            end = time.time_ns()
            sensor.wait_for(sensor.count + 2)
        samples = sampler.stop()
    finally:
        sensor.close()
    assert len(samples) >= 16
    assert all(b.t_ns > a.t_ns for a, b in zip(samples, samples[1:], strict=False))
    energy = sampler.window_energy(samples, start, end)
    assert energy is not None
    assert energy.energy_j == pytest.approx(4.531 * (end - start) / 1e9, rel=1e-6)  # constant 4531 mW
    assert energy.total_rule == "POM_5V_IN"
    assert 0 <= sampler.cpu_fraction < 1.0 and sampler.wall_s >= (end - start) / 1e9
    # a window the samples do not reach is no energy
    assert sampler.window_energy(samples, start, end + 10**9) is None
    assert sampler.window_energy((), start, end) is None


def test_deadlines_do_not_drift(tmp_path):
    make_nano_iio(tmp_path)
    sensor = Reads(open_sensor(tmp_path))
    sampler = Sampler(sensor, period_s=0.01)
    try:
        t0 = time.perf_counter()
        sampler.start()
        sensor.wait_for(20)
        samples = sampler.stop()
        elapsed_s = time.perf_counter() - t0
    finally:
        sensor.close()
    # drift-free deadlines: the count tracks the elapsed time / period (+1 for the first read and the last, after
    # stop), counting the deadlines skipped by a late read, never more: no burst to catch up
    assert len(samples) + sampler.missed <= elapsed_s / 0.01 + 3
    assert len(samples) >= 20


def test_a_sensor_that_cannot_read_fails_at_start():
    sampler = Sampler(NullSensor("nothing here"), period_s=0.01)
    with pytest.raises(DeviceError, match="nothing here"):
        sampler.start()


def test_sensor_failure_in_the_thread_surfaces_on_stop(tmp_path):
    dev = make_nano_iio(tmp_path)
    sensor = open_sensor(tmp_path)
    sampler = Sampler(sensor, period_s=0.002)
    try:
        sampler.start()
        (dev / "in_power0_input").write_text("garbage\n")  # the driver now answers nonsense
        time.sleep(0.05)
        with pytest.raises(DeviceError, match="INA3221 read failed"):
            sampler.stop()
    finally:
        sensor.close()


def test_windows_taken_like_the_harness_are_covered(tmp_path):
    # agent/harness.py reads its window start right after start() and its end right before stop(), with no
    # padding: the first reading must precede the start and the last follow the end, or the window has no energy.
    make_nano_iio(tmp_path)
    sensor = open_sensor(tmp_path)
    try:
        for _ in range(20):
            sampler = Sampler(sensor, period_s=0.01)
            sampler.start()
            start = time.time_ns()
            time.sleep(0.003)
            end = time.time_ns()
            samples = sampler.stop()
            assert samples[0].t_ns <= start and samples[-1].t_ns >= end
            energy = sampler.window_energy(samples, start, end)
            assert energy is not None
            assert energy.energy_j == pytest.approx(4.531 * (end - start) / 1e9, rel=1e-6)
    finally:
        sensor.close()


class LineBuffered:
    """A sensor that hands out lines as they arrive, like tegrastats: a line that arrived while nobody read is
    given by the next read, stamped when it arrived, not when read; with none waiting a read gives a fresh one."""

    name, rails, total_rule, estimate = "line-buffered", ("VDD_IN",), "VDD_IN", False

    def __init__(self):
        self.waiting = None

    def arrive(self):
        self.waiting = PowerSample(time.time_ns(), {"VDD_IN": 5000.0}, 5000.0)
        return self.waiting.t_ns

    def read(self):
        sample, self.waiting = self.waiting, None
        return sample or PowerSample(time.time_ns(), {"VDD_IN": 5000.0}, 5000.0)


def test_a_line_that_arrived_before_stop_does_not_end_the_coverage_early():
    # On a busy machine the sampling thread may not run between a line's arrival and the window's end: stop()'s
    # last read then gets that older line. A stress run saw a tegrastats window lose its energy this way.
    sensor = LineBuffered()
    sampler = Sampler(sensor, period_s=3600)  # the thread's first deadline is far away: only start/stop read
    sampler.start()
    start = time.time_ns()
    arrived = sensor.arrive()
    end = time.time_ns()
    while end <= arrived:  # a coarse clock: the end must follow the line
        end = time.time_ns()
    samples = sampler.stop()
    assert arrived in [s.t_ns for s in samples] and samples[-1].t_ns >= end
    energy = sampler.window_energy(samples, start, end)
    assert energy is not None and energy.energy_j == pytest.approx(5.0 * (end - start) / 1e9, rel=1e-9)


def test_bad_period():
    with pytest.raises(ValueError):
        Sampler(NullSensor(), period_s=0)
