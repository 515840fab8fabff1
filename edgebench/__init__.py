"""edgebench: energy and carbon cost of ML inference on edge devices.

This package is the front door: the click CLI and the records that the device side (agent) and the host side
exchange. The card's folders install beside it as `edgebench.engines`, `edgebench.agent` and `edgebench.host`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from edgebench.host.monitor import Monitor


def __getattr__(name: str) -> type[Monitor]:
    # `from edgebench import Monitor` without importing the host side (numpy, pyserial) for every user of the CLI
    if name == "Monitor":
        from edgebench.host.monitor import Monitor

        return Monitor
    raise AttributeError(f"module 'edgebench' has no attribute {name!r}")
