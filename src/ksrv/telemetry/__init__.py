"""What a process tells about itself: Prometheus metrics and traces (and payload logs)."""
