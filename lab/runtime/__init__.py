"""Running real processes (Envoy) for the lab."""
