"""On-board power sensors: one module per source, probed in order, a null sensor when none is present.

    from edgebench.agent.sensors import Sampler, probe
    found = probe("auto")                  # found.sensor, found.tried: [(name, "used ..." or the reason skipped)]
    sampler = Sampler(found.sensor, period_s=0.01)   # satisfies agent.harness.WindowSampler
"""

from .base import PROBE_ORDER, NullSensor, PowerSensor, ProbeResult, SensorUnavailable, probe
from .sampler import Sampler, rail_energy

__all__ = [
    "PROBE_ORDER",
    "NullSensor",
    "PowerSensor",
    "ProbeResult",
    "Sampler",
    "SensorUnavailable",
    "probe",
    "rail_energy",
]
