"""Wall and USB power meters: one decoder module per wire protocol, a registry, pty/TCP emulators, the CLI."""
