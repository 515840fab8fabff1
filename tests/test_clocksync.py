"""NTP-style clock sync: the smallest round trip wins, its half-delay bounds the offset; two syncs give the drift."""

import itertools

import pytest

from edgebench.host.clocksync import ClockSample, combine, sync
from edgebench.host.transport import AgentSpec, connect


class SimulatedLink:
    """A host clock and an agent clock offset by `offset_ns`, with a request and a response delay per round."""

    def __init__(self, offset_ns, delays):
        self.offset_ns = offset_ns
        self.delays = iter(delays)  # (request delay, response delay) per round, in ns
        self.host_ns = 1_700_000_000_000_000_000

    def now(self):
        return self.host_ns

    def read_agent(self):
        there, back = next(self.delays)
        self.host_ns += there
        agent = self.host_ns - self.offset_ns  # host - agent = offset
        self.host_ns += back
        return agent


def test_smallest_round_trip_wins_and_bounds_the_error():
    # asymmetric delays: the estimate is off by half the asymmetry, never more than half the round trip
    delays = [(5_000_000, 1_000_000), (300_000, 100_000), (2_000_000, 2_000_000), (900_000, 50_000)]
    link = SimulatedLink(offset_ns=-3_000_000_000, delays=delays)
    best = sync(link.read_agent, rounds=len(delays), now_ns=link.now)
    assert best.delay_ns == 400_000 and best.rounds == 4
    error = best.offset_ns - link.offset_ns
    assert error == (100_000 - 300_000) // 2  # (response - request delay) / 2 of the winning round
    assert abs(error) <= best.uncertainty_ns == 200_000


def test_symmetric_delays_give_the_exact_offset():
    link = SimulatedLink(offset_ns=123_456_789, delays=itertools.repeat((40_000, 40_000)))
    assert sync(link.read_agent, rounds=8, now_ns=link.now).offset_ns == 123_456_789


def test_two_syncs_give_the_drift_and_map_times_between():
    first = ClockSample(offset_ns=1_000_000, delay_ns=200_000, agent_ns=0, host_ns=1_000_000, rounds=16)
    # 100 s later the agent clock has lost 2 ms against the host: drift +20 ppm
    last = ClockSample(offset_ns=3_000_000, delay_ns=400_000, agent_ns=100_000_000_000, host_ns=0, rounds=16)
    clock = combine(first, last)
    assert clock.drift_ppm == pytest.approx(20.0)
    assert clock.to_host_ns(50_000_000_000) == 50_000_000_000 + 2_000_000
    assert clock.uncertainty_ns == 200_000 and "drift +20.00 ppm" in clock.method


def test_syncs_close_together_fit_no_drift():
    first = ClockSample(offset_ns=1_000_000, delay_ns=200_000, agent_ns=0, host_ns=0, rounds=16)
    last = ClockSample(offset_ns=1_060_000, delay_ns=100_000, agent_ns=5_000_000_000, host_ns=0, rounds=16)
    clock = combine(first, last)
    assert clock.drift_ppm == 0.0 and clock.offset_ns == 1_030_000
    assert clock.uncertainty_ns == 100_000 + 30_000  # the larger half-delay plus half the disagreement


def test_a_deliberately_offset_agent_is_found_through_the_real_transport(tiny_engines):
    skew = 4_321_000_000  # the agent's clock runs 4.321 s ahead of the host's
    with connect(AgentSpec("local"), engines_dir=tiny_engines, sensor="none",
                 extra_args=["--clock-offset-ns", str(skew)]) as client:
        best = sync(lambda: client.call("clock")["t_ns"], rounds=16)
    clock = combine(best)
    assert abs(clock.offset_ns + skew) <= max(clock.uncertainty_ns, 1_000)
    assert clock.uncertainty_ns < 5_000_000  # a pipe to a local process: well under 5 ms
