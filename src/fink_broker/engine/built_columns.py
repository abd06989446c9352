"""A bounded cache of Spark expressions built once per input schema.

A streaming service receives micro-batches of one schema all night. Building its Column
expressions costs hundreds of py4j calls (0.1-0.7 s per batch, measured), which a batch of
a live stream should not pay again: services keep them here, keyed by what they depend on
(the schema's JSON, the survey, the modules or filters...). Columns are unresolved
expressions over names, not bound to a DataFrame, so one built for a schema serves every
frame of that schema.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class BuiltColumns(Generic[T]):
    """``key -> built value``, forgetting everything when ``capacity`` keys are reached
    (a stream sees one schema; many keys mean tests or a schema migration).

    >>> cache = BuiltColumns[int](capacity=2)
    >>> cache.get(("a",), lambda: 1), cache.get(("a",), lambda: 2)
    (1, 1)
    """

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._built: dict[Hashable, T] = {}

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value built for ``key``, building it on first use."""
        if key not in self._built:
            if len(self._built) >= self.capacity:
                self._built.clear()
            self._built[key] = build()
        return self._built[key]
