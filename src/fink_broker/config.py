"""Typed, layered settings for every Fink service.

Precedence, lowest first: the defaults declared here < the TOML config file (``-c``) <
``FINK_<SECTION>_<KEY>`` environment variables < command-line flags. One tree serves the
laptop (local Kafka, ``local[2]``) and a cluster (remote brokers, ``spark://`` master, an
``hdfs://`` root): only values change, never code paths.

Secrets (Kafka SASL passwords) are never plain fields: the config names an environment
variable or a file that holds them, so they stay out of argv, of config dumps and of logs.

Examples
--------
>>> s = load_settings(env={"FINK_KAFKA_BOOTSTRAP_SERVERS": "broker:9092"})
>>> s.kafka.bootstrap_servers
'broker:9092'
>>> s.spark.master
'local[2]'
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

ENV_PREFIX = "FINK_"


@dataclass
class PathsSettings:
    """Where the data lake, logs and run state live."""

    #: data root: raw/, science/, checkpoints/, quarantine/ below it; a local path or a Hadoop URI
    root: str = "fink-data"
    #: run state of the local services (PID files, logs, Kafka and HBase data); always local
    state_dir: str = ".fink"
    #: cache of what Fink builds once: the JVM jars resolved from Maven Central (Kafka broker,
    #: Spark connectors, HBase, HDFS), Fink's own jar, the Python environment sent to executors, and
    #: the schema registry binary built with cargo (a Rust crate)
    jar_cache: str = "jvm-cache"
    #: fink-science's models converted to ONNX by scripts/setup.sh (read by the Python workers)
    models_cache: str = "models-cache"


@dataclass
class SparkSettings:
    """The Spark application that runs the streaming queries."""

    #: Spark master: local[2] on a laptop, spark://host:7077 or k8s://... on a cluster
    master: str = "local[2]"
    #: shuffle partitions; small on 2 cores
    shuffle_partitions: int = 2
    #: driver memory (local mode: the whole JVM)
    driver_memory: str = "2g"
    #: JVM options of the driver and executors. The throughput collector: alerts are large
    #: (50-150 kB) short-lived objects, and G1 spent a quarter of stream2raw's time in pauses
    java_options: str = "-XX:+UseParallelGC"
    #: log level of Spark's own loggers
    log_level: str = "WARN"
    #: extra Spark properties, e.g. {"spark.executor.memory" = "4g"}
    extra: dict[str, str] = field(default_factory=dict)
    #: with a master that is not local[...]: send the executors this Python environment
    #: (fink_broker and every package installed next to it, pyspark's jars left out) through
    #: spark.archives; off: they run the Python that PYSPARK_PYTHON names on each worker
    ship_python: bool = True
    #: a packed environment to send instead (a .tar.gz the driver can read, made by
    #: `fink cluster pack`); empty: this environment, packed once into the jar cache
    python_archive: str = ""


@dataclass
class KafkaSettings:
    """Kafka connection of the input stream (and of the local broker in local mode)."""

    #: bootstrap servers of the cluster that carries the survey alerts
    bootstrap_servers: str = "127.0.0.1:9092"
    #: PLAINTEXT, SASL_PLAINTEXT or SASL_SSL
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: SASL mechanism when a SASL protocol is used
    sasl_mechanism: str = "SCRAM-SHA-512"
    #: SASL user name (not a secret)
    sasl_username: str = ""
    #: name of the environment variable that holds the SASL password
    sasl_password_env: str = "FINK_KAFKA_PASSWORD"
    #: or a file whose first line is the SASL password (takes precedence when set)
    sasl_password_file: str = ""
    #: CA bundle for SASL_SSL
    ssl_ca_location: str = ""
    #: extra Kafka consumer properties for Spark's source, e.g. {"kafka.fetch.max.bytes" = "1"}
    consumer: dict[str, str] = field(default_factory=dict)
    #: producers' acknowledgements: all = every in-sync replica holds the record (at least the
    #: brokers' min.insync.replicas), 1 = the partition leader only, 0 = none
    acks: Literal["all", "1", "0"] = "all"
    #: idempotent producers: a send retried after a broker failure is written once (acks=all)
    idempotence: bool = True
    #: a record not acknowledged within this many ms, retries included, fails its delivery
    delivery_timeout_ms: int = 120000
    #: a request to a broker (produce, fetch, metadata) is retried after this many ms
    request_timeout_ms: int = 30000
    #: pause before a retry, in ms (a leader election after a broker failure takes ~1 s)
    retry_backoff_ms: int = 200


@dataclass
class LocalKafkaSettings:
    """The single-node KRaft broker that `fink start kafka` runs on 127.0.0.1."""

    #: client port
    port: int = 9092
    #: KRaft controller port
    controller_port: int = 9093
    #: SASL_PLAINTEXT (SCRAM-SHA-512) client port, opened by `fink start kafka --sasl`
    sasl_port: int = 9094
    #: default partitions of auto-created topics
    partitions: int = 4
    #: JVM heap of the broker
    heap: str = "512m"


@dataclass
class LocalClusterSettings:
    """The cluster that `fink cluster start` runs on 127.0.0.1: Spark standalone, Kafka, HDFS."""

    #: first of the consecutive loopback ports of the cluster (Spark master and workers,
    #: brokers, NameNode, DataNode); 0: a free range is chosen at the first start, written here
    base_port: int = 0
    #: Spark standalone workers
    workers: int = 2
    #: cores each worker offers to executors
    worker_cores: int = 1
    #: memory each worker offers to executors
    worker_memory: str = "1536m"
    #: heap of each executor (spark.executor.memory in the config the cluster writes)
    executor_memory: str = "1g"
    #: heap of the Spark master and worker daemons
    daemon_memory: str = "256m"
    #: Kafka brokers, each also a KRaft controller (a majority must live)
    brokers: int = 3
    #: replicas of every topic, the brokers' internal ones included
    replication_factor: int = 3
    #: in-sync replicas an acks=all write needs: with 3 replicas, one broker may be down
    min_insync_replicas: int = 2
    #: partitions of the topics the brokers create
    partitions: int = 4
    #: JVM heap of each broker
    kafka_heap: str = "384m"
    #: JVM heap of the HDFS NameNode and of the DataNode
    hdfs_heap: str = "384m"


@dataclass
class Stream2RawSettings:
    """Kafka survey stream -> decoded alerts -> raw Parquet."""

    #: survey adapter: ztf or rubin
    survey: Literal["ztf", "rubin"] = "ztf"
    #: topic (or comma-separated topics) to read; empty = the survey's default
    topic: str = ""
    #: where a new query starts: earliest or latest (a restarted query uses its checkpoint)
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    #: upper bound of Kafka records per micro-batch
    max_offsets_per_trigger: int = 5000
    #: "availableNow" drains the topic and exits; otherwise a processing time like "2 seconds"
    trigger: str = "2 seconds"
    #: ZTF: the archive's reader schema, a packaged version (3.3, 4.02): every version on
    #: the wire resolves into it (fields it lacks are dropped, fields they lack are null)
    ztf_reader_schema: str = "4.02"
    #: Rubin: schema ids from lsst-alert-packet (major*100+minor) accepted on the wire;
    #: empty = every id the installed package ships
    rubin_schema_ids: list[int] = field(default_factory=list)
    #: Rubin: the archive's reader schema (e.g. "11.1"); empty = the newest the package ships
    rubin_reader_schema: str = ""
    #: Confluent-compatible schema registry asked for Rubin schema ids the package does not
    #: know (e.g. http://host:8081); empty = none, such alerts go to quarantine
    schema_registry_url: str = ""
    #: registry HTTP basic-auth user (not a secret); empty = no authentication
    schema_registry_username: str = ""
    #: name of the environment variable that holds the registry password
    schema_registry_password_env: str = "FINK_SCHEMA_REGISTRY_PASSWORD"
    #: or a file whose first line is the registry password (takes precedence when set)
    schema_registry_password_file: str = ""
    #: seconds a registry request may take
    schema_registry_timeout_s: float = 10.0
    #: seconds before an id the registry could not give is asked again
    schema_registry_retry_s: float = 30.0
    #: where schemas fetched from the registry are kept (empty: <state_dir>/schemas); on a
    #: cluster, a local folder of every executor
    schema_cache_dir: str = ""
    #: largest decoded alert, MB: a Kafka message whose records (inflated) would exceed it is
    #: quarantined before the memory is taken (deflate bombs); Avro's own length limits too
    max_decoded_mb: int = 64


@dataclass
class Raw2ScienceSettings:
    """Raw Parquet -> quality cuts -> science modules -> science Parquet."""

    #: "availableNow" processes what the raw archive holds and exits; else a processing time
    trigger: str = "10 seconds"
    #: upper bound of raw Parquet files per micro-batch (stream2raw writes one per task and
    #: micro-batch): it bounds a batch's latency and what a failed batch does again
    max_files_per_trigger: int = 20
    #: run the quality cuts only, no science module
    noscience: bool = False
    #: science modules to run (entry-point names); empty = every installed module for the survey
    modules: list[str] = field(default_factory=list)
    #: what a failing module does: fail the micro-batch, or null its outputs and count them
    failure_policy: Literal["fail", "null_and_count"] = "null_and_count"
    #: folder of the catalogues added with `fink catalogs add` (empty: <state_dir>/catalogues);
    #: on a cluster, a path every executor can read
    catalogue_dir: str = ""
    #: ZTF cut: maximum number of bad pixels (candidate.nbad)
    ztf_nbad_max: int = 0
    #: ZTF cut: minimum real/bogus score (candidate.rb)
    ztf_rb_min: float = 0.55
    #: ZTF cut: drop i-band alerts (fid 3)
    ztf_drop_i_band: bool = True
    #: Rubin cut: minimum ML reliability (diaSource.reliability)
    rubin_reliability_min: float = 0.5


@dataclass
class DistributionSettings:
    """Science Parquet -> filters -> one Kafka topic per filter (``fink_<filter>_<survey>``)."""

    #: "availableNow" publishes what the science archive holds and exits; else a processing time
    trigger: str = "10 seconds"
    #: upper bound of science Parquet files per micro-batch
    max_files_per_trigger: int = 50
    #: filters to run (entry-point names); empty = every installed filter for the survey
    filters: list[str] = field(default_factory=list)
    #: prefix of the outgoing topic names
    topic_prefix: str = "fink_"
    #: publish the image cutouts with the alerts (three ~20-60 kB binaries per alert)
    cutouts: bool = True
    #: what a filter that raises does: fail the micro-batch (retried from the checkpoint,
    #: so it fails again), or select nothing from that Arrow batch and count its alerts
    failure_policy: Literal["fail", "null_and_count"] = "null_and_count"


@dataclass
class HBaseSettings:
    """The HBase science archive, reached through its Thrift (v1) gateway (happybase)."""

    #: Thrift gateway host: 127.0.0.1 for `fink start hbase`, a cluster's Thrift server otherwise
    thrift_host: str = "127.0.0.1"
    #: Thrift gateway port (the local gateway listens there too)
    thrift_port: int = 9090
    #: Thrift transport of the gateway: buffered (HBase's default) or framed
    transport: Literal["buffered", "framed"] = "buffered"
    #: Thrift protocol of the gateway: binary (HBase's default) or compact
    protocol: Literal["binary", "compact"] = "binary"
    #: prefix of every table name: <namespace>_<survey>_<table>
    namespace: str = "fink"
    #: seconds a Thrift call may take before the client gives up
    timeout_s: float = 60.0
    #: rows sent per Thrift mutateRows call (measured on 2 cores: 200 -> 970, 1000 -> 1,180,
    #: 2000 -> 1,480 alerts/s)
    batch_size: int = 1000
    #: and at most this many MiB per call (cutouts weigh ~60 kB an alert)
    batch_mib: int = 16


@dataclass
class LocalHBaseSettings:
    """The standalone HBase (master, region server, ZooKeeper) that `fink start hbase` runs."""

    #: client port of HBase's own ZooKeeper
    zookeeper_port: int = 2181
    #: RPC port of the master
    master_port: int = 16000
    #: RPC port of the region server
    regionserver_port: int = 16020
    #: JVM heap of the master/region server
    heap: str = "1g"
    #: JVM heap of the Thrift gateway
    thrift_heap: str = "256m"


@dataclass
class LocalRegistrySettings:
    """The Confluent-API schema registry that `fink start registry` runs on 127.0.0.1."""

    #: HTTP port of the registry's Confluent REST API (8081: the Confluent default)
    port: int = 8081
    #: log level of the registry: trace, debug (two lines per request), info (start-up and
    #: each new schema), warn or error
    log_level: str = "info"


@dataclass
class ArchiveSettings:
    """Science Parquet -> HBase main table, index tables and cutouts."""

    #: "availableNow" archives what the science archive holds and exits; else a processing time
    trigger: str = "30 seconds"
    #: upper bound of science Parquet files per micro-batch
    max_files_per_trigger: int = 50
    #: store the image cutouts in HBase (one row per alert, retrievable by alert id)
    cutouts: bool = True
    #: list the alerts that pass each filter (distribution.filters, or all installed) in the
    #: tag table, for /api/v1/tags
    tags: bool = True
    #: alerts whose anomaly_score is at most this are listed for /api/v1/anomaly (lower is
    #: more anomalous, as Fink's isolation-forest score)
    anomaly_threshold: float = -0.5
    #: `fink start pipeline` archives each micro-batch in HBase too (HBase must run); the
    #: separate archive service is then not needed
    in_pipeline: bool = False


@dataclass
class ApiSettings:
    """The REST API over the HBase archive (`fink start api`): both surveys, one process."""

    #: address the API binds to (127.0.0.1: this machine only)
    host: str = "127.0.0.1"
    #: port of the API
    port: int = 8000
    #: largest cone-search radius accepted, in arcsec (5 degrees, as Fink's API)
    max_radius_arcsec: float = 18000.0
    #: most object ids (or names) accepted in one request
    max_objects: int = 1000
    #: most rows one answer holds; longer answers come in pages (Fink-Next-Cursor header)
    max_rows: int = 10000
    #: most index rows one cone search or sky map may examine before it is refused (400)
    max_scan_rows: int = 200000
    #: Thrift connections to HBase the API keeps open
    pool_size: int = 8
    #: seconds a request waits for a free Thrift connection before it gets 503
    pool_timeout_s: float = 10.0
    #: seconds a pooled Thrift connection may sit unused before it is reopened: the Thrift
    #: server closes idle sockets (hbase.thrift.server.socket.read.timeout, 60 s by default)
    pool_idle_s: float = 30.0
    #: seconds a request may take before it gets 503 (its archive reads stop)
    request_timeout_s: float = 60.0
    #: largest request body accepted, in bytes (413 above; a sky map travels in it)
    max_body_bytes: int = 16 * 2**20
    #: longest URL (path and query) accepted, in bytes (414 above)
    max_url_bytes: int = 65536
    #: largest sky map accepted once unzipped, in bytes
    max_skymap_bytes: int = 256 * 2**20


@dataclass
class SimulatorSettings:
    """Replay of alert files into Kafka."""

    #: folder of alert files (one Avro container file per alert)
    datasim: str = ""
    #: topic to write to; empty = the survey's default
    topic: str = ""
    #: partitions of the topic when the simulator creates it
    partitions: int = 4


@dataclass
class CheckstreamSettings:
    """Live view of a topic."""

    #: seconds between two reports
    interval: float = 5.0
    #: number of recent alerts shown
    last: int = 5


@dataclass
class SupervisionSettings:
    """How Fink restarts a streaming service whose query failed (from its checkpoint)."""

    #: restarts allowed in a row; a run that stays up `healthy_after_s` resets the count
    max_restarts: int = 50
    #: wait before the first restart, seconds; each further restart in a row doubles it
    backoff_s: float = 2.0
    #: the longest wait between two restarts, seconds (a Kafka or HBase outage is retried
    #: at this pace, ~50 minutes in all with the defaults, before the service gives up)
    max_backoff_s: float = 60.0
    #: a run that lasted this long before failing starts a fresh count of restarts
    healthy_after_s: float = 600.0


@dataclass
class DashboardSettings:
    """The operator's web page (`fink start dashboard`): services, rates, lag, latency, alerts."""

    #: address the dashboard binds to (127.0.0.1: this machine only)
    host: str = "127.0.0.1"
    #: port of the dashboard
    port: int = 8050
    #: seconds between two refreshes of the page and of what it reads
    refresh_s: float = 2.0
    #: seconds of micro-batches over which the rates (alerts/s) are averaged
    rate_window_s: float = 60.0
    #: minutes of micro-batch history shown in the rate plot
    history_minutes: float = 30.0
    #: newest science alerts over which the latency percentiles are computed
    latency_alerts: int = 5000
    #: newest science alerts listed with their cutouts
    latest: int = 10
    #: REST API that serves cutouts and light curves (empty: http://<api.host>:<api.port>)
    api_url: str = ""
    #: seconds a Kafka or REST API request may take before its panel says it is unreachable
    request_timeout_s: float = 3.0


