"""The dashboard's page as shipped: small, complete, and nothing fetched from elsewhere."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from ksrv.control import dashboard

MAX_BYTES = 300 * 1024  # issue 20: page weight
ROOT = Path(__file__).resolve().parents[3]


def test_every_asset_together_weighs_at_most_300_kb():
    files = dashboard.assets()
    assert "index.html" in files
    total = sum(len(body) for body in files.values())
    assert total <= MAX_BYTES, f"{total} bytes of assets"


def test_every_file_the_page_loads_is_shipped_and_comes_from_the_page_itself():
    files = dashboard.assets()
    wanted = set(re.findall(r'(?:src|href)="([^"#:]+)"', files["index.html"].decode()))
    for name, body in files.items():
        if name.endswith(".js"):
            wanted |= {m.removeprefix("./") for m in re.findall(r'from "([^"]+)"', body.decode())}
    assert wanted and wanted <= set(files), wanted - set(files)
    for name, body in files.items():
        text = body.decode()
        assert not re.search(r'(?:src|href)="(?:https?:)?//', text), name  # no CDN
        assert not re.search(r'(?:from|import\() *"(?:https?:)?//', text), name
        assert "<script>" not in text and " style=" not in text, name  # the CSP forbids both


def test_the_assets_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["package-data"]["ksrv.control"]
    assert "dashboard_assets/*" in data
