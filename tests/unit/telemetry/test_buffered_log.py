"""Log lines leave in blocks: within the flush interval, at once for a warning, all at exit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import wait_until

SCRIPT = """
import logging, sys, time
from ksrv.telemetry import buffered_log
buffered_log.configure(logging.INFO)
log = logging.getLogger("t")
for n in range(3):
    log.info("line %d", n)
buffered_log.info_line(log, "a request's line")
print("logged", flush=True)
sys.stdin.readline()  # until the test says go on
log.warning("a warning")
sys.stdin.readline()
for n in range(1000):
    log.info("last %d", n)
"""


def test_lines_leave_on_the_timer_a_warning_at_once_and_the_rest_at_exit(tmp_path: Path) -> None:
    log_path = tmp_path / "stderr.log"
    with (
        log_path.open("wb") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as child,
    ):
        _drive(child, log_path)
    lines = log_path.read_text().splitlines()
    assert len(lines) == 1005 and lines[-1].endswith("INFO t last 999")


def _drive(child: subprocess.Popen[str], log_path: Path) -> None:
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "logged\n"
        # No warning, no exit: the timer writes the three lines out.
        wait_until(lambda: "a request's line" in log_path.read_text(), "the timer's flush")
        first = log_path.read_text().splitlines()
        assert [line.split(" ", 2)[2] for line in first] == [
            "INFO t line 0", "INFO t line 1", "INFO t line 2", "INFO t a request's line",
        ]  # fmt: skip
        # The same date and time format as logging's own lines.
        assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO", line) for line in first)
        child.stdin.write("\n")
        child.stdin.flush()
        wait_until(lambda: "WARNING t a warning" in log_path.read_text(), "the warning")
        child.stdin.write("\n")
        child.stdin.close()
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
