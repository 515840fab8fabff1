"""Jetson rails through jetson-stats (`jtop`), imported lazily; needs the jtop service running.

Only each rail's instantaneous `power` (mW) is used and integrated over time: `avg` is a halving moving
average, not an energy. The total is `tot.power`, the input rail when the board has one (`tot.name`), else
jtop's own sum. The service sets one sampling interval for every client (default 1 s).
"""

from __future__ import annotations

from typing import Any

from edgebench.errors import DeviceError
from edgebench.records import PowerSample

from .base import SUM_RULE, SensorUnavailable, now_ns, total_mw


def power_from_jtop(power: dict[str, Any]) -> tuple[dict[str, float], float, str]:
    """Rails (mW), total (mW) and total rule from jtop's `jetson.power` dict (`power` fields only, never `avg`).

    jtop moves the input rail (VIN, POM_5V_IN or VDD_IN) out of `rail` into `tot` and names it there; it is put
    back among the rails here so that every source reports the same rail set. Without an input rail, jtop's
    `tot` is its own sum of the rails.
    """
    rails = {name: float(r["power"]) for name, r in power.get("rail", {}).items() if r.get("online", True)}
    tot = power.get("tot", {})
    if "power" not in tot:
        return rails, float(total_mw(rails, SUM_RULE)), SUM_RULE
    name = tot.get("name")
    if name:
        rails = {name: float(tot["power"]), **rails}
        return rails, float(tot["power"]), str(name)
    return rails, float(tot["power"]), "jtop sum of rails (no input rail)"


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
        rails, _, rule = power_from_jtop(self._jetson.power)
        self.rails = tuple(rails)
        self.total_rule = rule

    def read(self) -> PowerSample:
        t_ns = now_ns()
        try:
            rails, total, _ = power_from_jtop(self._jetson.power)
        except (self._exc, KeyError, TypeError) as exc:
            raise DeviceError(f"jtop read failed: {exc}") from None
        return PowerSample(t_ns=t_ns, rails_mw=rails, total_mw=total)

    def close(self) -> None:
        self._jetson.close()


def open_sensor() -> JtopSensor:
    """A jtop client (SensorUnavailable without jetson-stats or its service)."""
    return JtopSensor()
