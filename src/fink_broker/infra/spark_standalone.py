"""A Spark standalone cluster on 127.0.0.1: one master and its workers, from the pinned pyspark.

``fink cluster start`` runs ``spark-class org.apache.spark.deploy.master.Master`` and
``...worker.Worker`` of the installed pyspark wheel (the same Spark as the services' driver),
each recorded in a PID file. Executors are JVMs the workers start for each application:
they hold no Fink code of their own, and get Fink's jars (``spark.jars``) and its Python
environment (``spark.archives``) from the driver, as on a production cluster.

The workers' own Python is a bare virtual environment without pyspark or fink_broker
(``PYSPARK_PYTHON`` of the workers), and their environment names neither the driver's
virtualenv nor a ``PYTHONPATH`` (Spark gives its Python workers one: its own pyspark.zip and
py4j, nothing else): a Python worker that ran anything but the shipped environment could
not import the broker, nor pandas. State, logs and executor folders live under
``<state_dir>/cluster/spark/``; a worker removes the folders of applications that ended
more than ``APP_DATA_TTL_S`` ago (each holds an unpacked environment, ~1.2 GB).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fink_broker.config import Settings
from fink_broker.errors import FinkError
from fink_broker.infra import processes
from fink_broker.infra.jars import spark_log4j_conf
from fink_broker.infra.processes import log_tail

log = logging.getLogger(__name__)

MASTER = "spark_master"
#: how often a worker looks for folders of ended applications, and how old they must be
APP_DATA_CLEANUP_S = 300
APP_DATA_TTL_S = 3600
#: variables of this process that must not reach the workers (and so the executors)
DRIVER_ONLY_ENV = ("PYTHONPATH", "VIRTUAL_ENV", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")


#: added to Fink's log4j2 configuration for the cluster's JVMs: each executor's stderr (in
#: the worker's work folder) says which task it runs and when it ends, and the daemons log
#: registrations, executors launched and lost
EXECUTOR_LOGGING = """
# local cluster: tasks in each executor's stderr, registrations and losses in the daemons'
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = info
logger.master.name = org.apache.spark.deploy.master.Master
logger.master.level = info
logger.worker.name = org.apache.spark.deploy.worker.Worker
logger.worker.level = info
"""


class SparkStartError(FinkError):
    """The standalone master or a worker did not start or did not register."""


@dataclass(frozen=True)
class SparkPorts:
    """The master's RPC and web UI ports, and each worker's."""

    master: int
    master_ui: int
    #: (RPC, web UI) of each worker, in order
    workers: tuple[tuple[int, int], ...]

    def all(self) -> list[int]:
        return [self.master, self.master_ui, *(p for pair in self.workers for p in pair)]


def worker_name(index: int) -> str:
    """The PID-file name of worker ``index`` (from 1)."""
    return f"spark_worker_{index}"


def spark_dir(settings: Settings) -> Path:
    """``<state_dir>/cluster/spark``: conf/, logs/, work/ and the workers' bare python/."""
    return Path(settings.paths.state_dir).expanduser().resolve() / "cluster" / "spark"


def spark_home() -> Path:
    """The installed pyspark package: Spark's bin/, jars/ and launcher for the daemons."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise SparkStartError("pyspark is not installed in this environment")
    return Path(spec.origin).parent


def master_url(ports: SparkPorts) -> str:
    """The ``spark://`` URL the services' ``spark.master`` points at."""
    return f"spark://127.0.0.1:{ports.master}"


def bare_python(settings: Settings) -> Path:
    """The workers' own Python: a virtual environment with nothing installed, made once.

    Python workers launched from it could not even import pyspark: an executor that did not
    use the environment shipped by the driver would fail its first Python task.
    """
    home = spark_dir(settings) / "python"
    python = home / "bin" / "python"
    if not python.exists():
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", "--without-pip", str(home)], check=True)
    return python


def _conf_dir(settings: Settings) -> Path:
    """SPARK_CONF_DIR of the daemons: Fink's log4j2 configuration, read by the master, the
    workers and the executors they start (the conf folder is on an executor's class path)."""
    conf = spark_dir(settings) / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    text = spark_log4j_conf().read_text() + EXECUTOR_LOGGING
    (conf / "log4j2.properties").write_text(text)
    return conf


