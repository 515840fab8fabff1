"""Live watts for Prometheus: a meter logger's readings served in the standard exposition format.

`serve(logger, "127.0.0.1:9464")` starts `prometheus_client`'s HTTP server on its own registry with one
collector that reads the logger when scraped (nothing is done per reading), and returns a `MeterExporter`:

- `edgebench_meter_power_watts` (gauge): the latest reading;
- `edgebench_meter_energy_joules_total` (counter): the readings integrated since the logger started
  (trapezoid between consecutive readings, nothing across a gap);
- `edgebench_meter_readings_total`, `edgebench_meter_bad_frames_total`, `edgebench_meter_gaps_total`,
  `edgebench_meter_reconnects_total` (counters);
- `edgebench_meter_last_reading_timestamp_seconds` (gauge): host time of the latest reading;
- `edgebench_window_info{window, kind}` (info): the window open now during `measure` or `run` (kind "run",
  "idle" or "none" between windows), set through `exporter.window(label, kind)`.
Every meter series carries `meter` (its identity) and `url` labels. The address must be loopback unless
`remote=True` (the endpoint has no authentication: anyone who reaches it reads the watts).
`prometheus_client` is the optional extra `edgebench[prometheus]`, imported only here.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import TYPE_CHECKING

from edgebench.errors import BadInput, MissingDependency

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client import Metric

    from edgebench.host.logger import BaseLogger, LoggerStats
    from edgebench.records import MeterReading

PREFIX = "edgebench"


def parse_address(text: str, *, remote: bool = False) -> tuple[str, int]:
    """HOST:PORT (or [v6]:PORT, or :PORT for 127.0.0.1) checked: a port 0-65535 and, unless `remote`, a host that
    is this machine's loopback."""
    text = str(text).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise BadInput(f"--prometheus {text!r}: give HOST:PORT, e.g. 127.0.0.1:9464")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise BadInput(f"--prometheus {text!r}: the port must be a number 0-65535, e.g. 127.0.0.1:9464")
    if not remote and not is_loopback(host):
        raise BadInput(
            f"--prometheus {text}: {host} is reachable from other machines and the endpoint has no password; "
            "use 127.0.0.1 (a Prometheus on this machine), or pass --prometheus-remote to serve the network"
        )
    return host, port


def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback one (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise BadInput(f"--prometheus: cannot resolve {host!r}: give an address such as 127.0.0.1") from None
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


class MeterExporter:
    """A running endpoint; `window()` names the open window; `close()` stops it."""

    def __init__(self, logger: BaseLogger, host: str, port: int) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise MissingDependency(
                "--prometheus needs prometheus_client: pip install 'edgebench[prometheus]'"
            ) from None
        self.logger = logger
        self._window = ("", "none")
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise BadInput(f"--prometheus {host}:{port}: cannot listen there ({exc.strerror}): pick another port") from None
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def window(self, label: str | None, kind: str = "run") -> None:
        """The window open now (None: none)."""
        with self._lock:
            self._window = (label or "", kind if label else "none")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> tuple[LoggerStats, MeterReading | None, tuple[str, str]]:
        with self._lock:
            return self.logger.stats, self.logger.latest(), self._window


class _Collector:
    """Reads the logger at scrape time."""

    def __init__(self, exporter: MeterExporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        stats, latest, (window, kind) = self.exporter.snapshot()
        logger = self.exporter.logger
        labels = ["meter", "url"]
        values = [logger.meter or "unknown", logger.url]
        power = GaugeMetricFamily(f"{PREFIX}_meter_power_watts", "Latest wall-meter reading (W).", labels=labels)
        power.add_metric(values, latest.power_w if latest is not None else float("nan"))
        yield power
        stamp = GaugeMetricFamily(
            f"{PREFIX}_meter_last_reading_timestamp_seconds", "Host time of the latest reading.", labels=labels
        )
        stamp.add_metric(values, latest.t_ns / 1e9 if latest is not None else float("nan"))
        yield stamp
        energy = CounterMetricFamily(
            f"{PREFIX}_meter_energy_joules", "Energy of the readings since the logger started (J).", labels=labels
        )
        energy.add_metric(values, stats.energy_j)
        yield energy
        for name, value, text in (
            ("readings", stats.readings, "Readings logged."),
            ("bad_frames", stats.bad_frames, "Frames or answers rejected (damaged, impossible, HTTP errors)."),
            ("gaps", stats.gaps, "Gaps recorded (meter silent, port or plug lost, stale plug)."),
            ("reconnects", stats.reconnects, "Times the meter came back after being lost."),
        ):
            family = CounterMetricFamily(f"{PREFIX}_meter_{name}", text, labels=labels)
            family.add_metric(values, value)
            yield family
        info = InfoMetricFamily(f"{PREFIX}_window", "The measurement window open now.")
        info.add_metric([], {"window": window, "kind": kind})
        yield info


def serve(logger: BaseLogger, address: str, *, remote: bool = False) -> MeterExporter:
    """Start the endpoint for `logger` at `address` (HOST:PORT; see `parse_address`)."""
    host, port = parse_address(address, remote=remote)
    return MeterExporter(logger, host, port)
