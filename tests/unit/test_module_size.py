"""STYLE.md: no module of ksrv over 500 lines (generated gRPC code aside)."""

from __future__ import annotations

from pathlib import Path

import ksrv

MAX_LINES = 500
SOURCE = Path(ksrv.__file__).parent


def test_no_module_is_over_500_lines():
    too_long = {
        str(path.relative_to(SOURCE)): count
        for path in SOURCE.rglob("*.py")
        if "_gen" not in path.parts
        and (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}
