"""Concurrent HTTP load on the REST API: per route, ``clients`` threads with their own
connection send the route's requests as fast as answers come back, and each answer's
latency (request sent -> body read) is kept. Used by ``benchmarks/archive.py``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Route:
    """One route to load: its path and a generator of request parameters."""

    name: str
    path: str
    params: Callable[[int], dict[str, Any]]
    #: answers that must be 200 (False for a route allowed to say 404)
    strict: bool = True


@dataclass
class Outcome:
    """The latencies (s) of one route's requests, and what the answers held."""

    latencies: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> str:
        ms = np.array(self.latencies) * 1000.0
        p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (np.nan,) * 3
        rate = len(ms) / self.wall_s if self.wall_s else 0.0
        rows = np.mean(self.rows) if self.rows else 0.0
        size = np.mean(self.bytes) / 1024 if self.bytes else 0.0
        errors = f", errors {self.errors}" if self.errors else ""
        return (
            f"p50 {p50:,.0f} ms, p95 {p95:,.0f} ms, p99 {p99:,.0f} ms; {rate:,.1f} req/s; "
            f"{rows:,.1f} rows, {size:,.1f} KiB an answer (n={len(ms)}{errors})"
        )


def _count_rows(answer) -> int:
    if answer.headers.get("content-type", "").startswith("application/json"):
        body = answer.json()
        return len(body) if isinstance(body, list) else 1
    return 1


def load(base: str, route: Route, clients: int, requests: int, timeout_s: float = 120.0):
    """Send ``requests`` requests of ``route`` from ``clients`` concurrent clients."""
    import httpx2 as httpx

    work: queue.Queue[int] = queue.Queue()
    for i in range(requests):
        work.put(i)
    outcome = Outcome()
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base, timeout=timeout_s) as session:
            while True:
                try:
                    i = work.get_nowait()
                except queue.Empty:
                    return
                params = route.params(i)
                t0 = time.perf_counter()
                answer = session.get(route.path, params=params)
                body = answer.content
                seconds = time.perf_counter() - t0
                with lock:
                    if answer.status_code != 200 and (route.strict or answer.status_code >= 500):
                        outcome.errors[answer.status_code] = (
                            outcome.errors.get(answer.status_code, 0) + 1
                        )
                        continue
                    outcome.latencies.append(seconds)
                    outcome.rows.append(_count_rows(answer) if answer.status_code == 200 else 0)
                    outcome.bytes.append(len(body))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.wall_s = time.perf_counter() - t0
    return outcome


def warm(base: str, routes: Iterable[Route]) -> None:
    """One request per route (schema cache, connection pool, code paths), not timed."""
    import httpx2 as httpx

    with httpx.Client(base_url=base, timeout=300) as session:
        for route in routes:
            session.get(route.path, params=route.params(0))


class Server:
    """The API app on a uvicorn server in a thread, as `fink start api` runs it."""

    def __init__(self, app, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.1)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
