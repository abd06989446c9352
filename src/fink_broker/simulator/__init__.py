"""Alert simulator: replay a folder of alert files into Kafka as the survey publishes them.

Entry points: :func:`replay` (the engine, used by tests and services) and the
``fink_simulator`` / ``fink simulator`` command (:mod:`fink_broker.simulator.cli`).
Everything but the Kafka I/O (planning, pacing, encoding, injections) is testable with a
fake producer, without a broker.
"""

from __future__ import annotations

from fink_broker.simulator.replay import (
    INJECTION_KINDS,
    AlertSource,
    Injection,
    Progress,
    ReplaySummary,
    TokenBucket,
    default_topic,
    interleave,
    plan_batches,
    replay,
)

__all__ = [
    "INJECTION_KINDS",
    "AlertSource",
    "Injection",
    "Progress",
    "ReplaySummary",
    "TokenBucket",
    "default_topic",
    "interleave",
    "plan_batches",
    "replay",
]
