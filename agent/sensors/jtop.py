"""Jetson rails through jetson-stats (`jtop`), imported lazily; needs the jtop service running.

Only each rail's instantaneous `power` (mW) is used and integrated over time: `avg` is a halving moving
average, not an energy. The total is `tot.power`, the input rail when the board has one (`tot.name`), else
jtop's own sum. The service sets one sampling interval for every client (default 1 s).
"""

from __future__ import annotations

import math
from typing import Any

from edgebench.errors import DeviceError, ProtocolError
from edgebench.records import PowerSample

from .base import MAX_RAIL_MW, SUM_RULE, SensorUnavailable, now_ns, total_mw


def _mw(value: Any, what: str) -> float:
    """A power from jtop as a float mW within 0..MAX_RAIL_MW; ProtocolError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"jtop sent {what} = {str(value)[:24]!r}, not a number: update jetson-stats")
    try:
        mw = float(value)
    except OverflowError:  # an int with hundreds of digits
        mw = math.inf
    if not (math.isfinite(mw) and 0.0 <= mw <= MAX_RAIL_MW):
        raise ProtocolError(f"jtop sent {what} = {value!r} mW, not a reading: restart the jtop service")
    return mw


def power_from_jtop(power: dict[str, Any]) -> tuple[dict[str, float], float, str]:
    """Rails (mW), total (mW) and total rule from jtop's `jetson.power` dict (`power` fields only, never `avg`).

    jtop moves the input rail (VIN, POM_5V_IN or VDD_IN) out of `rail` into `tot` and names it there; it is put
    back among the rails here so that every source reports the same rail set. Without an input rail, jtop's
    `tot` is its own sum of the rails. Anything else than that shape, or a power that is not a finite number
    from 0 to MAX_RAIL_MW, is a ProtocolError.
    """
    if not isinstance(power, dict) or not isinstance(power.get("rail", {}), dict):
        raise ProtocolError(f"jtop sent power data of the wrong shape ({str(power)[:60]!r}): update jetson-stats")
    rails = {}
    for name, r in power.get("rail", {}).items():
        if not isinstance(r, dict) or "power" not in r:
            raise ProtocolError(f"jtop rail {str(name)[:24]!r} has no power field: update jetson-stats")
        if r.get("online", True):
            rails[str(name)] = _mw(r["power"], f"rail {name} power")
    tot = power.get("tot", {})
    if not isinstance(tot, dict):
        raise ProtocolError(f"jtop sent a total of the wrong shape ({str(tot)[:60]!r}): update jetson-stats")
    if "power" not in tot:
        return rails, float(total_mw(rails, SUM_RULE)), SUM_RULE
    total = _mw(tot["power"], "tot power")
    name = tot.get("name")
    if name:
        rails = {str(name): total, **rails}
        return rails, total, str(name)
    return rails, total, "jtop sum of rails (no input rail)"


class JtopSensor:
    """Reads `jetson.power` from a running jtop client."""

    name = "jtop"
    estimate = False

    def __init__(self) -> None:
        try:
            from jtop import JtopException, jtop
        except ImportError:
            raise SensorUnavailable("jetson-stats not installed: `sudo pip3 install jetson-stats`",
                                    "dependency") from None
        self._exc: Any = JtopException
        self._jetson = jtop()
        try:
            self._jetson.start()
        except JtopException as exc:
            reason = " ".join(str(exc).split())  # jtop's message spans lines
            raise SensorUnavailable(f"jtop service not running ({reason}): `sudo jtop --install-service` or "
                                    "`sudo systemctl restart jtop`, and add yourself to group jtop") from None
        if not self._jetson.ok():
            self._jetson.close()
            raise SensorUnavailable("jtop connected but sends no data: restart the jtop service", "failed")
        try:
            rails, _, rule = power_from_jtop(self._jetson.power)
        except ProtocolError as exc:
            self._jetson.close()
            raise SensorUnavailable(str(exc), "failed") from None
        self.rails = tuple(rails)
        self.total_rule = rule

    def read(self) -> PowerSample:
        t_ns = now_ns()
        try:
            rails, total, _ = power_from_jtop(self._jetson.power)
        except (self._exc, ProtocolError) as exc:
            raise DeviceError(f"jtop read failed: {exc}") from None
        return PowerSample(t_ns=t_ns, rails_mw=rails, total_mw=total)

    def close(self) -> None:
        self._jetson.close()


def open_sensor() -> JtopSensor:
    """A jtop client (SensorUnavailable without jetson-stats or its service)."""
    return JtopSensor()
