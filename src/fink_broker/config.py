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
    #: cache of the JVM jars resolved from Maven Central (Kafka broker, Spark connectors)
    jar_cache: str = "jvm-cache"


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
    #: Rubin: schema ids (registry convention major*100+minor) accepted on the wire
    rubin_schema_ids: list[int] = field(default_factory=lambda: [900])


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
class ArchiveSettings:
    """Science Parquet -> HBase main table, index tables and cutouts."""

    #: "availableNow" archives what the science archive holds and exits; else a processing time
    trigger: str = "30 seconds"
    #: upper bound of science Parquet files per micro-batch
    max_files_per_trigger: int = 50
    #: store the image cutouts in HBase (one row per alert, retrievable by alert id)
    cutouts: bool = True


@dataclass
class ApiSettings:
    """The REST API over the HBase archive (`fink start api`)."""

    #: address the API binds to (127.0.0.1: this machine only)
    host: str = "127.0.0.1"
    #: port of the API
    port: int = 8000
    #: largest cone-search radius accepted, in arcsec (5 degrees, as Fink's API)
    max_radius_arcsec: float = 18000.0
    #: most object ids accepted in one /objects request
    max_objects: int = 100
    #: most alerts one /latests, /conesearch or /sso answer returns
    max_results: int = 10000


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
class Settings:
    """The whole configuration tree."""

    paths: PathsSettings = field(default_factory=PathsSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    local_kafka: LocalKafkaSettings = field(default_factory=LocalKafkaSettings)
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
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    checkstream: CheckstreamSettings = field(default_factory=CheckstreamSettings)
    #: the config file this tree was read from, if any
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the tree (secrets are never part of it)."""
        data = dataclasses.asdict(self)
        data.pop("source", None)
        return data


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
