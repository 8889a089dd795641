"""The `ksrv` command line: parses arguments and calls the layers; no logic of its own."""
