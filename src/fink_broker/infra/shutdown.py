"""Stopping what Fink started, in an order that loses nothing: the services first, then
the systems they write to (Spark's workers, then its master; HBase; Kafka; HDFS last).

Processes of one kind stop together (``processes.stop_together``): the brokers of a KRaft
quorum in parallel, where one after the other the last would wait for a quorum that is
gone. HBase stops through its clean shutdown (``hbase_local.stop_hbase``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from fink_broker.config import Settings
from fink_broker.infra import hbase_local, hdfs_local, processes, spark_standalone

#: stop ranks of the systems (services, the Python processes, come first: rank 0)
SPARK_WORKERS, SPARK_MASTER, HBASE, KAFKA, DATANODE, NAMENODE = range(1, 7)


def stop_rank(name: str) -> int:
    """When a process stops among others: 0 for services, then by the systems they use.

    >>> [stop_rank(n) for n in ("stream2raw", "spark_worker_2", "kafka", "kafka_3")]
    [0, 1, 4, 4]
    """
    if name.startswith("spark_worker_"):
        return SPARK_WORKERS
    if name == spark_standalone.MASTER:
        return SPARK_MASTER
    if name in (hbase_local.MASTER, hbase_local.THRIFT):
        return HBASE
    if name == "kafka" or (name.startswith("kafka_") and name[6:].isdigit()):
        return KAFKA
    if name == hdfs_local.DATANODE:
        return DATANODE
    if name == hdfs_local.NAMENODE:
        return NAMENODE
    return 0


def stop_in_order(settings: Settings, names: Sequence[str], *, timeout: float) -> dict[str, bool]:
    """Stop ``names`` rank by rank; name -> whether it was running."""
    stopped: dict[str, bool] = {}
    ordered = sorted(dict.fromkeys(names), key=lambda n: (stop_rank(n), n))
    for rank, group in groupby(ordered, key=stop_rank):
        members = list(group)
        if rank == HBASE:
            ran = hbase_local.stop_hbase(settings, timeout=timeout)
            stopped.update(dict.fromkeys(members, ran))
            continue
        ran_names = set(processes.stop_together(settings, members, timeout=timeout))
        stopped.update({n: n in ran_names for n in members})
    return stopped
