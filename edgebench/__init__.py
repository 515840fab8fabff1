"""edgebench: energy and carbon cost of ML inference on edge devices.

This package is the front door: the click CLI and the records that the device side (agent) and the host side
exchange. The card's folders install beside it as `edgebench.engines`, `edgebench.agent` and `edgebench.host`.
"""

__version__ = "0.1.0"
