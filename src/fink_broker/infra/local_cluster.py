"""``fink cluster start|stop|show``: a Spark, Kafka and HDFS cluster on one machine.

For tests, and for an operator who wants to try cluster mode before moving to real
clusters: a Spark standalone master and its workers (:mod:`spark_standalone`), replicated
KRaft brokers (:mod:`kafka_cluster`) and an HDFS NameNode and DataNode (:mod:`hdfs_local`),
every process recorded in a PID file (``fink show``, ``fink stop all``) and bound to
127.0.0.1 on a block of consecutive ports (``local_cluster.base_port``, chosen free at the
first start). Starting writes the config file so that ``spark.master``,
``kafka.bootstrap_servers`` and ``paths.root`` (``hdfs://127.0.0.1:<port>/fink``) point at
the cluster: the services then run there with the same commands as in local mode, their
code shipped to the executors (``engine.shipped``). HBase stays the standalone one of
``fink start hbase``, reached through its Thrift gateway as a remote one would be.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fink_broker.config import ConfigError, Settings, dump_toml, load_settings
from fink_broker.errors import FinkError
from fink_broker.infra import (
    hbase_local,
    hdfs_local,
    kafka_cluster,
    kafka_local,
    processes,
    spark_standalone,
)
from fink_broker.infra.hdfs_local import HdfsPorts
from fink_broker.infra.ports import free_port_block, port_in_use
from fink_broker.infra.python_env import packed_environment
from fink_broker.infra.spark_standalone import SparkPorts

log = logging.getLogger(__name__)

#: the data root's folder on the cluster's HDFS
ROOT_FOLDER = "/fink"
#: what the driver of a service needs to reach a cluster on loopback, and the executors' heap
DRIVER_ON_LOOPBACK = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}


class ClusterError(FinkError):
    """The local cluster is misconfigured, already runs, or did not start."""


@dataclass(frozen=True)
class ClusterPorts:
    """Every port of the local cluster, laid out from ``base_port`` in this order."""

    spark: SparkPorts
    #: (client, controller) of each broker
    kafka: list[tuple[int, int]]
    hdfs: HdfsPorts

    def all(self) -> list[int]:
        return [*self.spark.all(), *(p for pair in self.kafka for p in pair), *self.hdfs.all()]


def port_count(settings: Settings) -> int:
    """How many consecutive ports the cluster takes: 2 per worker and broker, 8 more."""
    lc = settings.local_cluster
    return 2 + 2 * lc.workers + 2 * lc.brokers + 6


def plan_ports(settings: Settings, base: int | None = None) -> ClusterPorts:
    """The cluster's ports from ``base`` (default ``local_cluster.base_port``).

    >>> ports = plan_ports(Settings(), 20000)
    >>> ports.spark.master, ports.spark.workers, ports.kafka[0], ports.hdfs.namenode
    (20000, ((20002, 20003), (20004, 20005)), (20006, 20007), 20012)
    """
    lc = settings.local_cluster
    start = lc.base_port if base is None else base
    numbers = iter(range(start, start + port_count(settings)))

    def pair() -> tuple[int, int]:
        return next(numbers), next(numbers)

    spark = SparkPorts(*pair(), workers=tuple(pair() for _ in range(lc.workers)))
    kafka = [pair() for _ in range(lc.brokers)]
    hdfs = HdfsPorts(*(next(numbers) for _ in range(6)))
    return ClusterPorts(spark=spark, kafka=kafka, hdfs=hdfs)


def check(settings: Settings) -> None:
    """Refuse sizes the cluster cannot honour, before anything starts."""
    lc = settings.local_cluster
    if lc.workers < 1 or lc.brokers < 1:
        raise ConfigError("local_cluster needs at least one worker and one broker")
    if not 1 <= lc.min_insync_replicas <= lc.replication_factor <= lc.brokers:
        raise ConfigError(
            "local_cluster: need 1 <= min_insync_replicas <= replication_factor <= brokers, "
            f"got {lc.min_insync_replicas}, {lc.replication_factor}, {lc.brokers}"
        )


def cluster_names(settings: Settings) -> list[str]:
    """The PID-file names of every process of the cluster."""
    lc = settings.local_cluster
    return [
        spark_standalone.MASTER,
        *(spark_standalone.worker_name(i) for i in range(1, lc.workers + 1)),
        *(kafka_cluster.broker_name(n) for n in range(1, lc.brokers + 1)),
        hdfs_local.NAMENODE,
        hdfs_local.DATANODE,
    ]


def endpoints(settings: Settings, ports: ClusterPorts | None = None) -> dict[str, str]:
    """The values a config pointed at the cluster holds: master, brokers, data root."""
    ports = ports or plan_ports(settings)
    return {
        "spark.master": spark_standalone.master_url(ports.spark),
        "kafka.bootstrap_servers": kafka_cluster.bootstrap_servers(ports.kafka),
        "paths.root": f"{hdfs_local.default_fs(ports.hdfs)}{ROOT_FOLDER}",
    }


def point_at_cluster(settings: Settings, ports: ClusterPorts) -> Settings:
    """``settings`` with the cluster's endpoints, ports and driver options set (in place)."""
    lc = settings.local_cluster
    lc.base_port = ports.spark.master
    where = endpoints(settings, ports)
    settings.spark.master = where["spark.master"]
    settings.kafka.bootstrap_servers = where["kafka.bootstrap_servers"]
    settings.paths.root = where["paths.root"]
    settings.spark.extra = {
        **settings.spark.extra,
        **DRIVER_ON_LOOPBACK,
        "spark.executor.memory": lc.executor_memory,
        # one DataNode: a file asks for as many replicas as there are
        "spark.hadoop.dfs.replication": "1",
    }
    return settings


