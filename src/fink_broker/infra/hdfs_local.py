"""An HDFS of one NameNode and one DataNode on 127.0.0.1, for the local cluster.

``fink cluster start`` runs both from the Maven-resolved Hadoop jars
(:func:`fink_broker.infra.jars.hdfs_classpath`, the Hadoop version of pyspark's own client),
so the services write their archives and checkpoints through the same ``hdfs://`` client
they would use on a production cluster. Configuration (``core-site.xml``, ``hdfs-site.xml``),
the NameNode's metadata, the DataNode's blocks and the logs live under
``<state_dir>/cluster/hdfs/``; the file system survives ``fink cluster stop``.

One DataNode holds one replica of each block: the clients' replication is 1 (the config the
cluster writes sets ``spark.hadoop.dfs.replication``), so no write waits for a second
DataNode that does not exist. Safe mode ends as soon as the DataNode has reported.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fink_broker.config import Settings
from fink_broker.errors import FinkError
from fink_broker.infra import processes
from fink_broker.infra.jars import hadoop_daemon_command, hdfs_classpath, hdfs_log4j_conf
from fink_broker.infra.processes import log_tail
from fink_broker.infra.site_xml import site_xml

log = logging.getLogger(__name__)

NAMENODE = "hdfs_namenode"
DATANODE = "hdfs_datanode"
#: the folders Hadoop's HTTP servers look for on the class path; the jars ship none
WEBAPPS = ("hdfs", "datanode", "static", "secondary")
#: the NameNode's JMX beans read for readiness
FS_STATE = "Hadoop:service=NameNode,name=FSNamesystemState"
NAMENODE_INFO = "Hadoop:service=NameNode,name=NameNodeInfo"


class HdfsStartError(FinkError):
    """The local HDFS could not be formatted, started, or did not become ready."""


@dataclass(frozen=True)
class HdfsPorts:
    """The loopback ports of the NameNode and the DataNode."""

    namenode: int
    namenode_http: int
    datanode: int
    datanode_ipc: int
    datanode_http: int
    datanode_proxy: int

    def all(self) -> list[int]:
        return [
            self.namenode,
            self.namenode_http,
            self.datanode,
            self.datanode_ipc,
            self.datanode_http,
            self.datanode_proxy,
        ]


def hdfs_dir(settings: Settings) -> Path:
    """``<state_dir>/cluster/hdfs``: conf/, logs/, name/ (metadata) and data/ (blocks)."""
    return Path(settings.paths.state_dir).expanduser().resolve() / "cluster" / "hdfs"


def default_fs(ports: HdfsPorts) -> str:
    """The file system's URI, ``hdfs://127.0.0.1:<namenode port>``."""
    return f"hdfs://127.0.0.1:{ports.namenode}"


def core_site(settings: Settings, ports: HdfsPorts) -> dict[str, str]:
    """``core-site.xml``: the default file system and Hadoop's scratch folder."""
    return {
        "fs.defaultFS": default_fs(ports),
        "hadoop.tmp.dir": str(hdfs_dir(settings) / "tmp"),
    }


def hdfs_site(settings: Settings, ports: HdfsPorts) -> dict[str, str]:
    """``hdfs-site.xml``: loopback addresses, local folders, one replica, a quick safe mode."""
    home = hdfs_dir(settings)
    return {
        "dfs.namenode.name.dir": str(home / "name"),
        "dfs.datanode.data.dir": str(home / "data"),
        "dfs.namenode.rpc-address": f"127.0.0.1:{ports.namenode}",
        "dfs.namenode.http-address": f"127.0.0.1:{ports.namenode_http}",
        "dfs.namenode.secondary.http-address": "127.0.0.1:0",
        "dfs.datanode.address": f"127.0.0.1:{ports.datanode}",
        "dfs.datanode.ipc.address": f"127.0.0.1:{ports.datanode_ipc}",
        "dfs.datanode.http.address": f"127.0.0.1:{ports.datanode_http}",
        "dfs.datanode.http.internal-proxy.port": str(ports.datanode_proxy),
        "dfs.datanode.hostname": "127.0.0.1",
        "dfs.replication": "1",
        # one user on one machine: the services, the tests and the operator share the root
        "dfs.permissions.enabled": "false",
        # leave safe mode once the DataNode reported, not 30 s later
        "dfs.namenode.safemode.extension": "0",
        "dfs.heartbeat.interval": "1",
    }


def write_conf(settings: Settings, ports: HdfsPorts) -> Path:
    """Write the two site files (and empty web apps) into ``conf/``; return that folder."""
    conf = hdfs_dir(settings) / "conf"
    for app in WEBAPPS:
        (conf / "webapps" / app).mkdir(parents=True, exist_ok=True)
    (conf / "core-site.xml").write_text(site_xml(core_site(settings, ports)))
    (conf / "hdfs-site.xml").write_text(site_xml(hdfs_site(settings, ports)))
    return conf


