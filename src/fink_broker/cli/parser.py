"""The command line of ``fink``: verbs, services and their flags (``fink <verb> -h``).

Kept apart from the commands (``cli/main.py``) so that each service's flags sit in one
small function next to the others, and the help text is built without running anything.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from fink_broker import __version__
from fink_broker.surveys.names import SURVEY_NAMES

DEFAULT_CONFIG = "fink.toml"


def _common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    # Sub-commands accept the same options after the verb; SUPPRESS keeps a value given
    # before the verb from being overwritten by the sub-parser's default.
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "-c",
        "--config",
        default=default,
        help=f"config file (default: $FINK_CONFIG, else ./{DEFAULT_CONFIG} if present)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO" if top else argparse.SUPPRESS,
        help="Python log level (default INFO)",
    )


def _service_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--foreground", action="store_true", help="run attached to this terminal")
    parser.add_argument(
        "--simulator",
        action="store_true",
        help="read from the local Kafka broker started by `fink start kafka`",
    )
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (kafka.bootstrap_servers)")
    parser.add_argument("--root", help="data root, local path or Hadoop URI (paths.root)")
    parser.add_argument("--master", help="Spark master (spark.master)")


def _stream2raw_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--survey", choices=SURVEY_NAMES, help="survey adapter")
    parser.add_argument("--topic", help="input topic (default: the survey's topic of the night)")
    parser.add_argument(
        "--trigger", help='"availableNow" (drain and exit) or a processing time, e.g. "2 seconds"'
    )
    parser.add_argument("--starting-offsets", choices=["earliest", "latest"])
    parser.add_argument("--max-offsets-per-trigger", type=int)


def _module_flags(parser: argparse.ArgumentParser) -> None:
    """The science modules' flags: raw2science's and the pipeline's."""
    parser.add_argument(
        "--noscience", action="store_true", default=None, help="quality cuts only, no module"
    )
    parser.add_argument("--modules", help="comma-separated modules to run (default: all)")
    parser.add_argument(
        "--failure-policy", choices=["fail", "null_and_count"], help="when a module raises"
    )


def _routing_flags(parser: argparse.ArgumentParser) -> None:
    """The filters' and outgoing messages' flags: distribution's and the pipeline's."""
    parser.add_argument("--filters", help="comma-separated filters to run (default: all)")
    parser.add_argument(
        "--no-cutouts",
        dest="cutouts",
        action="store_false",
        default=None,
        help="publish the alerts without their image cutouts",
    )


def _raw2science_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--survey", choices=SURVEY_NAMES, help="survey adapter")
    parser.add_argument(
        "--trigger", help='"availableNow" (drain and exit) or a processing time, e.g. "10 seconds"'
    )
    _module_flags(parser)


def _distribution_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--survey", choices=SURVEY_NAMES, help="survey adapter")
    parser.add_argument(
        "--trigger", help='"availableNow" (drain and exit) or a processing time, e.g. "10 seconds"'
    )
    _routing_flags(parser)
    parser.add_argument(
        "--failure-policy", choices=["fail", "null_and_count"], help="when a filter raises"
    )


def _pipeline_flags(parser: argparse.ArgumentParser) -> None:
    _stream2raw_flags(parser)
    _module_flags(parser)  # --failure-policy is the modules' (raw2science.failure_policy)
    _routing_flags(parser)
    parser.add_argument(
        "--archive",
        action="store_true",
        default=None,
        help="write the HBase archive in the same micro-batch (archive.in_pipeline)",
    )


def _kafka_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="client port (local_kafka.port)")
    parser.add_argument("--controller-port", type=int, help="KRaft controller port")
    parser.add_argument("--sasl", action="store_true", help="add a SASL/SCRAM listener (sasl_port)")


def _checkstream_flags(parser: argparse.ArgumentParser) -> None:
    from fink_broker.services import checkstream

    parser.add_argument("--survey", choices=SURVEY_NAMES, help="survey adapter")
    checkstream.add_arguments(parser)


def _hbase_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thrift-port", type=int, help="Thrift gateway port (hbase.thrift_port)")
    parser.add_argument(
        "--zookeeper-port", type=int, help="HBase's ZooKeeper port (local_hbase.zookeeper_port)"
    )


def _registry_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="HTTP port (local_registry.port)")


