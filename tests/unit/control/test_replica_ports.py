"""Ports handed to replicas are not handed out again while a replica may hold them: the
kernel sees a port free from the pick until the replica binds it, so two picks in that
window may return the same port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ksrv.control.platforms import processes


@pytest.fixture
def picks() -> Iterator[list[int]]:
    """What the kernel "returns" next, in order (ports nothing real uses)."""
    queue: list[int] = []
    yield queue
    processes.release_ports([1, 2, 3, 4])


def test_a_port_handed_out_is_skipped_until_released(picks):
    picks += [1, 1, 2, 1, 3]
    assert processes.take_ports(2, picks.pop) == [3, 1]
    picks[:] = [1, 3, 2]  # popped from the end: 2 is new, then 3 and 1 are taken
    assert processes.take_ports(1, picks.pop) == [2]
    processes.release_ports([1])
    picks[:] = [1, 3]
    assert processes.take_ports(1, picks.pop) == [1]


def test_two_ports_for_one_replica_are_distinct(picks):
    picks += [4, 4]
    picks.insert(0, 3)
    assert processes.take_ports(2, picks.pop) == [4, 3]


def test_an_adopted_replicas_ports_are_held(picks):
    assert processes.hold_ports([2, None]) == [2]
    picks += [3, 2]
    assert processes.take_ports(1, picks.pop) == [3]
