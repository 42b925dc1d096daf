"""The generator's routes by area: runs (commands and status), probes (health, readiness, metrics)."""
