"""Supervised services: a streaming service whose query fails is started again, by Fink.

A failed micro-batch leaves no trace in the archives (each sink commits by batch id) and
the checkpoint says where to resume, so starting the query again is always safe. What
must not be restarted is a failure the operator has to fix (refused credentials, a
checkpoint that does not match its archive, topics the output cluster will not create):
those are :class:`~fink_broker.errors.FinkError` without ``transient``, and they end the
service with their one-line message, as before.

Each restart is logged with its reason and appended to the service's metrics file as
``{"event": "restart", "service", "restarts", "reason", "time"}``, which `fink show` and
the dashboard count. The wait doubles from ``backoff_s`` up to ``max_backoff_s``; a run that
stayed up ``healthy_after_s`` starts a new count, so a service that fails once a night is
never given up on, and one that cannot start at all stops after ``max_restarts``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fink_broker.config import Settings, SupervisionSettings
from fink_broker.errors import FinkError
from fink_broker.services.streaming import metrics_path, restart_events, stop_requested

log = logging.getLogger(__name__)

#: the metrics line's ``event`` of a restart
RESTART_EVENT = "restart"


class GaveUp(FinkError):
    """A service failed ``max_restarts`` times in a row."""


def is_transient(error: BaseException) -> bool:
    """Whether starting the query again can help.

    Yes for a failed query (its ``RuntimeError`` or Spark's ``StreamingQueryException``),
    a JVM or network error, and a :class:`FinkError` marked ``transient`` (HBase or Kafka
    unreachable). No for an operator's error (any other ``FinkError``) and for what a
    restart would only repeat: a wrong setting or a bug (``ValueError``, ``TypeError``, a
    plan Spark cannot analyse).
    """
    if isinstance(error, FinkError):
        return bool(getattr(error, "transient", False))
    if isinstance(error, RuntimeError | OSError | TimeoutError):
        return True
    kinds = {k.__name__ for k in type(error).__mro__}
    return bool(kinds & {"Py4JError", "StreamingQueryException"})


def reason_of(error: BaseException, limit: int = 500) -> str:
    """One line that says why: the exception's type and the first line of its message."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:limit]


@dataclass
class Supervisor:
    """Runs one service until it ends by itself, restarting it on transient failures."""

    service: str
    settings: Settings
    policy: SupervisionSettings
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    #: restarts since the service was started (all of them, for `fink show`)
    restarts: int = 0
    #: called after a failure, before the wait: mends what the restart needs (a dead
    #: SparkContext or JVM, ``engine.session.recover_session``) and says what it did
    recover: Callable[[], str | None] | None = None

    def run(self, body: Callable[[], None]) -> None:
        """Call ``body`` until it returns; re-raise what restarting cannot mend."""
        in_a_row = 0
        while True:
            began = self.clock()
            try:
                body()
                return
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                if stop_requested():
                    # asked to stop: the JVM went down with the process group, and the
                    # checkpoint replays the interrupted batch at the next start
                    log.info("%s stopped on request (%s)", self.service, reason_of(error))
                    return
                if not is_transient(error):
                    raise
                if self.clock() - began >= self.policy.healthy_after_s:
                    in_a_row = 0
                if in_a_row >= self.policy.max_restarts:
                    raise GaveUp(
                        f"{self.service} failed {in_a_row + 1} times in a row and is not "
                        f"restarted again (supervision.max_restarts = "
                        f"{self.policy.max_restarts}); last failure: {reason_of(error)}"
                    ) from error
                wait = min(self.policy.backoff_s * 2**in_a_row, self.policy.max_backoff_s)
                in_a_row += 1
                self.restarts += 1
                self._record(reason_of(error), wait)
                if self.recover is not None:
                    how = self.recover()
                    if how:
                        log.warning("%s: %s", self.service, how)
                self.sleep(wait)

    def _record(self, reason: str, wait: float) -> None:
        log.error(
            "%s failed, restart %d from its checkpoint in %.0f s: %s",
            self.service,
            self.restarts,
            wait,
            reason,
        )
        path = metrics_path(self.settings, self.service)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "event": RESTART_EVENT,
            "service": self.service,
            "restarts": self.restarts,
            "reason": reason,
            "wait_s": wait,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with path.open("a") as handle:
            handle.write(json.dumps(line) + "\n")


def supervise(service: str, settings: Settings, body: Callable[[], None]) -> None:
    """Run ``body`` (a service's ``run``) under the settings' restart policy."""
    from fink_broker.engine.session import recover_session

    Supervisor(service, settings, settings.supervision, recover=recover_session).run(body)


def restarts_since(settings: Settings, service: str, since: str) -> int:
    """Restarts the metrics file records at or after ``since`` (an ISO time, UTC)."""
    start = _epoch(since)
    count = 0
    for record in restart_events(settings, service):
        if record.get("event") != RESTART_EVENT:
            continue
        moment = _epoch(str(record.get("time", "")))
        if start is None or (moment is not None and moment >= start):
            count += 1
    return count


def _epoch(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
