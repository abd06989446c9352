"""One local cluster for the whole test run, started as ``fink cluster start`` starts it.

A Spark standalone master and two workers, three KRaft brokers (replication 3,
``min.insync.replicas`` 2), an HDFS NameNode and DataNode, and the standalone HBase of
``fink start hbase``, all on free loopback ports, their state in a temporary folder and
their PID files in its run folder. The config file the cluster writes is what the tests'
``fink`` commands and service drivers read. Drivers of cluster runs are processes of their
own: this test process may hold the shared ``local[2]`` session, and a process has one
SparkContext.

The tier has one wall-time budget (``TIER_BUDGET_S``), enforced by pytest-timeout: each test
may take what the tests before it left, so a hung cluster fails the tier, stops the cluster
in the fixture's teardown and lets CI go on, instead of stalling it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fink_broker.config import Settings, load_settings
from fink_broker.infra import local_cluster, processes
from fink_broker.infra.local_cluster import ClusterPorts
from fink_broker.infra.shutdown import stop_in_order

REPO = Path(__file__).resolve().parents[2]
#: wall seconds for the whole tier, cluster start (and packing the environment) and stop
#: included: it took 873 s on 2 cores shared with other people's Spark runs (load average
#: 13-15), so this bounds a hang without failing a slow machine
TIER_BUDGET_S = 1200.0
#: what a test gets at the least, even when the tests before it used the budget
MIN_TEST_S = 60.0
_tier_started: list[float] = []


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Give each cluster test (setup, call and teardown) the rest of the tier's budget as its
    pytest-timeout, before pytest-timeout reads it.

    Only for the items of this folder: a conftest's runtest hooks are not always kept to
    its folder (a module that imports this one registers them for the whole run), and the
    Spark and integration tiers that run after this one have no such budget.
    """
    if Path(__file__).parent not in Path(str(item.path)).parents:
        yield
        return
    if not _tier_started:
        _tier_started.append(time.monotonic())
    left = TIER_BUDGET_S - (time.monotonic() - _tier_started[0])
    item.add_marker(pytest.mark.timeout(max(left, MIN_TEST_S), method="signal"))
    yield


@dataclass
class LocalCluster:
    """The running cluster: its config file, the settings read from it, its ports."""

    config: Path
    settings: Settings
    ports: ClusterPorts

    def fresh_settings(self) -> Settings:
        """The settings of the config file, unchanged by an earlier test."""
        return load_settings(self.config, env={})

    def fink(self, *args: str, timeout: float = 600, log: Path | None = None):
        """Run ``fink ARGS -c <config>`` (the CLI, in a subprocess) and return its result."""
        argv = [sys.executable, "-m", "fink_broker.cli.main", *args, "-c", str(self.config)]
        out = open(log, "w") if log else None  # noqa: SIM115 (closed below)
        try:
            return subprocess.run(
                argv,
                cwd=self.config.parent,
                env=clean_env(),
                stdout=out or subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        finally:
            if out:
                out.close()


def clean_env() -> dict[str, str]:
    """This environment without FINK_* variables: only the config file decides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FINK_")}


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory, datasim: Path) -> Iterator[LocalCluster]:
    """The local cluster, with HBase, for this tier (~5 GB of JVMs: not for the tiers that
    come after it); stopped by PID file at the end."""
    home = tmp_path_factory.mktemp("cluster")
    settings = load_settings(
        None,
        env={},
        overrides={
            "paths.state_dir": str(home / "state"),
            "paths.jar_cache": str(REPO / "jvm-cache"),
            "spark.driver_memory": "1g",
        },
    )
    config = home / "fink.toml"
    written = local_cluster.start_cluster(settings, config)
    try:
        local_cluster.start_beside_hbase(written, config)
        yield LocalCluster(config, written, local_cluster.plan_ports(written))
    finally:
        with contextlib.suppress(Exception):
            names = [r.name for r in processes.running(written)]
            stop_in_order(written, names, timeout=30.0)
