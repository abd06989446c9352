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
from fink_broker.infra import hbase_local, kafka_local, processes

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
