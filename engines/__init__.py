"""What an engine is: spec and name, built-in backbones, builders and runners per backend, params/FLOPs."""
