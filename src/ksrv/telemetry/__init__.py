"""What a process tells about itself: traces (and, beside them, metrics and payload logs)."""