def _archive_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--survey", choices=SURVEY_NAMES, help="survey adapter")
    parser.add_argument(
        "--trigger", help='"availableNow" (drain and exit) or a processing time, e.g. "30 seconds"'
    )
    parser.add_argument(
        "--no-cutouts",
        dest="cutouts",
        action="store_false",
        default=None,
        help="do not store the image cutouts in HBase",
    )


def _api_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--survey",
        choices=SURVEY_NAMES,
        help="survey of the unprefixed /api/v1 routes (both are served under their names)",
    )
    parser.add_argument("--host", help="address to bind (api.host)")
    parser.add_argument("--port", type=int, help="port (api.port)")


def _dashboard_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (dashboard.host)")
    parser.add_argument("--port", type=int, help="port (dashboard.port)")
    parser.add_argument(
        "--api-url", help="REST API for cutouts and light curves (dashboard.api_url)"
    )


#: service -> (help, flag adder)
SERVICES: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "kafka": ("local single-node Kafka broker (KRaft) on 127.0.0.1", _kafka_flags),
    "stream2raw": ("Kafka alert stream -> decoded alerts -> raw Parquet", _stream2raw_flags),
    "raw2science": (
        "raw Parquet -> quality cuts -> science modules -> science Parquet",
        _raw2science_flags,
    ),
    "distribution": (
        "science Parquet -> filters -> one Kafka topic per filter",
        _distribution_flags,
    ),
    "pipeline": (
        "stream2raw, raw2science, distribution (and archive) in one Spark query: each "
        "alert decoded once, nothing read back from Parquet",
        _pipeline_flags,
    ),
    "checkstream": ("live view of a topic: rate, lag, last alerts", _checkstream_flags),
    "hbase": ("local standalone HBase and its Thrift gateway on 127.0.0.1", _hbase_flags),
    "registry": (
        "local Confluent-API schema registry (in memory) on 127.0.0.1",
        _registry_flags,
    ),
    "archive": ("science Parquet -> HBase main, index and cutout tables", _archive_flags),
    "api": ("REST API over the HBase archive (OpenAPI docs at /docs)", _api_flags),
    "dashboard": (
        "web page of the live pipeline: services, rates, lag, latency, latest alerts",
        _dashboard_flags,
    ),
}


