"""The reliability table: each fault or bad input tried, the outcome expected and the outcome observed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tried:
    case: str
    expected: str
    observed: str

    @property
    def held(self) -> bool:
        return self.expected == self.observed


TRIED: list[Tried] = []


def expect(case: str, expected: str, observed: str) -> None:
    """Record one row of the table and fail the test when the observed outcome is not the expected one."""
    TRIED.append(Tried(case, expected, observed))
    assert observed == expected, f"{case}: expected {expected!r}, observed {observed!r}"
