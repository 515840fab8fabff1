"""The Sampler thread on a real sensor (INA3221 on a fake sysfs tree) and window energy of a known trace."""

import math
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
    sensor = open_sensor(tmp_path)
    sampler = Sampler(sensor, period_s=0.005)
    assert isinstance(sampler, WindowSampler)
    try:
        with sampler:
            time.sleep(0.02)
            start = time.time_ns()
            time.sleep(0.1)
            end = time.time_ns()
            time.sleep(0.02)
        samples = sampler.stop()
    finally:
        sensor.close()
    assert len(samples) >= 10  # 140 ms at 5 ms, allowing for a loaded CI box
    assert all(b.t_ns > a.t_ns for a, b in zip(samples, samples[1:], strict=False))
    energy = sampler.window_energy(samples, start, end)
    assert energy is not None
    assert energy.energy_j == pytest.approx(4.531 * (end - start) / 1e9, rel=1e-6)  # constant 4531 mW
    assert energy.total_rule == "POM_5V_IN"
    assert 0 <= sampler.cpu_fraction < 1.0 and sampler.wall_s > 0.1
    # a window the samples do not reach is no energy
    assert sampler.window_energy(samples, start, end + 10**9) is None
    assert sampler.window_energy((), start, end) is None


def test_deadlines_do_not_drift(tmp_path):
    make_nano_iio(tmp_path)
    sensor = open_sensor(tmp_path)
    sampler = Sampler(sensor, period_s=0.01)
    try:
        sampler.start()
        time.sleep(0.3)
        samples = sampler.stop()
    finally:
        sensor.close()
    # drift-free deadlines: the count tracks elapsed / period (+1 for the first read), minus skipped ones
    assert len(samples) + sampler.missed <= 0.3 / 0.01 + 3
    assert len(samples) >= 10


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


def test_bad_period():
    with pytest.raises(ValueError):
        Sampler(NullSensor(), period_s=0)
