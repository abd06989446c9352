"""``fink cluster start|stop|show|pack``: the local cluster (``infra.local_cluster``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fink_broker.cli.parser import DEFAULT_CONFIG
from fink_broker.config import Settings


def cmd_cluster(args: argparse.Namespace, settings: Settings, config: str | None) -> int:
    """Run one action on the local cluster; the config file is written by ``start``."""
    from fink_broker.infra import local_cluster

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.action == "pack":
        from fink_broker.infra.python_env import packed_environment

        print(packed_environment(settings, progress=say))
        return 0
    if args.action == "start":
        path = Path(config or DEFAULT_CONFIG)
        written = local_cluster.start_cluster(settings, path, progress=say)
        print(f"wrote {path}:")
        for key, value in local_cluster.endpoints(written).items():
            print(f"  {key} = {value}")
        print("next: fink start hbase, then the services as in local mode; fink cluster stop")
        return 0
    if args.action == "stop":
        stopped = local_cluster.stop_cluster(settings, timeout=args.timeout)
        print(f"stopped {', '.join(stopped)}" if stopped else "the local cluster is not running")
        return 0
    return _show(local_cluster.status(settings))


def _show(state: dict) -> int:
    records = state["records"]
    if not any(records.values()):
        print("the local cluster is not running (fink cluster start)")
        return 1
    for key, value in state["endpoints"].items():
        print(f"{key:<24} {value}")
    health = {
        "spark workers alive": state["spark_workers_alive"],
        "spark applications": state["spark_apps"],
        "kafka brokers": state["kafka_brokers"],
        "hdfs": state["hdfs"],
    }
    for key, value in health.items():
        print(f"{key:<24} {'no answer' if value is None else value}")
    for name, record in records.items():
        where = ", ".join(f"127.0.0.1:{p}" for p in record.ports) if record else ""
        print(f"  {name:<16} {record.pid if record else 'not running':>11}  {where}")
    return 0
