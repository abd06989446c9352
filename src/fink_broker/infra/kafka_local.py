"""A single-node Apache Kafka broker (KRaft mode) on 127.0.0.1, for the laptop case.

The broker runs from the Maven-resolved jars (:mod:`fink_broker.infra.jars`), needs only a
JRE, and keeps its configuration, data and logs under ``<state_dir>/kafka/``, so a laptop
needs no Kafka install, no ZooKeeper and no container. It plays both KRaft roles (broker and
controller) and listens on loopback only. On a cluster it is not started: the config points
``kafka.bootstrap_servers`` at the survey's brokers.

With ``sasl=True`` (``fink start kafka --sasl``) a second listener, SASL_PLAINTEXT with
SCRAM-SHA-512 on ``local_kafka.sasl_port``, lets clients be tested with credentials as on the
production brokers, while PLAINTEXT stays for local administration and inter-broker traffic.
The SCRAM user (``kafka.sasl_username``, password from :func:`fink_broker.config.kafka_password`)
is created once the broker answers, through the Admin API over PLAINTEXT: Kafka's
``StorageTool --add-scram`` would put the password in argv (``ps``, the PID file), and the
Admin API sends only a salted hash. The broker's own configuration holds no password, and
the password variable is removed from the broker's environment.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from fink_broker.config import Settings, kafka_password
from fink_broker.errors import FinkError
from fink_broker.infra import processes
from fink_broker.infra.jars import find_jvm_tool, kafka_classpath, kafka_log4j_conf
from fink_broker.infra.ports import port_in_use
from fink_broker.infra.processes import log_tail

log = logging.getLogger(__name__)

SERVICE = "kafka"
#: alerts with cutouts are ~150 kB and producers batch them: the 1 MB default is too small
MAX_MESSAGE_BYTES = 10 * 2**20
#: seconds to wait for the broker to answer metadata requests (measured: ~3.5 s)
READY_TIMEOUT_S = 60.0
#: the only SASL mechanism the local broker offers (as Fink's production brokers)
SASL_MECHANISM = "SCRAM-SHA-512"
#: PBKDF2 rounds of the stored SCRAM credential (Kafka accepts 4096..16384)
SCRAM_ITERATIONS = 8192


class KafkaStartError(FinkError):
    """The local broker could not be prepared, started, or did not become ready."""


def kafka_dir(settings: Settings) -> Path:
    """``<state_dir>/kafka``: server.properties, data/ and logs/ of the local broker."""
    return Path(settings.paths.state_dir).expanduser().resolve() / "kafka"


def local_bootstrap(settings: Settings) -> str:
    """Bootstrap address of the local broker."""
    return f"127.0.0.1:{settings.local_kafka.port}"


def local_sasl_bootstrap(settings: Settings) -> str:
    """Bootstrap address of the local broker's SASL_PLAINTEXT listener (``--sasl``)."""
    return f"127.0.0.1:{settings.local_kafka.sasl_port}"