def write_config(path: Path, settings: Settings, ports: ClusterPorts) -> Settings:
    """Point the config file at ``path`` at the cluster (created if missing); return it.

    The file is read without the environment, so no ``FINK_*`` variable of this shell is
    written into it, and rewritten whole, with every option and its doc line.
    """
    written = load_settings(path if path.exists() else None, env={})
    written.local_cluster = settings.local_cluster
    written.paths.state_dir = settings.paths.state_dir
    written.paths.jar_cache = settings.paths.jar_cache
    point_at_cluster(written, ports)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dump_toml(written))
    tmp.replace(path)
    return written


def _choose_ports(settings: Settings) -> ClusterPorts:
    count = port_count(settings)
    if settings.local_cluster.base_port == 0:
        return plan_ports(settings, free_port_block(count))
    ports = plan_ports(settings)
    taken = [p for p in ports.all() if port_in_use(p)]
    if taken:
        raise ClusterError(
            f"ports {taken} of the local cluster ({ports.spark.master}-"
            f"{ports.spark.master + count - 1}) are in use by processes Fink did not start; "
            "set local_cluster.base_port = 0 for a free range, or another base"
        )
    return ports


def start_cluster(
    settings: Settings,
    config: Path | None = None,
    *,
    pack: bool = True,
    timeout: float = 240.0,
    progress: Callable[[str], None] = log.info,
) -> Settings:
    """Start every process of the local cluster and return the settings pointed at it.

    The three systems start side by side (and the Python environment is packed meanwhile
    for the executors, unless ``pack`` is False); each waits for its own readiness: the
    workers registered with the master, every broker in the metadata, a live DataNode
    outside safe mode. If one fails, everything started is stopped. With ``config`` the
    file is written (:func:`write_config`) once the cluster answers.
    """
    check(settings)
    running = [n for n in cluster_names(settings) if processes.get(settings, n)]
    if running:
        raise ClusterError(f"the local cluster already runs ({', '.join(running)}); see fink show")
    ports = _choose_ports(settings)
    settings.local_cluster.base_port = ports.spark.master
    started = time.monotonic()
    steps: dict[str, Callable[[], Any]] = {
        "HDFS": lambda: hdfs_local.start_hdfs(settings, ports.hdfs, timeout=timeout),
        "Kafka": lambda: kafka_cluster.start_brokers(settings, ports.kafka, timeout=timeout),
        "Spark": lambda: spark_standalone.start_spark(settings, ports.spark, timeout=timeout),
    }
    if pack:
        steps["Python environment"] = lambda: packed_environment(settings, progress=progress)
    progress(
        f"starting HDFS, Kafka ({settings.local_cluster.brokers} brokers) and Spark "
        f"({settings.local_cluster.workers} workers) on 127.0.0.1:{ports.spark.master}-"
        f"{ports.spark.master + port_count(settings) - 1}"
    )
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        futures = {name: pool.submit(step) for name, step in steps.items()}
        errors = {}
        for name, future in futures.items():
            try:
                future.result()
            except Exception as err:  # report every part that failed, then stop them all
                errors[name] = err
    if errors:
        with contextlib.suppress(Exception):
            stop_cluster(settings, timeout=20.0)
        detail = "\n".join(f"{name}: {err}" for name, err in errors.items())
        raise ClusterError(f"the local cluster did not start:\n{detail}")
    progress(f"local cluster ready in {time.monotonic() - started:.0f} s")
    out = (
        write_config(config, settings, ports)
        if config is not None
        else point_at_cluster(settings, ports)
    )
    return out


