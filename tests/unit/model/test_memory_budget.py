"""MemoryBudget: which models a multi-model server unloads to make room (sizes and clock
given as plain values)."""

from __future__ import annotations

import pytest

from ksrv.model.memory_budget import MemoryBudget, TooLarge


def test_models_that_fit_unload_nothing():
    budget = MemoryBudget(300)
    assert budget.admit("a", 100, now=1) == []
    assert budget.admit("b", 200, now=2) == []
    assert budget.used_bytes == 300


def test_the_least_recently_used_model_makes_room():
    budget = MemoryBudget(300)
    for now, name in enumerate("abc"):
        budget.admit(name, 100, now)
    budget.touch("a", now=10)  # b is now the least recently used
    assert budget.admit("d", 100, now=11) == ["b"]
    assert budget.names() == ["c", "a", "d"]


def test_as_many_models_go_as_the_newcomer_needs_oldest_first():
    budget = MemoryBudget(300)
    for now, name in enumerate("abc"):
        budget.admit(name, 100, now)
    assert budget.admit("big", 250, now=5) == ["a", "b", "c"]
    assert budget.used_bytes == 250


def test_a_model_larger_than_the_whole_budget_is_refused_and_nothing_moves():
    budget = MemoryBudget(300)
    budget.admit("a", 100, now=1)
    with pytest.raises(TooLarge, match="MemoryResourceAvailable: False"):
        budget.admit("huge", 301, now=2)
    assert budget.names() == ["a"] and not budget.fits(301) and budget.fits(300)


def test_readmitting_a_resident_model_replaces_its_size():
    budget = MemoryBudget(300)
    budget.admit("a", 100, now=1)
    budget.admit("b", 100, now=2)
    assert budget.admit("a", 200, now=3) == []
    assert budget.used_bytes == 300


def test_a_measured_size_replaces_the_estimate_and_remove_frees_it():
    budget = MemoryBudget(300)
    budget.admit("a", 0, now=1)
    budget.resize("a", 120)
    assert budget.used_bytes == 120
    budget.remove("a")
    assert budget.used_bytes == 0 and budget.names() == []


def test_without_a_budget_nothing_is_ever_unloaded():
    budget = MemoryBudget(None)
    assert all(budget.admit(str(i), 10**9, now=i) == [] for i in range(50))
