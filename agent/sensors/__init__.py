"""On-board power sensors: one module per source, probed in order, a null sensor when none is present."""
