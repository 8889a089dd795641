"""Log lines written to stderr in blocks, not one write per line.

Why: the router logs one line per request (every step's latency). Python's stderr is
line-buffered, so each of those lines was a write system call of its own on the request path,
a sizeable share of a hop's CPU at one connection (bench/graph_router.py). Here lines gather in
a buffer written out every `FLUSH_S` by a background thread, or at once for a warning or worse,
and at exit: a line reaches the log at most `FLUSH_S` late, and nothing logged is dropped by a
normal exit.
"""

from __future__ import annotations

import atexit
import io
import logging
import sys
import threading

FLUSH_S = 0.25
_BUFFER_BYTES = 64 * 1024


class BufferedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A `StreamHandler` on stderr that flushes for warnings, on a timer, and at exit."""

    def __init__(self, flush_s: float = FLUSH_S) -> None:
        raw = io.FileIO(sys.stderr.fileno(), "wb", closefd=False)
        stream = io.TextIOWrapper(
            io.BufferedWriter(raw, _BUFFER_BYTES),
            encoding="utf-8",
            errors="backslashreplace",
            write_through=False,
        )
        super().__init__(stream)
        self._stop = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_every, args=(flush_s,), name="log-flush", daemon=True
        )
        self._flusher.start()
        atexit.register(self.flush_now)

    def flush(self) -> None:
        """Called by `emit` after every line: left to the timer (warnings flush in `emit`)."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.levelno >= logging.WARNING:
            self.flush_now()

    def flush_now(self) -> None:
        """Write out what is buffered."""
        with self.lock:  # type: ignore[union-attr]
            if not self.stream.closed:
                self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush_now()
        super().close()

    def _flush_every(self, flush_s: float) -> None:
        while not self._stop.wait(flush_s):
            self.flush_now()


def configure(level: int = logging.INFO) -> None:
    """Log at `level` to stderr through a `BufferedStderrHandler`."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = BufferedStderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
