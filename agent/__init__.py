"""Device side: sweep, timing harness, on-board power sensors, device metadata, agent protocol server."""
