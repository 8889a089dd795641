"""Platforms run revisions as replicas: `base` is the seam, `local` runs them as processes."""
