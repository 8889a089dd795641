"""`python -m ksrv ...` runs the `ksrv` command (the control plane starts routers this way)."""

from ksrv.cli.main import main

main()
