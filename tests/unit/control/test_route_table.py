"""control.routes.RoutePublisher: versions only move on real changes, never backwards."""

from __future__ import annotations

import asyncio

from ksrv.control.routes import RoutePublisher

SERVICE = {"namespace": "default", "name": "iris", "entry": "predictor", "components": {}}


def test_nothing_is_served_before_the_first_publish():
    async def scenario() -> None:
        table = RoutePublisher("example.com")
        assert table.version == 0
        assert await table.wait_newer(0, 0.05) is None
        waiter = asyncio.ensure_future(table.wait_newer(0, 5))
        await asyncio.sleep(0)
        table.publish([])
        published = await waiter
        assert published is not None and published["version"] > 0
        assert published["services"] == []

    asyncio.run(scenario())


def test_version_moves_only_when_the_table_changes():
    async def scenario() -> None:
        table = RoutePublisher("example.com")
        assert table.publish([SERVICE])
        version = table.version
        assert not table.publish([dict(SERVICE)])
        assert table.version == version
        assert await table.wait_newer(version, 0.05) is None
        assert table.publish([])
        assert table.version > version
        assert table.service("default", "iris") is None

    asyncio.run(scenario())


def test_a_restarted_control_plane_answers_a_gateway_that_saw_another_version():
    async def scenario() -> None:
        before = RoutePublisher("example.com")
        before.publish([SERVICE])
        after = RoutePublisher("example.com")  # a restart: counters start again
        after.publish([SERVICE])
        assert after.version >= before.version
        answer = await after.wait_newer(before.version - 1, 0.05)
        assert answer is not None and answer["services"] == [SERVICE]

    asyncio.run(scenario())


def test_each_kind_publishes_its_part_and_nothing_is_served_until_every_part_has():
    graph = {"namespace": "default", "name": "chain", "entry": "router", "components": {}}
    table = RoutePublisher("example.com", parts=("InferenceService", "InferenceGraph"))
    assert not table.publish([SERVICE])
    assert table.version == 0  # a restart: the graphs' routes are not known yet
    assert table.publish([graph], part="InferenceGraph")
    assert [s["name"] for s in table.snapshot()["services"]] == ["chain", "iris"]
    assert table.publish([], part="InferenceService")
    assert table.snapshot()["services"] == [graph]
    assert table.service("default", "chain") is None
    assert table.service("default", "chain", part="InferenceGraph") == graph
