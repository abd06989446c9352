"""A/B timing in one sitting: the machine's speed drifts by 15-20% between runs, so the
variants being compared take turns within each round, and which goes first alternates
(the second of a round finds warmer caches)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def alternating_rounds(
    runs: Mapping[str, Callable[[int], None]],
    rounds: int,
    prepare: Mapping[str, Callable[[int], None]] | None = None,
) -> dict[str, list[float]]:
    """Seconds of each run per round; a run is called with the round's number.

    ``prepare[name]``, when given, runs untimed just before ``runs[name]`` (emptying the
    folder a run writes, say, which would otherwise count in its time).
    """
    prepare = prepare or {}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds):
        for name in order:
            if name in prepare:
                prepare[name](r)
            t0 = time.perf_counter()
            runs[name](r)
            seconds[name].append(time.perf_counter() - t0)
        order.reverse()
    return seconds
