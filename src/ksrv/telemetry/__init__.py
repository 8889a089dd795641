"""Telemetry shared by every ksrv process: Prometheus metrics (and tracing, payload logs)."""
