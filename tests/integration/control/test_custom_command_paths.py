"""A custom container whose command names a relative path that is not there: the replica's
failure says which path, the directory it was resolved against and how to fix it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from ksrv.control.platforms.base import RevisionSpec
from ksrv.control.platforms.local import LocalPlatform
from ksrv.control.platforms.replica import Supervision

FAST = Supervision(grace_period_s=5.0, backoff_initial_s=5.0, starting_probe_interval_s=0.05)


def custom_spec(platform: LocalPlatform, container: dict) -> RevisionSpec:
    from tests.unit.control.test_plan import desired

    service = desired({"predictor": {"containers": [{"name": "kserve-container", **container}]}})
    rendering = platform.render("default", "custom", service.components["predictor"])
    return rendering.spec.named("custom-predictor-00001")


async def first_failure(platform: LocalPlatform, spec: RevisionSpec) -> str:
    await platform.ensure(spec)
    try:
        async with asyncio.timeout(30):
            while True:
                replicas = platform.observe()[spec.key].replicas
                if replicas and replicas[0].last_failure:
                    return replicas[0].last_failure
                await asyncio.sleep(0.05)
    finally:
        await platform.shutdown(stop_replicas=True)


@pytest.mark.parametrize(
    ("command", "starts"),
    [(["python", "model.py"], True), (["./serve.sh"], False)],
)
def test_a_missing_relative_command_path_is_explained_in_the_failure(tmp_path, command, starts):
    platform = LocalPlatform(tmp_path, python=sys.executable, supervision=FAST)
    failure = asyncio.run(first_failure(platform, custom_spec(platform, {"command": command})))
    first_line = failure.splitlines()[0]
    assert first_line.startswith("exited with code 2" if starts else "cannot start ./serve.sh")
    assert (
        f"{command[-1]!r} in the container's command is a relative path, resolved against "
        f"{Path.cwd()}, the directory ksrv runs in, as the container sets no workingDir"
    ) in first_line
    assert "set the container's workingDir to the folder that holds it" in first_line


def test_a_relative_script_runs_from_the_working_dir(tmp_path):
    (tmp_path / "model.py").write_text("import sys; print('ran from workingDir'); sys.exit(3)")
    platform = LocalPlatform(tmp_path, python=sys.executable, supervision=FAST)
    container = {"command": ["python", "model.py"], "workingDir": str(tmp_path)}
    failure = asyncio.run(first_failure(platform, custom_spec(platform, container)))
    assert failure.startswith("exited with code 3; log tail:")
    assert "ran from workingDir" in failure
