"""The supervisor's restart policy: what is restarted, how long it waits, when it gives up,
and what it writes for `fink show` and the dashboard."""

from __future__ import annotations

import json

import pytest

from fink_broker.config import Settings, SupervisionSettings
from fink_broker.errors import FinkError
from fink_broker.infra.hbase_client import HBaseUnavailable
from fink_broker.services.streaming import metrics_path
from fink_broker.services.supervision import GaveUp, Supervisor, is_transient, restarts_since


class Clock:
    """Time that moves only when the supervisor sleeps or a run lasts."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def supervisor(tmp_path, clock: Clock, **policy) -> Supervisor:
    settings = Settings()
    settings.paths.state_dir = str(tmp_path)
    return Supervisor(
        "raw2science",
        settings,
        SupervisionSettings(**policy),
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )


def failing(times: int, error: BaseException, clock: Clock | None = None, lasts: float = 0.0):
    calls = {"n": 0}

    def body() -> None:
        calls["n"] += 1
        if clock is not None:
            clock.now += lasts
        if calls["n"] <= times:
            raise error

    return body, calls


def test_a_failed_query_is_restarted_with_doubling_waits_and_each_restart_recorded(tmp_path):
    clock = Clock()
    sup = supervisor(tmp_path, clock, backoff_s=2.0, max_backoff_s=5.0)
    body, calls = failing(3, RuntimeError("query raw2science_ztf failed: task lost\nstack"))
    sup.run(body)
    assert calls["n"] == 4
    assert clock.waits == [2.0, 4.0, 5.0]
    lines = [json.loads(x) for x in metrics_path(sup.settings, "raw2science").open()]
    assert [x["restarts"] for x in lines] == [1, 2, 3]
    assert all(x["event"] == "restart" and x["service"] == "raw2science" for x in lines)
    assert lines[0]["reason"] == "RuntimeError: query raw2science_ztf failed: task lost"
    assert restarts_since(sup.settings, "raw2science", "2000-01-01T00:00:00+00:00") == 3
    assert restarts_since(sup.settings, "raw2science", "2999-01-01T00:00:00+00:00") == 0
    assert restarts_since(sup.settings, "archive", "2000-01-01T00:00:00+00:00") == 0


def test_operator_errors_and_bugs_are_not_restarted(tmp_path):
    clock = Clock()
    sup = supervisor(tmp_path, clock)
    for error in (FinkError("wrong password for user fink"), ValueError("no filter installed")):
        body, calls = failing(1, error)
        with pytest.raises(type(error)):
            sup.run(body)
        assert calls["n"] == 1
    assert clock.waits == [] and sup.restarts == 0
    assert is_transient(HBaseUnavailable("Thrift 127.0.0.1:9090 refused the connection"))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(KeyboardInterrupt())


def test_it_gives_up_after_max_restarts_in_a_row(tmp_path):
    clock = Clock()
    sup = supervisor(tmp_path, clock, max_restarts=2, backoff_s=1.0)
    body, calls = failing(10, HBaseUnavailable("HBase is down"))
    with pytest.raises(GaveUp, match=r"failed 3 times in a row.*HBase is down"):
        sup.run(body)
    assert calls["n"] == 3 and sup.restarts == 2


def test_a_run_that_stayed_healthy_starts_a_new_count(tmp_path):
    clock = Clock()
    sup = supervisor(tmp_path, clock, max_restarts=2, backoff_s=1.0, healthy_after_s=100.0)
    # each run lasts 150 s before it fails: never two failures "in a row"
    body, calls = failing(6, RuntimeError("Kafka broker gone"), clock, lasts=150.0)
    sup.run(body)
    assert calls["n"] == 7 and sup.restarts == 6
    assert clock.waits == [1.0] * 6


def test_a_failure_after_a_stop_request_ends_the_service_without_a_restart(tmp_path):
    """`fink stop` sends SIGTERM to the process group: the JVM shuts down too, and the
    query's error that follows is the stop, not a failure to restart after."""
    from fink_broker.services import streaming

    clock = Clock()
    sup = supervisor(tmp_path, clock)
    body, calls = failing(5, RuntimeError("RpcEnv already stopped"))
    streaming.STOP_REQUESTED.set()
    try:
        sup.run(body)
    finally:
        streaming.STOP_REQUESTED.clear()
    assert calls["n"] == 1 and clock.waits == [] and sup.restarts == 0
    assert not metrics_path(sup.settings, "raw2science").exists()


def test_each_restart_first_mends_the_session(tmp_path):
    clock = Clock()
    sup = supervisor(tmp_path, clock)
    mended: list[int] = []
    sup.recover = lambda: mended.append(1) or "the Spark JVM is gone: a new one is started"
    body, calls = failing(2, ConnectionRefusedError(111, "Connection refused"))
    sup.run(body)
    assert calls["n"] == 3 and len(mended) == 2
