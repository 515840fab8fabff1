"""Host side: meters, serial logger and store, clock sync, collector, energy, carbon, ranked tables."""