@dataclass
class DatasimSettings:
    """`fink datasim download`: public ZTF alerts of one night, from the ZTF alert archive."""

    #: URL of one night's tarball of Avro alert files; {night} is replaced by YYYYMMDD
    archive_url: str = "https://ztf.uw.edu/alerts/public/ztf_public_{night}.tar.gz"
    #: folder the nights are unpacked into, one sub-folder per night (<folder>/<night>/)
    folder: str = "datasim/ztf"
    #: attempts of one download; each one resumes where the previous stopped
    attempts: int = 3
    #: seconds without a byte from the server before an attempt is given up
    timeout_s: float = 60.0


@dataclass
class Settings:
    """The whole configuration tree."""

    paths: PathsSettings = field(default_factory=PathsSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    local_kafka: LocalKafkaSettings = field(default_factory=LocalKafkaSettings)
    local_cluster: LocalClusterSettings = field(default_factory=LocalClusterSettings)
    stream2raw: Stream2RawSettings = field(default_factory=Stream2RawSettings)
    raw2science: Raw2ScienceSettings = field(default_factory=Raw2ScienceSettings)
    distribution: DistributionSettings = field(default_factory=DistributionSettings)
    #: the Kafka cluster the distribution publishes to (empty bootstrap_servers: the input one)
    output_kafka: KafkaSettings = field(
        default_factory=lambda: KafkaSettings(
            bootstrap_servers="", sasl_password_env="FINK_OUTPUT_KAFKA_PASSWORD"
        )
    )
    hbase: HBaseSettings = field(default_factory=HBaseSettings)
    local_hbase: LocalHBaseSettings = field(default_factory=LocalHBaseSettings)
    local_registry: LocalRegistrySettings = field(default_factory=LocalRegistrySettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    checkstream: CheckstreamSettings = field(default_factory=CheckstreamSettings)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    datasim: DatasimSettings = field(default_factory=DatasimSettings)
    #: the config file this tree was read from, if any
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the tree (secrets are never part of it)."""
        data = dataclasses.asdict(self)
        data.pop("source", None)
        return data


def is_local_master(master: str) -> bool:
    """True for ``local``, ``local[N]`` and ``local[*]``: driver and executors in one JVM,
    on this machine. Any other master (``spark://``, ``k8s://``, ``yarn``) has executors
    that share nothing with the driver but what Spark sends them.

    >>> is_local_master("local[2]"), is_local_master("spark://127.0.0.1:7077")
    (True, False)
    """
    return master == "local" or master.startswith("local[")


class ConfigError(ValueError):
    """A config file, variable or flag has a value of the wrong shape."""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in {"1", "true", "yes", "on"}:
            return True
        if str(value).lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where}: expected a boolean, got {value!r}")
    if annotation is int:
        try:
            return int(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from err
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from err
    if annotation is str:
        return str(value)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is list:
        (item,) = typing.get_args(annotation)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return [_coerce(v, item, where) for v in value]
    if origin is dict:
        if isinstance(value, str):
            pairs = [kv.split("=", 1) for kv in value.split(",") if kv.strip()]
            value = {k.strip(): v.strip() for k, v in pairs}
        return {str(k): str(v) for k, v in dict(value).items()}
    return value


def _section_types(section_cls: type) -> dict[str, Any]:
    return typing.get_type_hints(section_cls)


#: options that Fink no longer reads -> why: config files that ``fink init`` wrote before
#: still load, with a warning, where an unknown option is an error
RETIRED_OPTIONS: dict[tuple[str, str], str] = {
    ("api", "max_results"): "api.max_rows caps every answer; longer ones come in pages",
    ("raw2science", "separate_module_read_mb"): (
        "the science modules always run on a read of their own, zipped back to the alerts"
    ),
}


def _apply(settings: Settings, section: str, key: str, value: Any, where: str) -> None:
    sections = _section_types(Settings)
    if section not in sections or section == "source":
        raise ConfigError(f"{where}: unknown section [{section}]")
    obj = getattr(settings, section)
    types = _section_types(type(obj))
    if (section, key) in RETIRED_OPTIONS:
        log.warning(
            "%s: %s.%s is no longer used (%s); remove it",
            where,
            section,
            key,
            RETIRED_OPTIONS[section, key],
        )
        return
    if key not in types:
        raise ConfigError(f"{where}: unknown option {section}.{key}")
    setattr(obj, key, _coerce(value, types[key], where))


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings tree from defaults, a TOML file, the environment and overrides.

    ``overrides`` maps dotted names (``"stream2raw.trigger"``) to values; the CLI passes its
    flags there. ``env`` defaults to ``os.environ``; keys look like ``FINK_SPARK_MASTER``.
    """
    settings = Settings()
    env = os.environ if env is None else env
    if path is None and env.get("FINK_CONFIG"):
        path = env["FINK_CONFIG"]
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError as err:
            raise ConfigError(f"config file {p} does not exist (run `fink init`?)") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {p}: {err}") from err
        for section, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{p}: top-level key {section!r} must be a [section]")
            for key, value in values.items():
                _apply(settings, section, key, value, f"{p} [{section}] {key}")
        settings.source = str(p.resolve())
    for section, section_cls in _section_types(Settings).items():
        if section == "source":
            continue
        for key in _section_types(section_cls):
            name = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            if name in env:
                _apply(settings, section, key, env[name], f"${name}")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        _apply(settings, section, key, value, f"option {dotted}")
    return settings


def kafka_password(kafka: KafkaSettings, env: Mapping[str, str] | None = None) -> str | None:
    """Return the SASL password from its file or environment variable, never from the config.

    Returns None when no password is configured, which is right for PLAINTEXT.
    """
    env = os.environ if env is None else env
    if kafka.sasl_password_file:
        text = Path(kafka.sasl_password_file).read_text().splitlines()
        return text[0] if text else ""
    return env.get(kafka.sasl_password_env) or None


def dump_toml(settings: Settings) -> str:
    """Render the tree as an editable TOML file with one comment line per option."""
    lines = [
        "# Fink configuration. Precedence: this file < FINK_<SECTION>_<KEY> env < CLI flags.",
        "# Secrets are not stored here: name an environment variable or a file instead.",
    ]
    for section, section_cls in _section_types(Settings).items():
        if section == "source":
            continue
        obj = getattr(settings, section)
        lines += ["", f"[{section}]"]
        docs = _field_docs(section_cls)
        for f in dataclasses.fields(obj):
            if docs.get(f.name):
                lines.append(
                    f"# {docs[f.name]} (env {ENV_PREFIX}{section.upper()}_{f.name.upper()})"
                )
            lines.append(f"{f.name} = {_toml_value(getattr(obj, f.name))}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + "}"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _field_docs(section_cls: type) -> dict[str, str]:
    """Read the ``#:`` comments above each field, so the docs live next to the defaults."""
    import inspect

    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(section_cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
        elif ":" in stripped and pending and not stripped.startswith(("#", '"')):
            docs[stripped.split(":", 1)[0].strip()] = " ".join(pending)
            pending = []
        else:
            pending = []
    return docs
