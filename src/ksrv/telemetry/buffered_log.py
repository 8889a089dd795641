"""Log lines written to stderr in blocks, not one write per line.

Why: the router logs one line per request (every step's latency). Python's stderr is
line-buffered, so each of those lines was a write system call of its own on the request path,
a sizeable share of a hop's CPU at one connection (bench/graph_router.py). Here lines gather in
a buffer written out every `FLUSH_S` by a background thread, or at once for a warning or worse,
and at exit: a line reaches the log at most `FLUSH_S` late, and nothing logged is dropped by a
normal exit. `info_line` writes a per-request line in the same format without building a
`LogRecord` (a third of the router's own Python work per request went to logging its line).
"""

from __future__ import annotations

import atexit
import io
import logging
import sys
import threading
import time

FLUSH_S = 0.25
_BUFFER_BYTES = 64 * 1024


class BufferedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A `StreamHandler` on stderr that flushes for warnings, on a timer, and at exit."""

    def __init__(self, flush_s: float = FLUSH_S, fd: int | None = None) -> None:
        """`fd`: the file descriptor to write to (stderr's when None)."""
        raw = io.FileIO(sys.stderr.fileno() if fd is None else fd, "wb", closefd=False)
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
        self._second = -1
        self._stamp = ""
        atexit.register(self.flush_now)

    def write_info(self, name: str, message: str) -> None:
        """`message` from logger `name` at INFO, as `logging.Formatter(LINE_FORMAT)` writes it."""
        now = time.time()
        second = int(now)
        if second != self._second:  # the date and time change once a second
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        line = f"{self._stamp},{int((now - second) * 1000):03d} INFO {name} {message}\n"
        with self.lock:  # type: ignore[union-attr]
            self.stream.write(line)

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


LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_handler: BufferedStderrHandler | None = None


def configure(level: int = logging.INFO, fd: int | None = None) -> None:
    """Log at `level` to stderr (or `fd`) through a `BufferedStderrHandler`, unless the root
    logger has handlers already."""
    global _handler
    root = logging.getLogger()
    if root.handlers:
        return
    _handler = BufferedStderrHandler(fd=fd)
    _handler.setFormatter(logging.Formatter(LINE_FORMAT))
    root.addHandler(_handler)
    root.setLevel(level)


def info_line(logger: logging.Logger, message: str) -> None:
    """Log `message` at INFO: straight into the buffer when `configure` set logging up, else
    through `logger` (a process that configured logging its own way)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    if _handler is not None:
        _handler.write_info(logger.name, message)
    else:
        logger.info("%s", message)
