"""A real single-node Kafka broker for the integration tier, started like `fink start kafka`.

The broker gets a temporary state dir and free loopback ports, so it never meets a broker the
developer runs on the default ports, and it uses the repo's jar cache (``jvm-cache/``, warmed
by CI with ``python -m fink_broker.infra.jars``), so no test downloads anything once warm.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fink_broker.config import Settings, load_settings
from fink_broker.infra import hbase_local, kafka_local, processes, registry_local

REPO = Path(__file__).resolve().parents[2]
JAR_CACHE = REPO / "jvm-cache"


@dataclass
class LocalKafka:
    """A running test broker: where to reach it and the settings that point at it."""

    bootstrap: str
    settings: Settings
    record: processes.ServiceRecord


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for binding to 0, distinct because all are held at once."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _state_overrides(state_dir: Path) -> dict[str, str]:
    """A test component's run state and data under ``state_dir``, the repo's jar cache."""
    return {
        "paths.state_dir": str(state_dir),
        "paths.root": str(state_dir / "lake"),
        "paths.jar_cache": str(JAR_CACHE),
    }


def kafka_settings(state_dir: Path) -> Settings:
    """Settings of a test broker: ``state_dir``, free ports, the shared jar cache.

    The environment is ignored (``env={}``) so a developer's FINK_* variables cannot point a
    test at their own broker; ``kafka.bootstrap_servers`` names the test broker, so services
    and the simulator built from these settings use it.
    """
    port, controller_port = free_ports(2)
    return load_settings(
        None,
        env={},
        overrides={
            **_state_overrides(state_dir),
            "local_kafka.port": port,
            "local_kafka.controller_port": controller_port,
            "local_kafka.partitions": 2,
            "kafka.bootstrap_servers": f"127.0.0.1:{port}",
        },
    )


@contextlib.contextmanager
def running_kafka(settings: Settings) -> Iterator[LocalKafka]:
    """Start a broker for ``settings`` and stop it (if still running) on exit."""
    record = kafka_local.start_kafka(settings)
    try:
        yield LocalKafka(kafka_local.local_bootstrap(settings), settings, record)
    finally:
        kafka_local.stop_kafka(settings)


@pytest.fixture
def fresh_kafka_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for a test's own broker (free ports, tmp state); stopped at teardown if started.

    For tests that stop or break the broker, which must not be the shared session one.
    """
    settings = kafka_settings(tmp_path / "state")
    yield settings
    kafka_local.stop_kafka(settings, timeout=10)


@pytest.fixture(scope="session")
def local_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """One broker for the whole test session (it starts in ~3 s; tests use their own topics)."""
    settings = kafka_settings(tmp_path_factory.mktemp("kafka-state"))
    with running_kafka(settings) as kafka:
        yield kafka


def hbase_settings(state_dir: Path) -> Settings:
    """Settings of a test HBase: ``state_dir`` (data under ``state_dir/lake/hbase``), free
    loopback ports for ZooKeeper, master, region server and Thrift, the shared jar cache."""
    zookeeper, master, regionserver, thrift = free_ports(4)
    return load_settings(
        None,
        env={},
        overrides={
            **_state_overrides(state_dir),
            "local_hbase.zookeeper_port": zookeeper,
            "local_hbase.master_port": master,
            "local_hbase.regionserver_port": regionserver,
            "hbase.thrift_port": thrift,
        },
    )


@pytest.fixture(scope="session")
def local_hbase(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One standalone HBase + Thrift gateway for the session (starts in 15-40 s); tests
    keep apart through their own ``hbase.namespace``."""
    settings = hbase_settings(tmp_path_factory.mktemp("hbase-state"))
    hbase_local.start_hbase(settings)
    try:
        yield settings
    finally:
        hbase_local.stop_hbase(settings, timeout=60)


def registry_settings(state_dir: Path) -> Settings:
    """Settings of a test schema registry: ``state_dir``, a free loopback port, the shared
    jar cache (its binary is built there by ``python -m fink_broker.infra.jars``)."""
    (port,) = free_ports(1)
    return load_settings(
        None, env={}, overrides={**_state_overrides(state_dir), "local_registry.port": port}
    )


@pytest.fixture
def fresh_registry_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for a test's own registry (free port, tmp state); stopped at teardown if
    started. For tests that stop it, which must not be the shared session one."""
    settings = registry_settings(tmp_path / "state")
    yield settings
    registry_local.stop_registry(settings)


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Confluent-API schema registry (in memory) for the session: its base URL.

    It starts in well under a second; tests keep apart through their own subjects.
    """
    settings = registry_settings(tmp_path_factory.mktemp("registry-state"))
    registry_local.start_registry(settings)
    try:
        yield registry_local.registry_url(settings)
    finally:
        registry_local.stop_registry(settings)


@pytest.fixture(scope="session")
def archived(spark, datasim, local_hbase, tmp_path_factory):
    """Science archives of both surveys (the real alerts and later alerts of each object:
    ``archived_sample``), archived into HBase by the streaming service. Shared by every
    API test: they read, none writes."""
    from fink_broker.services import archive
    from tests.integration.archived_sample import add_later_alerts
    from tests.spark.test_raw2science import make_lake, run_bounded

    settings, _ = make_lake(spark, datasim, tmp_path_factory.mktemp("archive"))
    settings.hbase = local_hbase.hbase
    settings.hbase.namespace = "itarchive"
    settings.archive.trigger = "availableNow"
    out = {}
    for survey in ("ztf", "rubin"):
        run_bounded(spark, settings, survey)
        science = add_later_alerts(spark, settings, survey)
        settings.stream2raw.survey = survey
        query = archive.start(settings, spark)
        query.awaitTermination()
        assert query.exception() is None
        out[survey] = science
    settings.stream2raw.survey = "ztf"
    return settings, out


@pytest.fixture(scope="session")
def api(archived):
    """A test client of the API over the archive of both surveys."""
    from fastapi.testclient import TestClient

    from fink_broker.api.app import create_app

    settings, _ = archived
    return TestClient(create_app(settings))


@pytest.fixture(scope="session")
def api_url(archived) -> Iterator[str]:
    """The API over HTTP (uvicorn, as `fink start api` serves it) on a free loopback port,
    for clients that open their own connections (pyvo)."""
    import threading
    import time

    import uvicorn

    from fink_broker.api.app import create_app

    settings, _ = archived
    (port,) = free_ports(1)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
