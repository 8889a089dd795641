"""Download progress: a one-line bar for a person at a terminal, a log line otherwise.

Thread-safe, because parts of one download report from many threads. The bar redraws at most
ten times a second; without a terminal a log line every `LOG_EVERY_S` keeps logs quiet.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

logger = logging.getLogger(__name__)

REDRAW_EVERY_S = 0.1
LOG_EVERY_S = 10.0
BAR_WIDTH = 30


class Progress:
    """Counts bytes of one download and shows them."""

    def __init__(
        self,
        uri: str,
        total_bytes: int,
        enable_bar: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.uri = uri
        self.total_bytes = total_bytes
        self.stream = stream or sys.stderr
        self.is_bar = self.stream.isatty() if enable_bar is None else enable_bar
        self.done_bytes = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._shown = 0.0

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def add(self, size: int) -> int:
        """Count `size` more bytes; returns the running total."""
        with self._lock:
            self.done_bytes += size
            total = self.done_bytes
            now = time.monotonic()
            interval = REDRAW_EVERY_S if self.is_bar else LOG_EVERY_S
            if now - self._shown >= interval:
                self._shown = now
                self._show(final=False)
        return total

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self._shown = self._started
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.is_bar:
            with self._lock:
                self._show(final=True)

    def line(self) -> str:
        """`[#####.....]  42.0%  120.5/286.9 MB  85.3 MB/s  model.bin` (no total: bytes only)."""
        rate = self.done_bytes / max(self.elapsed_s, 1e-6) / 1e6
        done_mb = self.done_bytes / 1e6
        if self.total_bytes <= 0:
            return f"{done_mb:9.1f} MB  {rate:7.1f} MB/s  {self.uri}"
        fraction = min(self.done_bytes / self.total_bytes, 1.0)
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return (
            f"[{bar}] {fraction * 100:5.1f}%  {done_mb:.1f}/{self.total_bytes / 1e6:.1f} MB  "
            f"{rate:7.1f} MB/s  {self.uri}"
        )

    def _show(self, final: bool) -> None:
        if self.is_bar:
            self.stream.write("\r" + self.line() + ("\n" if final else ""))
            self.stream.flush()
        else:
            logger.info(
                "storage progress uri=%s bytes=%d total=%d", self.uri, self.done_bytes,
                self.total_bytes,
            )  # fmt: skip
