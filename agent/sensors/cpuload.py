"""How busy the device's CPUs were over a window: /proc/stat's aggregate jiffies read at its start and its end.

The figure is busy / total jiffies between the two reads of the aggregate `cpu` line (the one parser,
`estimate.read_cpu_jiffies`: iowait counts as idle, guest time is already inside user), so it is a fraction of
all the device's CPUs: one CPU-bound process on a 2-CPU machine reads about 0.5. The counters are cumulative,
so a burst anywhere between the two reads is in the figure (averaged over the window, never missed): no thread
samples during the window, which would itself load the CPU that an idle window is meant to leave alone.

/proc/stat counts in jiffies (usually 10 ms per CPU): a window shorter than a few jiffies gives a coarse figure,
and one in which the counters did not move gives None (unknown), as does a /proc/stat that cannot be read.

The device's quiet level is not something one read can know (whatever runs now may run all session); the cheap
fact given once per session is `busy_since_boot` (the same counters since boot), sent in hello's device metadata.
"""

from __future__ import annotations

from pathlib import Path

from .estimate import read_cpu_jiffies

# A window must see at least this many jiffies in all (summed over CPUs) for its figure to mean anything: below
# that one jiffy more or less moves it by over 5 %.
MIN_JIFFIES = 20


def read_jiffies(root: Path = Path("/")) -> tuple[int, int] | None:
    """(busy, total) aggregate jiffies of /proc/stat under `root`, or None when it cannot be read or parsed."""
    try:
        return read_cpu_jiffies(root / "proc/stat")
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def busy_between(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """Busy fraction (0..1 of all CPUs) between two (busy, total) reads; None when either is missing, the
    counters went backwards (a reset, a different machine) or moved by fewer than MIN_JIFFIES."""
    if start is None or end is None:
        return None
    busy, total = end[0] - start[0], end[1] - start[1]
    if total < MIN_JIFFIES or busy < 0 or busy > total:
        return None
    return busy / total


def busy_since_boot(root: Path = Path("/")) -> float | None:
    """Busy fraction of all CPUs since boot (one read), or None when /proc/stat cannot be read."""
    return busy_between((0, 0), read_jiffies(root))


class CpuLoad:
    """The device's CPU utilisation over one window: `start()` right before it, `stop()` right after."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root
        self._start: tuple[int, int] | None = None

    def start(self) -> None:
        """Read the counters at the window's start."""
        self._start = read_jiffies(self.root)

    def stop(self) -> float | None:
        """The busy fraction since start() (None: unknown, see busy_between)."""
        start, self._start = self._start, None
        return busy_between(start, read_jiffies(self.root))
