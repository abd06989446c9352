"""A standalone Apache HBase and its Thrift gateway on 127.0.0.1, for the laptop case.

Two JVMs run from the Maven-resolved jars (:func:`fink_broker.infra.jars.hbase_classpath`):

- ``hbase``: ``HMaster start`` in standalone mode, i.e. the master, one region server and
  HBase's own ZooKeeper in one process, storing tables under ``<paths.root>/hbase/`` on the
  local file system;
- ``hbase_thrift``: the Thrift (v1) gateway on ``hbase.thrift_port``, which Python reaches
  through happybase (Fink's services, the API and the tests).

Each is recorded in its own PID file, so ``fink show`` lists both and ``fink stop hbase``
stops both: the gateway first, then the master through ``HMaster stop`` (a clean cluster
shutdown that flushes the memstores), and only if that does not end it in time, SIGTERM
then SIGKILL by PID file. Configuration (``hbase-site.xml``) and logs live under
``<state_dir>/hbase/``. With the local cluster of ``fink cluster start`` (an ``hdfs://``
data root) the same standalone HBase runs, its tables on local disk, reached through its
Thrift gateway as a remote one would be. On a production cluster none of this runs:
``hbase.thrift_host`` names the cluster's gateway.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from pathlib import Path

from fink_broker.config import Settings
from fink_broker.errors import FinkError
from fink_broker.infra import processes
from fink_broker.infra.hbase_client import hbase_answers
from fink_broker.infra.jars import hadoop_daemon_command, hbase_classpath, hbase_log4j_conf
from fink_broker.infra.ports import port_in_use
from fink_broker.infra.processes import log_tail
from fink_broker.infra.site_xml import site_xml as hadoop_site_xml
from fink_broker.lake import is_local

log = logging.getLogger(__name__)

MASTER = "hbase"
THRIFT = "hbase_thrift"
#: seconds to wait for a first table listing through the gateway (measured: 15-35 s)
READY_TIMEOUT_S = 180.0
#: JVM options HBase 2.6's own launcher adds on Java 17: its shaded Netty and its off-heap
#: buffers reach into JDK internals that Java 17 closes by default
JAVA17_OPTIONS = (
    "-Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true",
    "--add-modules=jdk.unsupported",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
)


class HBaseStartError(FinkError):
    """The local HBase could not be prepared, started, or did not become ready."""


def hbase_dir(settings: Settings) -> Path:
    """``<state_dir>/hbase``: conf/ (hbase-site.xml), logs/ and tmp/ of the local HBase."""
    return Path(settings.paths.state_dir).expanduser().resolve() / "hbase"


def data_dir(settings: Settings) -> Path:
    """Where the tables (data/) and ZooKeeper's state (zookeeper/) live: ``<paths.root>/hbase``
    for a local data root, ``<state_dir>/hbase/store`` when the root is a Hadoop URI (the
    local cluster's ``hdfs://``), since a standalone HBase keeps its files on local disk."""
    root = settings.paths.root
    if not is_local(root):
        return hbase_dir(settings) / "store"
    return Path(root.removeprefix("file://")).expanduser().resolve() / "hbase"


def site_properties(settings: Settings) -> dict[str, str]:
    """hbase-site.xml of the standalone HBase: loopback only, fixed ports, local storage."""
    lh = settings.local_hbase
    data = data_dir(settings)
    return {
        "hbase.cluster.distributed": "false",
        "hbase.rootdir": (data / "data").as_uri(),
        "hbase.tmp.dir": str(hbase_dir(settings) / "tmp"),
        "hbase.zookeeper.quorum": "127.0.0.1",
        "hbase.zookeeper.property.clientPort": str(lh.zookeeper_port),
        "hbase.zookeeper.property.dataDir": str(data / "zookeeper"),
        "hbase.master.port": str(lh.master_port),
        "hbase.master.ipc.address": "127.0.0.1",
        "hbase.regionserver.port": str(lh.regionserver_port),
        "hbase.regionserver.ipc.address": "127.0.0.1",
        # no web UIs: nothing to browse on a laptop, and fewer ports to collide
        "hbase.master.info.port": "-1",
        "hbase.regionserver.info.port": "-1",
        # the local file system has no hflush/hsync: HBase must accept it for its WAL
        "hbase.unsafe.stream.capability.enforce": "false",
        # a master that misses its ZooKeeper session aborts: on a loaded laptop (CI and five
        # test runs on 2 cores) a JVM stalled 7 s lost its 10 s session and the whole HBase
        # with it. Two minutes, which the embedded ZooKeeper must allow (maxSessionTimeout).
        "zookeeper.session.timeout": "120000",
        "hbase.zookeeper.property.tickTime": "6000",
        "hbase.zookeeper.property.maxSessionTimeout": "120000",
    }


def site_xml(settings: Settings) -> str:
    """The text of ``hbase-site.xml`` for ``settings``."""
    return hadoop_site_xml(site_properties(settings))


def _java_command(settings: Settings, name: str, heap: str, main: list[str]) -> list[str]:
    home = hbase_dir(settings)
    return hadoop_daemon_command(
        conf_dir=home / "conf",
        jars=hbase_classpath(settings),
        heap=heap,
        options=["-XX:+UseG1GC", *JAVA17_OPTIONS],
        log4j=hbase_log4j_conf(),
        log_property="fink.hbase.log",
        log_file=home / "logs" / f"{name}.log",
        main=main,
    )


def thrift_arguments(settings: Settings) -> list[str]:
    """ThriftServer options: loopback, the configured port, transport and protocol."""
    hb = settings.hbase
    args = ["-b", "127.0.0.1", "-p", str(hb.thrift_port), "--infoport", "-1"]
    if hb.transport == "framed":
        args.append("-f")
    if hb.protocol == "compact":
        args.append("-c")
    return [*args, "start"]


def _check_ports(settings: Settings) -> None:
    lh = settings.local_hbase
    named = {
        "local_hbase.zookeeper_port": lh.zookeeper_port,
        "local_hbase.master_port": lh.master_port,
        "local_hbase.regionserver_port": lh.regionserver_port,
        "hbase.thrift_port": settings.hbase.thrift_port,
    }
    if len(set(named.values())) < len(named):
        raise HBaseStartError(f"the local HBase ports must differ: {named}")
    for key, port in named.items():
        if port_in_use(port):
            env = "FINK_" + key.replace(".", "_").upper()
            raise HBaseStartError(
                f"127.0.0.1:{port} is already in use by a process Fink did not start; "
                f"choose another {key} (env {env})"
            )


def _wait_ready(settings: Settings, records: list[processes.ServiceRecord], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for record in records:
            if not processes.is_running(record):
                raise HBaseStartError(f"{record.name} exited during startup")
        if hbase_answers(settings, timeout_s=5.0):
            return
        if time.monotonic() >= deadline:
            raise HBaseStartError(
                f"HBase did not answer through 127.0.0.1:{settings.hbase.thrift_port} "
                f"in {timeout:.0f} s"
            )
        time.sleep(0.5)


def start_hbase(
    settings: Settings, *, foreground: bool = False, timeout: float = READY_TIMEOUT_S
) -> list[processes.ServiceRecord]:
    """Start the standalone HBase and its Thrift gateway; return once a table listing works.

    Tables survive restarts (they live in :func:`data_dir`). With ``foreground``
    the two JVMs run as children of this process, which waits for them and stops both on
    SIGTERM or Ctrl-C. Raises :class:`processes.AlreadyRunningError` if Fink's HBase runs,
    and :class:`HBaseStartError` if a port is taken or HBase does not
    answer within ``timeout`` seconds (the error carries the end of its logs; both JVMs are
    stopped).
    """
    for name in (MASTER, THRIFT):
        existing = processes.get(settings, name)
        if existing is not None:
            raise processes.AlreadyRunningError(existing)
    _check_ports(settings)
    home = hbase_dir(settings)
    for folder in (home / "conf", home / "logs", home / "tmp", data_dir(settings)):
        folder.mkdir(parents=True, exist_ok=True)
    (home / "conf" / "hbase-site.xml").write_text(site_xml(settings))
    lh = settings.local_hbase
    master_argv = _java_command(
        settings, MASTER, lh.heap, ["org.apache.hadoop.hbase.master.HMaster", "start"]
    )
    thrift_argv = _java_command(
        settings,
        THRIFT,
        lh.thrift_heap,
        ["org.apache.hadoop.hbase.thrift.ThriftServer", *thrift_arguments(settings)],
    )
    if foreground:
        _run_foreground(settings, master_argv, thrift_argv)
    started = time.monotonic()
    logs = home / "logs"
    master = processes.start_background(
        MASTER,
        master_argv,
        settings=settings,
        log_path=logs / "hbase-console.log",
        ports=[lh.zookeeper_port, lh.master_port, lh.regionserver_port],
        extra={"data": str(data_dir(settings)), "log": str(logs / f"{MASTER}.log")},
    )
    records = [master]
    try:
        records.append(
            processes.start_background(
                THRIFT,
                thrift_argv,
                settings=settings,
                log_path=logs / "hbase_thrift-console.log",
                ports=[settings.hbase.thrift_port],
                extra={"log": str(logs / f"{THRIFT}.log")},
            )
        )
        _wait_ready(settings, records, timeout)
    except (HBaseStartError, processes.AlreadyRunningError) as err:
        with contextlib.suppress(Exception):
            stop_hbase(settings, timeout=20.0)
        tails = "\n".join(
            log_tail(logs / f) for f in ("hbase-console.log", "hbase.log", "hbase_thrift.log")
        )
        raise HBaseStartError(f"{err}\n{tails}") from None
    log.info(
        "HBase ready on 127.0.0.1 (Thrift %d, ZooKeeper %d) in %.1f s, data %s",
        settings.hbase.thrift_port,
        lh.zookeeper_port,
        time.monotonic() - started,
        data_dir(settings),
    )
    return records


def _run_foreground(settings: Settings, master_argv: list[str], thrift_argv: list[str]) -> None:
    """Run both JVMs attached to this process until one ends or a signal arrives; exit."""
    import signal
    import sys

    processes.register_foreground(MASTER, settings=settings, argv=master_argv)
    children = [subprocess.Popen(master_argv), subprocess.Popen(thrift_argv)]
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log.info("HBase running in the foreground (Thrift 127.0.0.1:%d)", settings.hbase.thrift_port)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.5)
    children[1].terminate()
    _request_master_shutdown(settings)
    for child in children:
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
    sys.exit(0)


def _request_master_shutdown(settings: Settings, timeout: float = 60.0) -> bool:
    """``HMaster stop``: ask the cluster to shut down cleanly (flush, close regions)."""
    argv = _java_command(
        settings,
        "hbase-stop",
        "256m",
        ["org.apache.hadoop.hbase.master.HMaster", "stop"],
    )
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def stop_hbase(settings: Settings, *, timeout: float = 60.0) -> bool:
    """Stop the gateway, then the master (clean shutdown first); False if neither ran."""
    stopped = processes.stop(settings, THRIFT, timeout=min(timeout, 20.0))
    master = processes.get(settings, MASTER)
    if master is None:
        return stopped
    deadline = time.monotonic() + timeout
    if _request_master_shutdown(settings, timeout=timeout):
        while processes.is_running(master) and time.monotonic() < deadline:
            time.sleep(0.2)
    # SIGTERM (then SIGKILL) if the clean shutdown did not end it; forgets the PID file
    processes.stop(settings, MASTER, timeout=max(5.0, deadline - time.monotonic()))
    return True