def server_properties(settings: Settings, *, sasl: bool = False) -> str:
    """The broker configuration for ``settings`` (single node, both KRaft roles, loopback).

    With ``sasl`` a SASL_PLAINTEXT listener accepts SCRAM-SHA-512 on ``sasl_port``. Its JAAS
    line names the login module only: a broker that does not talk SASL to other brokers
    needs no credentials of its own, so no password is ever written here.
    """
    lk = settings.local_kafka
    listeners = [f"PLAINTEXT://127.0.0.1:{lk.port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    if sasl:
        listeners.append(f"SASL_PLAINTEXT://{local_sasl_bootstrap(settings)}")
        protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
    props = kraft_properties(
        node_id=1,
        listeners=listeners,
        protocols=protocols,
        controller_port=lk.controller_port,
        voters=f"1@127.0.0.1:{lk.controller_port}",
        data_dir=kafka_dir(settings) / "data",
        partitions=lk.partitions,
        # one node: topics, internal ones included, cannot have more replicas than that
        replication=1,
        min_insync=1,
    )
    if sasl:
        mech = SASL_MECHANISM.lower()
        props.update(
            {
                "sasl.enabled.mechanisms": SASL_MECHANISM,
                "listener.name.sasl_plaintext.sasl.enabled.mechanisms": SASL_MECHANISM,
                f"listener.name.sasl_plaintext.{mech}.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                ),
            }
        )
    return properties_text(props)


def properties_text(props: dict[str, str]) -> str:
    """A broker's ``server.properties``, headed by where it comes from."""
    header = "# Written by Fink at each start of the broker: edit the settings instead\n"
    return header + "".join(f"{k}={v}\n" for k, v in props.items())


def kraft_properties(
    *,
    node_id: int,
    listeners: list[str],
    protocols: list[str],
    controller_port: int,
    voters: str,
    data_dir: Path,
    partitions: int,
    replication: int,
    min_insync: int,
) -> dict[str, str]:
    """What every broker Fink runs shares: both KRaft roles, loopback listeners, large
    messages, and the replication of every topic, internal ones included.

    ``voters`` is KRaft's static quorum (``1@127.0.0.1:9093,2@...``). With ``replication``
    replicas and ``min_insync`` of them needed by an ``acks=all`` write, a topic accepts
    writes while ``replication - min_insync`` brokers are down, and no leader is ever
    elected from a replica that missed acknowledged writes (unclean election stays off).
    """
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": ",".join([*listeners, f"CONTROLLER://127.0.0.1:{controller_port}"]),
        "advertised.listeners": ",".join(listeners),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(protocols),
        "log.dirs": str(data_dir),
        "num.partitions": str(partitions),
        "auto.create.topics.enable": "true",
        "default.replication.factor": str(replication),
        "min.insync.replicas": str(min_insync),
        "unclean.leader.election.enable": "false",
        "offsets.topic.replication.factor": str(replication),
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": str(min_insync),
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": str(min_insync),
        # no other member will join: do not make the first consumer group wait 3 s
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(MAX_MESSAGE_BYTES),
        "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
    }


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as Kafka's Uuid)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # would read as an option on the StorageTool command line
            return cid


def _cluster_id(data_dir: Path) -> str | None:
    meta = data_dir / "meta.properties"
    if not meta.is_file():
        return None
    for line in meta.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


def format_storage(
    java: str, classpath: str, props: Path, data_dir: Path, cluster_id: str | None = None
) -> str:
    """Format the KRaft log directory once; return the cluster id it carries.

    The brokers of one cluster are formatted with the same ``cluster_id``; a single broker
    draws a new one.
    """
    existing = _cluster_id(data_dir)
    if existing:
        return existing
    cluster_id = cluster_id or new_cluster_id()
    cmd = [java, "-cp", classpath, "kafka.tools.StorageTool", "format"]
    cmd += ["-t", cluster_id, "-c", str(props)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KafkaStartError(
            f"formatting {data_dir} failed (exit {result.returncode}):\n"
            + _tail_text(result.stdout + result.stderr, 30)
        )
    log.info("formatted Kafka storage %s (cluster id %s)", data_dir, cluster_id)
    return cluster_id


def broker_java(settings: Settings) -> tuple[str, str]:
    """The ``java`` executable and the broker's class path (Maven-resolved jars)."""
    # One wildcard per folder (java expands it) keeps argv, `ps` and the PID file readable.
    folders = dict.fromkeys(j.parent for j in kafka_classpath(settings))
    return find_jvm_tool("java"), ":".join(f"{folder}/*" for folder in folders)


def broker_argv(java: str, classpath: str, heap: str, logs_dir: Path, props: Path) -> list[str]:
    """The command line of one broker JVM."""
    return [
        java,
        f"-Xmx{heap}",
        "-Djava.awt.headless=true",
        "-XX:+ExitOnOutOfMemoryError",
        f"-Dlog4j2.configurationFile={kafka_log4j_conf()}",
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(props),
    ]


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def probe_admin(bootstrap: str) -> AdminClient:
    """An admin client for readiness probes of brokers Fink starts."""
    # Probes expect refused connections while the broker starts: keep librdkafka quiet and
    # its reconnect backoff short, so readiness is seen within ~0.5 s.
    return AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "log_level": 0,
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 500,
        }
    )