def _java_command(settings: Settings, name: str, main: list[str]) -> list[str]:
    home = hdfs_dir(settings)
    return hadoop_daemon_command(
        conf_dir=home / "conf",
        jars=hdfs_classpath(settings),
        heap=settings.local_cluster.hdfs_heap,
        options=[
            "-XX:+UseSerialGC",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dhadoop.log.dir={home / 'logs'}",
        ],
        log4j=hdfs_log4j_conf(),
        log_property="fink.hdfs.log",
        log_file=home / "logs" / f"{name}.log",
        main=main,
    )


def _format(settings: Settings) -> None:
    """Format the NameNode's metadata folder once (a restart keeps the file system)."""
    if (hdfs_dir(settings) / "name" / "current" / "VERSION").is_file():
        return
    argv = _java_command(
        settings,
        "hdfs-format",
        ["org.apache.hadoop.hdfs.server.namenode.NameNode", "-format", "-nonInteractive"],
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise HdfsStartError(f"formatting the NameNode failed (exit {result.returncode}):\n{tail}")
    log.info("formatted the NameNode in %s", hdfs_dir(settings) / "name")


def namenode_state(ports: HdfsPorts, timeout: float = 2.0) -> dict[str, object] | None:
    """Live DataNodes and safe mode, from the NameNode's JMX servlet; None if it is down."""
    beans: dict[str, dict[str, object]] = {}
    for query in (FS_STATE, NAMENODE_INFO):
        url = f"http://127.0.0.1:{ports.namenode_http}/jmx?qry={query}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                found = json.loads(answer.read()).get("beans", [])
        except (OSError, ValueError, urllib.error.URLError):
            return None
        if not found:
            return None
        beans[query] = found[0]
    return {
        "live_datanodes": int(beans[FS_STATE].get("NumLiveDataNodes", 0)),
        "safe_mode": str(beans[NAMENODE_INFO].get("Safemode", "")),
    }


def _wait_ready(
    records: list[processes.ServiceRecord], ports: HdfsPorts, deadline: float
) -> dict[str, object]:
    while True:
        for record in records:
            if not processes.is_running(record):
                raise HdfsStartError(f"{record.name} exited during startup")
        state = namenode_state(ports)
        if state is not None and state["live_datanodes"] and not state["safe_mode"]:
            return state
        if time.monotonic() >= deadline:
            raise HdfsStartError(
                f"HDFS was not ready on {default_fs(ports)} in time (last state: {state})"
            )
        time.sleep(0.5)


def start_hdfs(
    settings: Settings, ports: HdfsPorts, *, timeout: float = 180.0
) -> list[processes.ServiceRecord]:
    """Format (once) and start the NameNode and the DataNode; return once a DataNode is live
    and safe mode is off. On failure both are stopped and the error carries their logs."""
    home = hdfs_dir(settings)
    for folder in ("logs", "name", "data", "tmp"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    write_conf(settings, ports)
    _format(settings)
    started = time.monotonic()
    daemons = {
        NAMENODE: (
            "org.apache.hadoop.hdfs.server.namenode.NameNode",
            [ports.namenode, ports.namenode_http],
        ),
        DATANODE: (
            "org.apache.hadoop.hdfs.server.datanode.DataNode",
            [ports.datanode, ports.datanode_ipc, ports.datanode_http, ports.datanode_proxy],
        ),
    }
    records: list[processes.ServiceRecord] = []
    try:
        for name, (main, used) in daemons.items():
            records.append(
                processes.start_background(
                    name,
                    _java_command(settings, name, [main]),
                    settings=settings,
                    log_path=home / "logs" / f"{name}-console.log",
                    ports=used,
                    extra={"fs": default_fs(ports), "log": str(home / "logs" / f"{name}.log")},
                )
            )
        _wait_ready(records, ports, started + timeout)
    except (HdfsStartError, processes.AlreadyRunningError) as err:
        stop_hdfs(settings, timeout=10.0)
        tails = "\n".join(log_tail(home / "logs" / f"{name}.log") for name in daemons)
        raise HdfsStartError(f"{err}\n{tails}") from None
    log.info("HDFS ready on %s in %.1f s", default_fs(ports), time.monotonic() - started)
    return records


def stop_hdfs(settings: Settings, *, timeout: float = 30.0) -> list[str]:
    """Stop the DataNode, then the NameNode; return the names of those that ran."""
    stopped = processes.stop_together(settings, [DATANODE], timeout=timeout)
    return stopped + processes.stop_together(settings, [NAMENODE], timeout=timeout)