#: the services with a streaming checkpoint (and so --reset-checkpoint)
CHECKPOINTED = ("stream2raw", "raw2science", "distribution", "archive", "pipeline")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each service has its own ``-h``."""
    parser = argparse.ArgumentParser(
        prog="fink",
        description="Fink alert broker: run and inspect its services.",
    )
    parser.add_argument("--version", action="version", version=f"fink {__version__}")
    _common(parser, top=True)
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>")

    init = verbs.add_parser("init", help="create the data root and write an editable config")
    _common(init)
    init.add_argument("--root", help="data root to create (paths.root)")
    init.add_argument("--force", action="store_true", help="overwrite an existing config file")
    init.add_argument(
        "--hbase", action="store_true", help="also create the HBase tables (HBase must run)"
    )

    start = verbs.add_parser("start", help="start a service")
    services = start.add_subparsers(dest="service", metavar="<service>")
    for name, (help_text, add_flags) in SERVICES.items():
        sub = services.add_parser(name, help=help_text, description=help_text)
        _common(sub)
        _service_flags(sub)
        add_flags(sub)
        if name in CHECKPOINTED:
            sub.add_argument(
                "--reset-checkpoint",
                action="store_true",
                help="start a new checkpoint (the old one is kept aside) when it no longer "
                "matches the archive: the input is read again, archived alerts are dropped",
            )

    stop = verbs.add_parser("stop", help="stop a service started by fink (or all of them)")
    _common(stop)
    stop.add_argument("service", help=f"one of {', '.join(SERVICES)} or all")
    stop.add_argument("--timeout", type=float, default=60.0, help="seconds before SIGKILL")

    show = verbs.add_parser("show", help="list running services with PID, uptime, CPU, memory")
    _common(show)

    modules = verbs.add_parser("modules", help="science modules: list what is installed")
    _common(modules)
    modules.add_argument("action", choices=["list"], help="list: modules with their columns")
    modules.add_argument("--survey", choices=SURVEY_NAMES, help="only modules for a survey")

    catalogs = verbs.add_parser(
        "catalogs", help="cross-match catalogues: list them, add or remove your own"
    )
    actions = catalogs.add_subparsers(dest="action", metavar="<action>", required=True)
    listing = actions.add_parser("list", help="built-in and local catalogues")
    _common(listing)
    add = actions.add_parser(
        "add",
        help="check a file (Parquet, CSV, FITS) and add it as a local catalogue",
        description=(
            "Check a catalogue file and add it: raw2science then matches each alert to its"
            " nearest entry within --radius (columns xm_NAME_id, xm_NAME_class,"
            " xm_NAME_sep_arcsec of the xmatch_local module), from the next start."
        ),
    )
    _common(add)
    add.add_argument("name", help="catalogue name: lower-case letters, digits, _")
    add.add_argument("file", help="Parquet, CSV or FITS file with a position per row")
    add.add_argument("--radius", type=float, required=True, help="match radius, arcsec")
    add.add_argument("--ra-col", default="ra", help="right ascension column, degrees (ra)")
    add.add_argument("--dec-col", default="dec", help="declination column, degrees (dec)")
    ids = add.add_mutually_exclusive_group()
    ids.add_argument("--id-col", default="id", help="identifier column (id)")
    ids.add_argument(
        "--no-id", dest="id_col", action="store_const", const=None, help="ids from positions"
    )
    classes = add.add_mutually_exclusive_group()
    classes.add_argument("--class-col", default="class", help="class column (class)")
    classes.add_argument(
        "--class",
        dest="default_class",
        help="one class for every row, instead of a class column",
    )
    add.add_argument("--description", default="", help="one line on what the catalogue holds")
    add.add_argument("--replace", action="store_true", help="replace a catalogue of that name")
    remove = actions.add_parser("remove", help="remove a local catalogue")
    _common(remove)
    remove.add_argument("name", help="catalogue name")

    filters = verbs.add_parser("filters", help="filters: list them, or dry-run one on a night")
    _common(filters)
    filters.add_argument("action", choices=["list", "test"])
    filters.add_argument("name", nargs="?", help="filter to test")
    filters.add_argument("--night", help="YYYYMMDD night of the science archive (test)")
    filters.add_argument("--survey", choices=SURVEY_NAMES, help="survey adapter")
    filters.add_argument("--root", help="data root (paths.root)")

    archive = verbs.add_parser(
        "archive", help="archive one past night into HBase, or rebuild the archive (bounded run)"
    )
    _common(archive)
    which = archive.add_mutually_exclusive_group(required=True)
    which.add_argument("--night", help="YYYYMMDD night of the science archive")
    which.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the survey's HBase tables and archive every night again (migration)",
    )
    archive.add_argument("--survey", choices=SURVEY_NAMES, help="survey adapter")
    archive.add_argument("--root", help="data root (paths.root)")
    archive.add_argument("--master", help="Spark master (spark.master)")
    archive.add_argument(
        "--no-cutouts", dest="cutouts", action="store_false", default=None, help="skip cutouts"
    )

    cluster = verbs.add_parser(
        "cluster",
        help="a local Spark standalone, Kafka and HDFS cluster: start, stop, show, pack",
        description=(
            "start: a Spark master and workers, replicated Kafka brokers and an HDFS "
            "NameNode and DataNode on 127.0.0.1, then point the config file (-c, default "
            f"./{DEFAULT_CONFIG}) at them; the services run there with the usual commands. "
            "pack: the Python environment the services send to executors."
        ),
    )
    _common(cluster)
    cluster.add_argument("action", choices=["start", "stop", "show", "pack"])
    cluster.add_argument(
        "--state-dir", help="run state, logs and the cluster's data (paths.state_dir)"
    )
    cluster.add_argument("--timeout", type=float, default=60.0, help="seconds before SIGKILL")

    sim = verbs.add_parser("simulator", help="replay alert files into Kafka")
    _common(sim)
    from fink_broker.simulator import cli as simulator_cli

    simulator_cli.add_arguments(sim)

    datasim = verbs.add_parser("datasim", help="real alerts of a past night for the simulator")
    from fink_broker.datasim import night as datasim_night

    _common(datasim_night.add_arguments(datasim))

    consume = verbs.add_parser("consume", help="read Fink topics: print or save the alerts")
    _common(consume)
    from fink_broker.services import consume as consume_service

    consume_service.add_arguments(consume)
    return parser