def kafka_ready(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if a broker at ``bootstrap`` answers a metadata request within ``timeout`` s."""
    try:
        probe_admin(bootstrap).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def wait_ready(
    records: list[processes.ServiceRecord], bootstrap: str, cluster_id: str, timeout: float
) -> None:
    """Wait until every broker of ``records`` is in the cluster's metadata; fail fast if one
    exits or another cluster answers on ``bootstrap``."""
    admin = probe_admin(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        for record in records:
            if not processes.is_running(record):
                raise KafkaStartError(f"the Kafka broker {record.name} exited during startup")
        try:
            metadata = admin.list_topics(timeout=1.0)
        except KafkaException:
            metadata = None
        if metadata is not None:
            if metadata.cluster_id not in (None, cluster_id):
                raise KafkaStartError(
                    f"{bootstrap} is answered by another Kafka cluster ({metadata.cluster_id})"
                )
            if len(metadata.brokers) >= len(records):
                return
        if time.monotonic() >= deadline:
            raise KafkaStartError(
                f"{len(records)} Kafka broker(s) did not answer on {bootstrap} in {timeout} s"
            )
        time.sleep(0.1)


def _sasl_password(settings: Settings) -> str:
    """The SCRAM password for ``--sasl``, checked before anything starts."""
    kafka = settings.kafka
    if not kafka.sasl_username:
        raise KafkaStartError("--sasl needs a user name: set kafka.sasl_username")
    if kafka.sasl_mechanism != SASL_MECHANISM:
        raise KafkaStartError(
            f"the local broker offers {SASL_MECHANISM} only; kafka.sasl_mechanism is "
            f"{kafka.sasl_mechanism}"
        )
    try:
        password = kafka_password(kafka)
    except OSError as err:
        raise KafkaStartError(f"cannot read kafka.sasl_password_file: {err}") from None
    if not password:
        raise KafkaStartError(
            f"--sasl needs a password: set ${kafka.sasl_password_env} or kafka.sasl_password_file"
        )
    return password


def set_scram_user(bootstrap: str, user: str, password: str, *, timeout: float = 30.0) -> None:
    """Create or update SCRAM-SHA-512 credentials of ``user`` through the Admin API.

    librdkafka salts and hashes the password on the client side (KIP-554), so neither the
    request nor the broker's metadata log ever holds it in clear. Re-running it at each start
    is harmless: an upsert replaces the credential (and a changed password takes effect).
    """
    admin = probe_admin(bootstrap)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(user, info, password.encode())
    futures = admin.alter_user_scram_credentials([upsert], request_timeout=timeout)
    try:
        for future in futures.values():
            future.result(timeout=timeout)
    except KafkaException as err:
        raise KafkaStartError(f"setting the SCRAM credentials of {user!r} failed: {err}") from None
    del admin  # only now: its thread resolved the futures
    log.info("SCRAM-SHA-512 credentials of user %r set on %s", user, bootstrap)


def _wait_sasl_ready(settings: Settings, password: str, deadline: float) -> None:
    """Wait until a client logs in on the SASL listener with the configured credentials.

    A credential is committed to the metadata log before the broker applies it, so the
    first login right after :func:`set_scram_user` can still be refused.
    """
    bootstrap = local_sasl_bootstrap(settings)
    config = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": SASL_MECHANISM,
        "sasl.username": settings.kafka.sasl_username,
        "sasl.password": password,
        "log_level": 0,
        "error_cb": lambda err: None,  # refusals are expected until the credential applies
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 500,
    }
    while True:
        try:
            AdminClient(config).list_topics(timeout=1.0)
            return
        except KafkaException:
            if time.monotonic() >= deadline:
                raise KafkaStartError(
                    f"the SASL listener {bootstrap} did not accept user "
                    f"{settings.kafka.sasl_username!r} in time"
                ) from None


def _provision_sasl(settings: Settings, password: str, deadline: float) -> None:
    set_scram_user(
        local_bootstrap(settings),
        settings.kafka.sasl_username,
        password,
        timeout=max(1.0, deadline - time.monotonic()),
    )
    _wait_sasl_ready(settings, password, deadline)
    log.info(
        "SASL_PLAINTEXT (%s) listener ready on %s for user %r",
        SASL_MECHANISM,
        local_sasl_bootstrap(settings),
        settings.kafka.sasl_username,
    )


def _provision_after_exec(settings: Settings, password: str, timeout: float) -> None:
    """Fork a helper that sets the SCRAM user once the broker this process becomes answers.

    ``--foreground`` replaces this process with the JVM, so the Admin API calls must come
    from another process. A double fork leaves the helper to init, not to the JVM, which
    would never reap it. The helper exits with ``os._exit`` so it runs none of the parent's
    atexit hooks (which would remove the PID file of the foreground broker).
    """
    child = os.fork()
    if child:
        os.waitpid(child, 0)  # the intermediate process exits at once
        return
    code = 1
    try:
        if os.fork():
            code = 0
        else:
            deadline = time.monotonic() + timeout
            while not kafka_ready(local_bootstrap(settings), timeout=1.0):
                if time.monotonic() >= deadline:
                    raise KafkaStartError("the Kafka broker did not answer in time")
                time.sleep(0.2)
            _provision_sasl(settings, password, deadline)
            code = 0
    except Exception as err:  # report any failure in the terminal: the helper has no caller
        log.error("SASL setup of the local broker failed: %s", err)
    finally:
        os._exit(code)


def start_kafka(
    settings: Settings,
    *,
    foreground: bool = False,
    sasl: bool = False,
    timeout: float = READY_TIMEOUT_S,
) -> processes.ServiceRecord:
    """Start the local broker and return its record once it answers metadata requests.

    The storage is formatted on first use and kept across restarts (topics and offsets
    survive ``fink stop kafka``). With ``foreground`` the current process becomes the broker
    (``exec``), logging WARN and above to the terminal, and this function does not return.
    With ``sasl`` the broker also listens with SASL_PLAINTEXT/SCRAM-SHA-512 on
    ``local_kafka.sasl_port``, and this returns once ``kafka.sasl_username`` can log in there.
    Raises :class:`processes.AlreadyRunningError` if Fink's broker already runs, and
    :class:`KafkaStartError` if a port is taken, ``--sasl`` lacks a user or password, or the
    broker does not become ready within ``timeout`` seconds (the error carries the end of its
    logs, and the broker is stopped).
    """
    lk = settings.local_kafka
    existing = processes.get(settings, SERVICE)
    if existing is not None:
        raise processes.AlreadyRunningError(existing)
    password = _sasl_password(settings) if sasl else None
    named_ports = {"port": lk.port, "controller_port": lk.controller_port}
    if sasl:
        named_ports["sasl_port"] = lk.sasl_port
    if len(set(named_ports.values())) < len(named_ports):
        raise KafkaStartError(f"local_kafka ports must differ: {named_ports}")
    for key, port in named_ports.items():
        if port_in_use(port):
            raise KafkaStartError(
                f"127.0.0.1:{port} is already in use by a process Fink did not start; "
                f"choose another local_kafka.{key} (env FINK_LOCAL_KAFKA_{key.upper()})"
            )
    home = kafka_dir(settings)
    data_dir, logs_dir = home / "data", home / "logs"
    for folder in (data_dir, logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    props = home / "server.properties"
    props.write_text(server_properties(settings, sasl=sasl))

    java, classpath = broker_java(settings)
    cluster_id = format_storage(java, classpath, props, data_dir)
    argv = broker_argv(java, classpath, lk.heap, logs_dir, props)
    bootstrap = local_bootstrap(settings)
    server_log = logs_dir / "server.log"
    extra = {"bootstrap": bootstrap, "cluster_id": cluster_id, "server_log": str(server_log)}
    ports = [lk.port, lk.controller_port]
    if sasl:
        extra["sasl_bootstrap"] = local_sasl_bootstrap(settings)
        ports.append(lk.sasl_port)
    # The broker never needs the client password: keep it out of its /proc/<pid>/environ.
    env = {k: v for k, v in os.environ.items() if k != settings.kafka.sasl_password_env}
    if foreground:
        processes.register_foreground(
            SERVICE, settings=settings, argv=argv, log_path=server_log, ports=ports, extra=extra
        )
        log.info("exec Kafka broker on %s in the foreground", bootstrap)
        if password is not None:
            _provision_after_exec(settings, password, timeout)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(java, argv, env)

    started = time.monotonic()
    record = processes.start_background(
        SERVICE,
        argv,
        settings=settings,
        env=env,
        log_path=logs_dir / "console.log",
        ports=ports,
        extra=extra,
    )
    try:
        wait_ready([record], bootstrap, cluster_id, timeout)
        if password is not None:
            _provision_sasl(settings, password, started + timeout)
    except KafkaStartError as err:
        with contextlib.suppress(Exception):
            processes.stop(settings, SERVICE, timeout=10.0)
        logs = "\n".join(log_tail(p) for p in (logs_dir / "console.log", server_log))
        raise KafkaStartError(f"{err}\n{logs}") from None
    log.info(
        "Kafka broker ready on %s in %.1f s (PID %d, data %s)",
        bootstrap,
        time.monotonic() - started,
        record.pid,
        data_dir,
    )
    return record


def stop_kafka(settings: Settings, *, timeout: float = 30.0) -> bool:
    """Stop Fink's local broker (a clean shutdown takes a few seconds); False if not running."""
    return processes.stop(settings, SERVICE, timeout=timeout)
