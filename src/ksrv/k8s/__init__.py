"""ksrv on Kubernetes: the renderer that turns the neutral plan into KServe's objects, the
operator that applies them, and the install manifests (issue 13)."""
