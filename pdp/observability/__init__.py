"""Metrics and logs of the service (Prometheus, JSON lines)."""
