"""`ksrv prometheus-config`: a config Prometheus accepts, discovering targets through the
management API the command names."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from ksrv.cli.main import cli


def test_the_config_discovers_every_target_through_the_management_api():
    result = CliRunner().invoke(
        cli, ["prometheus-config", "--server", "http://10.0.0.5:9000/", "--scrape-interval", "5s"]
    )
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.output)
    assert config["global"]["scrape_interval"] == "5s"
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["http_sd_configs"] == [
        {"url": "http://10.0.0.5:9000/ksrv/v1/prometheus/targets", "refresh_interval": "5s"}
    ]


def test_a_scrape_interval_that_is_no_duration_is_refused_naming_the_flag():
    result = CliRunner().invoke(cli, ["prometheus-config", "--scrape-interval", "often"])
    assert result.exit_code == 2
    assert "--scrape-interval" in result.output and "'often'" in result.output


def test_promtool_accepts_the_config(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no `promtool` (Debian's prometheus package): apt-get install prometheus")
    path = tmp_path / "prometheus.yml"
    path.write_text(CliRunner().invoke(cli, ["prometheus-config"]).output)
    checked = subprocess.run([promtool, "check", "config", str(path)], capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
