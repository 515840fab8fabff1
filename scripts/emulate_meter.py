"""Emulate a wall meter on a pty (or TCP port): a thin wrapper over `edgebench meter emulate`.

    python scripts/emulate_meter.py --protocol tweetawatt --watts 60 --interval 0.5
    python scripts/emulate_meter.py --protocol wattsup --steps "0:5,10:8" --tcp 7000

It prints the port to open (e.g. /dev/pts/3) and runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import sys

from edgebench.cli import main

if __name__ == "__main__":
    main(["meter", "emulate", *sys.argv[1:]])