def start_beside_hbase(settings: Settings, config: Path, *, heap: str = "768m") -> Settings:
    """Start the standalone HBase of ``fink start hbase`` next to the cluster, on four
    consecutive free ports (ZooKeeper, master, region server, Thrift), and write them into
    ``config`` so that the services' archive reaches it as a remote HBase."""
    zookeeper = free_port_block(4)
    settings.local_hbase.zookeeper_port = zookeeper
    settings.local_hbase.master_port = zookeeper + 1
    settings.local_hbase.regionserver_port = zookeeper + 2
    settings.local_hbase.heap = heap
    settings.hbase.thrift_port = zookeeper + 3
    config.write_text(dump_toml(settings))
    hbase_local.start_hbase(settings)
    return settings


def stop_cluster(settings: Settings, *, timeout: float = 60.0) -> list[str]:
    """Stop the cluster: Spark (executors end with their workers), Kafka, then HDFS."""
    lc = settings.local_cluster
    stopped = spark_standalone.stop_spark(settings, lc.workers, timeout=timeout)
    stopped += kafka_cluster.stop_brokers(settings, lc.brokers, timeout=timeout)
    return stopped + hdfs_local.stop_hdfs(settings, timeout=timeout)


def status(settings: Settings) -> dict[str, Any]:
    """What runs and how it is: PID records, workers the master counts, brokers in the
    metadata, HDFS's live DataNodes and safe mode (None where a part does not answer)."""
    ports = plan_ports(settings)
    records = {n: processes.get(settings, n) for n in cluster_names(settings)}
    master = spark_standalone.master_state(ports.spark)
    brokers: int | None = None
    bootstrap = kafka_cluster.bootstrap_servers(ports.kafka)
    if any(records[kafka_cluster.broker_name(n)] for n in range(1, len(ports.kafka) + 1)):
        with contextlib.suppress(Exception):
            brokers = len(kafka_local.probe_admin(bootstrap).list_topics(timeout=3.0).brokers)
    return {
        "records": records,
        "endpoints": endpoints(settings, ports),
        "spark_workers_alive": None if master is None else int(master.get("aliveworkers", 0)),
        "spark_apps": None if master is None else len(master.get("activeapps", [])),
        "kafka_brokers": brokers,
        "hdfs": hdfs_local.namenode_state(ports.hdfs),
    }


def local_bootstrap(settings: Settings) -> str:
    """The brokers Fink runs on this machine: the local cluster's while they run (PID
    files), else the single broker of ``fink start kafka``."""
    lc = settings.local_cluster
    names = [kafka_cluster.broker_name(n) for n in range(1, lc.brokers + 1)]
    if lc.base_port and any(processes.get(settings, name) for name in names):
        return kafka_cluster.bootstrap_servers(plan_ports(settings).kafka)
    return kafka_local.local_bootstrap(settings)
