"""A replicated Apache Kafka cluster on 127.0.0.1: several KRaft brokers, each also a voter.

The local cluster of ``fink cluster start`` runs ``local_cluster.brokers`` brokers (3 by
default) from the same Maven-resolved jars as the single broker of ``fink start kafka``
(:mod:`fink_broker.infra.kafka_local`), with the same loopback listeners and large messages.
Every topic, the internal ones included, gets ``replication_factor`` replicas, and an
``acks=all`` write needs ``min_insync_replicas`` of them: with 3 and 2, any one broker may
die, and a record a producer saw acknowledged is on a live broker. The controller quorum is
the brokers themselves (a majority must live). Each broker keeps its configuration, data and
logs under ``<state_dir>/cluster/kafka_<n>/``; topics and offsets survive a restart.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fink_broker.config import Settings
from fink_broker.infra import processes
from fink_broker.infra.kafka_local import (
    KafkaStartError,
    broker_argv,
    broker_java,
    format_storage,
    kraft_properties,
    new_cluster_id,
    properties_text,
    wait_ready,
)
from fink_broker.infra.processes import log_tail

log = logging.getLogger(__name__)


def broker_name(node: int) -> str:
    """The PID-file name of broker ``node`` (node ids from 1)."""
    return f"kafka_{node}"


def broker_dir(settings: Settings, node: int) -> Path:
    """``<state_dir>/cluster/kafka_<node>``: server.properties, data/ and logs/."""
    root = Path(settings.paths.state_dir).expanduser().resolve() / "cluster"
    return root / broker_name(node)


def bootstrap_servers(ports: list[tuple[int, int]]) -> str:
    """The clients' bootstrap list: every broker, so that any one of them may be down.

    >>> bootstrap_servers([(9092, 9093), (9094, 9095)])
    '127.0.0.1:9092,127.0.0.1:9094'
    """
    return ",".join(f"127.0.0.1:{client}" for client, _ in ports)


def broker_properties(settings: Settings, node: int, ports: list[tuple[int, int]]) -> str:
    """``server.properties`` of broker ``node``, ``ports`` being (client, controller) per node.

    >>> text = broker_properties(Settings(), 2, [(9092, 9093), (9094, 9095), (9096, 9097)])
    >>> props = dict(line.split("=", 1) for line in text.splitlines()[1:])
    >>> props["controller.quorum.voters"]
    '1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097'
    >>> props["listeners"], props["min.insync.replicas"], props["default.replication.factor"]
    ('PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095', '2', '3')
    """
    lc = settings.local_cluster
    client, controller = ports[node - 1]
    voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports, start=1))
    props = kraft_properties(
        node_id=node,
        listeners=[f"PLAINTEXT://127.0.0.1:{client}"],
        protocols=["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"],
        controller_port=controller,
        voters=voters,
        data_dir=broker_dir(settings, node) / "data",
        partitions=lc.partitions,
        replication=lc.replication_factor,
        min_insync=lc.min_insync_replicas,
    )
    return properties_text(props)


def _cluster_id(settings: Settings) -> str:
    """The id every broker's storage is formatted with, kept beside them."""
    path = broker_dir(settings, 1).parent / "kafka-cluster.id"
    if path.is_file():
        return path.read_text().strip()
    cluster_id = new_cluster_id()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cluster_id + "\n")
    return cluster_id


def start_broker(
    settings: Settings, node: int, ports: list[tuple[int, int]]
) -> processes.ServiceRecord:
    """Write the configuration of broker ``node``, format its storage once, start it.

    Returns once spawned: :func:`start_brokers` waits for the whole cluster, and a test
    restarting one broker waits with :func:`fink_broker.infra.kafka_local.wait_ready`.
    """
    home = broker_dir(settings, node)
    data_dir, logs_dir = home / "data", home / "logs"
    for folder in (data_dir, logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    props = home / "server.properties"
    props.write_text(broker_properties(settings, node, ports))
    java, classpath = broker_java(settings)
    cluster_id = format_storage(java, classpath, props, data_dir, _cluster_id(settings))
    argv = broker_argv(java, classpath, settings.local_cluster.kafka_heap, logs_dir, props)
    client, controller = ports[node - 1]
    # no client secret is needed by a broker: keep the password variables out of its env
    secrets = {settings.kafka.sasl_password_env, settings.output_kafka.sasl_password_env}
    return processes.start_background(
        broker_name(node),
        argv,
        settings=settings,
        env={k: v for k, v in os.environ.items() if k not in secrets},
        log_path=logs_dir / "console.log",
        ports=[client, controller],
        extra={
            "bootstrap": f"127.0.0.1:{client}",
            "cluster_id": cluster_id,
            "server_log": str(logs_dir / "server.log"),
        },
    )


def start_brokers(
    settings: Settings, ports: list[tuple[int, int]], *, timeout: float = 120.0
) -> list[processes.ServiceRecord]:
    """Start every broker at once; return when all are in the cluster's metadata."""
    started = time.monotonic()
    cluster_id = _cluster_id(settings)  # made once, before the brokers read it side by side
    records: list[processes.ServiceRecord] = []
    try:
        # side by side: formatting a storage is a JVM run of its own (3-15 s)
        with ThreadPoolExecutor(max_workers=len(ports)) as pool:
            futures = [
                pool.submit(start_broker, settings, node, ports)
                for node in range(1, len(ports) + 1)
            ]
        records = [future.result() for future in futures]  # stopped by name if one failed
        wait_ready(records, bootstrap_servers(ports), cluster_id, timeout)
    except (KafkaStartError, processes.AlreadyRunningError) as err:
        stop_brokers(settings, len(ports), timeout=10.0)
        logs = "\n".join(
            log_tail(broker_dir(settings, n) / "logs" / "server.log", 15)
            for n in range(1, len(ports) + 1)
        )
        raise KafkaStartError(f"{err}\n{logs}") from None
    log.info(
        "%d Kafka brokers ready on %s in %.1f s",
        len(records),
        bootstrap_servers(ports),
        time.monotonic() - started,
    )
    return records


def stop_brokers(settings: Settings, brokers: int, *, timeout: float = 30.0) -> list[str]:
    """Stop every broker at once (one after the other, the last would wait for a quorum)."""
    names = [broker_name(n) for n in range(1, brokers + 1)]
    return processes.stop_together(settings, names, timeout=timeout)
