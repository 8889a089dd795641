"""Which loaded models to unload so a new one fits: least recently used first, under a budget.

Pure bookkeeping for a multi-model server (ModelMesh's idea): each resident model has a size
(its TrainedModel's declared `memory`, else what it measured) and a last-use time; `admit`
reserves room for a model about to load and names the models to unload for it, the least
recently used first. A model larger than the whole budget is never admitted
(`MemoryResourceAvailable: False` in KServe's words): it is refused, not loaded into an
out-of-memory kill. Times are passed in, so tests drive the clock.
"""

from __future__ import annotations

from dataclasses import dataclass


class TooLarge(Exception):
    """The model alone needs more than the whole budget."""

    def __init__(self, name: str, size_bytes: int, budget_bytes: int) -> None:
        super().__init__(
            f"model {name} needs {size_bytes} bytes of memory, more than this replica's whole "
            f"budget of {budget_bytes} bytes (MemoryResourceAvailable: False)"
        )
        self.size_bytes = size_bytes
        self.budget_bytes = budget_bytes


@dataclass(slots=True)
class _Resident:
    size_bytes: int
    last_used: float


class MemoryBudget:
    """Sizes and last uses of the models a replica holds; `None` as budget means unlimited."""

    def __init__(self, budget_bytes: int | None) -> None:
        self.budget_bytes = budget_bytes
        self._residents: dict[str, _Resident] = {}

    @property
    def used_bytes(self) -> int:
        return sum(resident.size_bytes for resident in self._residents.values())

    def names(self) -> list[str]:
        """The resident models, least recently used first."""
        return sorted(self._residents, key=lambda name: self._residents[name].last_used)

    def fits(self, size_bytes: int) -> bool:
        """Whether a model of this size fits the budget at all (with everything else gone)."""
        return self.budget_bytes is None or size_bytes <= self.budget_bytes

    def admit(self, name: str, size_bytes: int, now: float) -> list[str]:
        """Reserve `size_bytes` for `name` and return the models to unload for it, least
        recently used first (they are no longer counted).

        Raises:
            TooLarge: the model needs more than the whole budget; nothing changes.
        """
        if self.budget_bytes is not None and size_bytes > self.budget_bytes:
            raise TooLarge(name, size_bytes, self.budget_bytes)
        self._residents.pop(name, None)
        victims: list[str] = []
        if self.budget_bytes is not None:
            free = self.budget_bytes - self.used_bytes
            for victim in self.names():
                if free >= size_bytes:
                    break
                free += self._residents.pop(victim).size_bytes
                victims.append(victim)
        self._residents[name] = _Resident(size_bytes, now)
        return victims

    def resize(self, name: str, size_bytes: int) -> None:
        """A resident model's measured size replaces its estimate."""
        resident = self._residents.get(name)
        if resident is not None:
            resident.size_bytes = size_bytes

    def touch(self, name: str, now: float) -> None:
        """`name` was just used."""
        resident = self._residents.get(name)
        if resident is not None:
            resident.last_used = now

    def remove(self, name: str) -> None:
        self._residents.pop(name, None)
