"""The gateway: one port in front of every InferenceService, routing to replicas."""
