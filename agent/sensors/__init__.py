"""On-board power sensors: one module per source, probed in order, a null sensor when none is present.

    from edgebench.agent.sensors import Sampler, probe
    found = probe("auto")                  # found.sensor, found.tried: [(name, "used ..." or the reason skipped)]
    sampler = Sampler(found.sensor)        # every agent.options.SENSOR_PERIOD_S; a harness.WindowSampler
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
