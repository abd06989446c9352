"""``fink stop all`` ends every process the cluster started, by PID file (last cluster test:
the file names sort last, and pytest runs the cluster tier in file order)."""

from __future__ import annotations

import psutil
import pytest

from fink_broker.infra import local_cluster, processes
from fink_broker.infra.ports import port_in_use

pytestmark = pytest.mark.cluster


def test_stop_all_stops_everything_the_cluster_started(cluster):
    settings = cluster.fresh_settings()
    records = processes.running(settings)
    names = {r.name for r in records}
    assert set(local_cluster.cluster_names(settings)) <= names, names
    assert {"hbase", "hbase_thrift"} <= names
    family = []
    for record in records:
        proc = psutil.Process(record.pid)
        family += [proc, *proc.children(recursive=True)]
    ports = sorted({p for r in records for p in r.ports})

    shown = cluster.fink("cluster", "show")
    assert shown.returncode == 0 and "spark workers alive      2" in shown.stdout, shown.stdout
    stopped = cluster.fink("stop", "all", timeout=300)
    assert stopped.returncode == 0, stopped.stdout
    for name in names:
        assert f"stopped {name}" in stopped.stdout, (name, stopped.stdout)

    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, [(p.pid, p.cmdline()[:3]) for p in alive]
    assert processes.running(settings) == []
    assert [p for p in ports if port_in_use(p)] == []
    assert cluster.fink("cluster", "show").returncode == 1