def daemon_env(settings: Settings) -> dict[str, str]:
    """The environment of the master and workers (and so of every executor)."""
    home = spark_dir(settings)
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {k: v for k, v in os.environ.items() if k not in DRIVER_ONLY_ENV}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    cleanup = (
        "-Dspark.worker.cleanup.enabled=true"
        f" -Dspark.worker.cleanup.interval={APP_DATA_CLEANUP_S}"
        f" -Dspark.worker.cleanup.appDataTtl={APP_DATA_TTL_S}"
    )
    env.update(
        {
            "SPARK_HOME": str(spark_home()),
            "SPARK_CONF_DIR": str(_conf_dir(settings)),
            "SPARK_LOG_DIR": str(home / "logs"),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": settings.local_cluster.daemon_memory,
            "SPARK_WORKER_OPTS": cleanup,
            "PYSPARK_PYTHON": str(bare_python(settings)),
        }
    )
    return env


def master_state(ports: SparkPorts, timeout: float = 2.0) -> dict[str, object] | None:
    """The master's JSON status (``status``, ``aliveworkers``, ``workers``, ``activeapps``),
    or None if it does not answer."""
    url = f"http://127.0.0.1:{ports.master_ui}/json/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def alive_workers(ports: SparkPorts) -> int:
    """How many workers the master counts as alive (0 if it does not answer)."""
    state = master_state(ports)
    return int(state.get("aliveworkers", 0)) if state else 0


def _daemon(
    settings: Settings, name: str, main: str, args: list[str], ports: list[int]
) -> processes.ServiceRecord:
    # spark-class runs Spark's launcher, then execs the daemon's JVM in the same process
    argv = ["bash", str(spark_home() / "bin" / "spark-class"), main, *args]
    home = spark_dir(settings)
    return processes.start_background(
        name,
        argv,
        settings=settings,
        env=daemon_env(settings),
        log_path=home / "logs" / f"{name}.log",
        ports=ports,
        extra={"log": str(home / "logs" / f"{name}.log")},
    )


def start_master(settings: Settings, ports: SparkPorts) -> processes.ServiceRecord:
    """Start the master (returns once spawned; :func:`wait_ready` waits for it)."""
    args = ["--host", "127.0.0.1", "--port", str(ports.master)]
    args += ["--webui-port", str(ports.master_ui)]
    return _daemon(
        settings,
        MASTER,
        "org.apache.spark.deploy.master.Master",
        args,
        [ports.master, ports.master_ui],
    )


def start_worker(settings: Settings, ports: SparkPorts, index: int) -> processes.ServiceRecord:
    """Start worker ``index`` (from 1) against the master."""
    lc = settings.local_cluster
    rpc, ui = ports.workers[index - 1]
    work = spark_dir(settings) / "work" / worker_name(index)
    work.mkdir(parents=True, exist_ok=True)
    args = [master_url(ports), "--host", "127.0.0.1", "--port", str(rpc)]
    args += ["--webui-port", str(ui), "--cores", str(lc.worker_cores)]
    args += ["--memory", lc.worker_memory, "--work-dir", str(work)]
    return _daemon(
        settings, worker_name(index), "org.apache.spark.deploy.worker.Worker", args, [rpc, ui]
    )


def wait_ready(
    records: list[processes.ServiceRecord], ports: SparkPorts, workers: int, deadline: float
) -> None:
    """Wait until the master answers and counts ``workers`` alive workers."""
    while True:
        for record in records:
            if not processes.is_running(record):
                raise SparkStartError(
                    f"{record.name} exited during startup\n{log_tail(record.log_path or '')}"
                )
        state = master_state(ports)
        if state is not None and int(state.get("aliveworkers", 0)) >= workers:
            return
        if time.monotonic() >= deadline:
            seen = state.get("aliveworkers") if state else "no answer"
            raise SparkStartError(
                f"the Spark master on {master_url(ports)} did not see {workers} worker(s) in "
                f"time (alive: {seen})"
            )
        time.sleep(0.5)


def start_spark(
    settings: Settings, ports: SparkPorts, *, timeout: float = 180.0
) -> list[processes.ServiceRecord]:
    """Start the master and every worker; return once all workers registered."""
    deadline = time.monotonic() + timeout
    records = [start_master(settings, ports)]
    try:
        for index in range(1, len(ports.workers) + 1):
            records.append(start_worker(settings, ports, index))
        wait_ready(records, ports, len(ports.workers), deadline)
    except (SparkStartError, processes.AlreadyRunningError):
        stop_spark(settings, len(ports.workers), timeout=10.0)
        raise
    return records


def stop_spark(settings: Settings, workers: int, *, timeout: float = 30.0) -> list[str]:
    """Stop the workers (their executors end with them), then the master."""
    names = [worker_name(i) for i in range(1, workers + 1)]
    stopped = processes.stop_together(settings, names, timeout=timeout)
    return stopped + processes.stop_together(settings, [MASTER], timeout=timeout)
