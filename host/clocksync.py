"""Clock sync between host and agent: an NTP-style exchange, the smallest round trip wins.

One round: the host reads its clock (t0), asks the agent for its clock (a), reads its clock again (t1). If the
request and the response took equally long, the agent read its clock at host time (t0 + t1) / 2, so
offset = (t0 + t1) / 2 - a (host minus agent). Whatever the split, the true offset lies within +-(t1 - t0) / 2
of that, so the round with the smallest delay bounds the offset tightest; its half-delay is the uncertainty
(a bound, used as the standard uncertainty: conservative). Two syncs, one at the start of a session and one later,
give the drift between the clocks (ppm); the ClockOffset then maps any agent time in between (or after) to
host time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from edgebench.records import ClockOffset

DEFAULT_ROUNDS = 16
MIN_DRIFT_BASE_S = 30.0  # below this spacing two syncs say more about their noise than about drift


@dataclass(frozen=True)
class ClockSample:
    """The best round of one sync: offset (host - agent), its round-trip delay, when it was taken."""

    offset_ns: int
    delay_ns: int
    agent_ns: int  # agent time of the best round
    host_ns: int  # host time (midpoint) of the best round
    rounds: int

    @property
    def uncertainty_ns(self) -> int:
        return (self.delay_ns + 1) // 2


def sync(
    read_agent_ns: Callable[[], int], rounds: int = DEFAULT_ROUNDS, now_ns: Callable[[], int] = time.time_ns
) -> ClockSample:
    """`rounds` exchanges with `read_agent_ns` (one agent clock read each); the one with the smallest delay."""
    if rounds < 1:
        raise ValueError("sync: rounds must be >= 1")
    best: ClockSample | None = None
    for _ in range(rounds):
        t0 = now_ns()
        agent = read_agent_ns()
        t1 = now_ns()
        delay = t1 - t0
        mid = t0 + delay // 2
        if best is None or delay < best.delay_ns:
            best = ClockSample(offset_ns=mid - agent, delay_ns=delay, agent_ns=agent, host_ns=mid, rounds=rounds)
    assert best is not None
    return best


def combine(first: ClockSample, last: ClockSample | None = None) -> ClockOffset:
    """A ClockOffset from one sync, or from two (offset at the first, drift from first to last).

    With two syncs less than MIN_DRIFT_BASE_S apart the drift is not estimated (it would be noise) and the offset
    is the mean of both; the uncertainty is the larger half-delay, plus half the disagreement of the two offsets
    when no drift is fitted.
    """
    if last is None:
        return ClockOffset(
            offset_ns=first.offset_ns,
            reference_agent_ns=first.agent_ns,
            uncertainty_ns=first.uncertainty_ns,
            method=f"ntp-style, {first.rounds} round trips, min delay {first.delay_ns / 1e6:.3f} ms",
        )
    span_ns = last.agent_ns - first.agent_ns
    u = max(first.uncertainty_ns, last.uncertainty_ns)
    method = (
        f"ntp-style at start and end, {first.rounds}+{last.rounds} round trips, "
        f"min delays {first.delay_ns / 1e6:.3f}/{last.delay_ns / 1e6:.3f} ms"
    )
    if span_ns < MIN_DRIFT_BASE_S * 1e9:
        disagreement = abs(last.offset_ns - first.offset_ns)
        return ClockOffset(
            offset_ns=(first.offset_ns + last.offset_ns) // 2,
            reference_agent_ns=first.agent_ns,
            uncertainty_ns=u + disagreement // 2,
            method=method + ", no drift fitted (syncs under 30 s apart)",
        )
    drift_ppm = (last.offset_ns - first.offset_ns) / span_ns * 1e6
    return ClockOffset(
        offset_ns=first.offset_ns,
        reference_agent_ns=first.agent_ns,
        drift_ppm=drift_ppm,
        uncertainty_ns=u,
        method=method + f", drift {drift_ppm:+.2f} ppm",
    )
