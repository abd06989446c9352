"""The ``fink`` command: parse -> settings -> service.

Verbs: ``init``, ``start <service>``, ``stop <service|all>``, ``show``, ``modules``,
``catalogs``, ``filters``, ``archive``, ``simulator``, ``datasim``, ``consume``, ``cluster``
(parser: ``cli/parser.py``; ``cluster``: ``cli/cluster.py``).
Services run in the background with a PID file and a log file (``--foreground`` keeps them
attached); ``stop`` only ever signals processes recorded in Fink's own PID files.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fink_broker.cli.parser import DEFAULT_CONFIG, build_parser
from fink_broker.config import ConfigError, Settings, dump_toml, load_settings
from fink_broker.errors import FinkError
from fink_broker.lake import Lake

log = logging.getLogger("fink")

#: set in the environment of a service that `fink start` launched in the background, so the
#: child does not register itself a second time
SUPERVISED_ENV = "FINK_SUPERVISED"


if TYPE_CHECKING:
    from fink_broker.surveys.base import SurveyAdapter


def _config_path(args: argparse.Namespace) -> str | None:
    if args.config:
        return args.config
    if os.environ.get("FINK_CONFIG"):
        return os.environ["FINK_CONFIG"]
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None


def _section_of(args: argparse.Namespace) -> str:
    """The config section a service's own flags (e.g. --trigger) belong to."""
    service = getattr(args, "service", None) or getattr(args, "verb", None)
    return service if service in ("raw2science", "distribution", "archive") else "stream2raw"


#: the setting that a service's --port flag sets
_PORT_OF = {
    "kafka": "local_kafka.port",
    "api": "api.port",
    "dashboard": "dashboard.port",
    "registry": "local_registry.port",
}
#: the setting that a service's --host flag sets
_HOST_OF = {"dashboard": "dashboard.host"}


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Layer the flags of ``args`` over the config file and environment."""
    section = _section_of(args)
    flags: dict[str, Any] = {
        "paths.root": getattr(args, "root", None),
        "paths.state_dir": getattr(args, "state_dir", None),
        "spark.master": getattr(args, "master", None),
        "kafka.bootstrap_servers": getattr(args, "bootstrap", None),
        "stream2raw.survey": getattr(args, "survey", None),
        "stream2raw.topic": getattr(args, "topic", None),
        f"{section}.trigger": getattr(args, "trigger", None),
        "raw2science.noscience": getattr(args, "noscience", None),
        "raw2science.modules": getattr(args, "modules", None),
        f"{'distribution' if section == 'distribution' else 'raw2science'}.failure_policy": (
            getattr(args, "failure_policy", None)
        ),
        "distribution.filters": getattr(args, "filters", None),
        "archive.in_pipeline": getattr(args, "archive", None),
        f"{section if section == 'archive' else 'distribution'}.cutouts": getattr(
            args, "cutouts", None
        ),
        "stream2raw.starting_offsets": getattr(args, "starting_offsets", None),
        "stream2raw.max_offsets_per_trigger": getattr(args, "max_offsets_per_trigger", None),
        _PORT_OF.get(getattr(args, "service", None) or "", "local_kafka.port"): getattr(
            args, "port", None
        ),
        "local_kafka.controller_port": getattr(args, "controller_port", None),
        "hbase.thrift_port": getattr(args, "thrift_port", None),
        "local_hbase.zookeeper_port": getattr(args, "zookeeper_port", None),
        _HOST_OF.get(getattr(args, "service", None) or "", "api.host"): getattr(args, "host", None),
        "dashboard.api_url": getattr(args, "api_url", None),
    }
    settings = load_settings(_config_path(args), overrides=flags)
    if getattr(args, "simulator", False):
        from fink_broker.infra.local_cluster import local_bootstrap

        settings.kafka.bootstrap_servers = local_bootstrap(settings)
        settings.kafka.security_protocol = "PLAINTEXT"
    return settings


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)


def cmd_init(args: argparse.Namespace) -> int:
    """Create the data root folders and write the config file."""
    path = Path(args.config or DEFAULT_CONFIG)
    settings = settings_from_args(args) if path.exists() and not args.force else None
    if settings is None:
        settings = load_settings(None, env={}, overrides={"paths.root": args.root})
        if path.exists() and not args.force:
            raise ConfigError(f"{path} exists; use --force to overwrite")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_toml(settings))
        print(f"wrote {path}")
    else:
        print(f"kept existing {path} (use --force to rewrite it)")
    from fink_broker.surveys import SURVEYS

    created = []
    for survey in SURVEYS:
        created += Lake(settings.paths.root, survey).local_folders()
    for folder in [*created, Path(settings.paths.state_dir)]:
        folder.mkdir(parents=True, exist_ok=True)
    root = settings.paths.root
    print(f"data root {root}: raw/ science/ checkpoints/ quarantine/ logs/ ready")
    if args.hbase:
        from fink_broker.services.archive import create_tables

        for survey in SURVEYS:
            made = create_tables(settings, survey)
            print(f"HBase tables of {survey}: {', '.join(made) if made else 'already there'}")
    return 0


def _service_argv(args: argparse.Namespace, config: str | None, argv: Sequence[str]) -> list[str]:
    """The command line of the background child: the same flags, plus --foreground."""
    out = [sys.executable, "-m", "fink_broker.cli.main", *argv]
    if "--foreground" not in out:
        out.append("--foreground")
    if config and "-c" not in argv and "--config" not in argv:
        out += ["-c", str(Path(config).absolute())]
    return out


def cmd_start(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Start a service in the background (default) or in the foreground."""
    from fink_broker.infra import processes

    if not args.service:
        build_parser().parse_args(["start", "-h"])
    settings = settings_from_args(args)
    if args.service == "kafka":
        from fink_broker.infra.kafka_local import start_kafka

        record = start_kafka(settings, foreground=args.foreground, sasl=args.sasl)
        if not args.foreground:
            print(f"kafka running: pid {record.pid}, 127.0.0.1:{settings.local_kafka.port}")
        return 0
    if args.service == "hbase":
        from fink_broker.infra.hbase_local import start_hbase

        records = start_hbase(settings, foreground=args.foreground)
        pids = ", ".join(f"{r.name} {r.pid}" for r in records)
        print(f"hbase running: pids {pids}, Thrift 127.0.0.1:{settings.hbase.thrift_port}")
        return 0
    if args.service == "registry":
        from fink_broker.infra.registry_local import registry_url, start_registry

        record = start_registry(settings, foreground=args.foreground)
        print(f"registry running: pid {record.pid}, Confluent API {registry_url(settings)}")
        return 0

    from fink_broker.surveys import build_survey

    # the survey, built once from the settings (its schemas, registry and cuts), for every
    # service this command starts
    survey = build_survey(settings)
    supervised = os.environ.get(SUPERVISED_ENV) == args.service
    if not args.foreground:
        state = Path(settings.paths.state_dir)
        log_path = state / "logs" / f"{args.service}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        record = processes.start_background(
            args.service,
            _service_argv(args, _config_path(args), argv),
            settings=settings,
            env={**os.environ, SUPERVISED_ENV: args.service},
            log_path=log_path,
            **_where(args, settings, survey),
        )
        print(f"{args.service} running: pid {record.pid}, log {log_path}")
        if args.service == "dashboard":
            from fink_broker.dashboard.server import announce

            return announce(settings, record)
        return 0
    if not supervised:
        processes.register_foreground(
            args.service, settings=settings, **_where(args, settings, survey)
        )
    return _run_service(args, settings, survey)


def _where(args: argparse.Namespace, settings: Settings, survey: SurveyAdapter) -> dict[str, list]:
    """What `fink show` lists for a service: the API's port, the others' input topic."""
    if args.service == "api":
        return {"ports": [settings.api.port], "topics": []}
    if args.service == "dashboard":
        return {"ports": [settings.dashboard.port], "topics": []}
    if args.service == "archive":
        return {"ports": [], "topics": []}
    return {"ports": [], "topics": [_topic_of(args, settings, survey)]}


def _topic_of(args: argparse.Namespace, settings: Settings, survey: SurveyAdapter) -> str:
    from fink_broker.services.streaming import input_topic

    if getattr(args, "topic", None):
        return args.topic
    return input_topic(settings, survey)


def _run_service(args: argparse.Namespace, settings: Settings, survey: SurveyAdapter) -> int:
    from fink_broker.services.supervision import supervise

    streaming = {"stream2raw", "raw2science", "distribution", "archive", "pipeline"}
    if args.service in streaming:
        module = importlib.import_module(f"fink_broker.services.{args.service}")
        reset = [bool(getattr(args, "reset_checkpoint", False))]

        def body() -> None:
            # --reset-checkpoint applies to the first start only, not to the restarts
            first, reset[0] = reset[0], False
            module.run(settings, survey, reset_checkpoint=first)

        # a failed query is started again from its checkpoint (services.supervision)
        supervise(args.service, settings, body)
        return 0
    if args.service == "checkstream":
        from fink_broker.services import checkstream

        return checkstream.run_from_args(args, settings, survey) or 0
    if args.service == "api":
        from fink_broker.api.server import serve

        serve(settings)  # the API builds the adapters of the surveys it serves
        return 0
    if args.service == "dashboard":
        from fink_broker.dashboard.server import serve as serve_dashboard

        serve_dashboard(settings)
        return 0
    raise ValueError(f"unknown service {args.service}")


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop one service or all, gracefully first, by PID file only: the services before the
    systems they write to (``infra.shutdown``)."""
    from fink_broker.infra import processes
    from fink_broker.infra.shutdown import stop_in_order

    settings = settings_from_args(args)
    targets = (
        [r.name for r in processes.running(settings)] if args.service == "all" else [args.service]
    )
    status = 0
    for name, stopped in stop_in_order(settings, targets, timeout=args.timeout).items():
        if stopped:
            print(f"stopped {name}")
        else:
            print(f"{name} is not running (no live PID file)")
            status = 1 if args.service != "all" else status
    return status


def cmd_show(args: argparse.Namespace) -> int:
    """Table of running services: PID, start time, uptime, CPU, memory, ports or topics."""
    from fink_broker.infra import processes
    from fink_broker.services.supervision import restarts_since

    settings = settings_from_args(args)
    records = processes.running(settings)
    if not records:
        print("no Fink service is running")
        return 0
    print(
        f"{'service':<16} {'pid':>7} {'started':<20} {'uptime':>9} {'cpu%':>6} {'rss MiB':>8}"
        f" {'restarts':>8}  ports/topics"
    )
    for record in records:
        use = processes.usage(record)
        where = ", ".join(
            [f"127.0.0.1:{p}" for p in record.ports] + [f"topic {t}" for t in record.topics]
        )
        restarts = restarts_since(settings, record.name, record.started_at)
        print(
            f"{record.name:<16} {record.pid:>7} {record.started_at[:19]:<20} "
            f"{_duration(use['uptime_s']):>9} {use['cpu_percent']:>6.1f} "
            f"{use['rss_mib']:>8.0f} {restarts:>8}  {where}"
        )
    return 0


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}"


def cmd_modules(args: argparse.Namespace) -> int:
    """List the installed science modules with their versions, inputs and output columns,
    and the cross-match of the local catalogues (``fink catalogs add``), if any."""
    from fink_broker.plugins import describe_modules, discover, modules_for
    from fink_broker.science.local_catalogues import local_module

    modules = discover()
    local = local_module(settings_from_args(args))
    if local is not None:
        modules[local.name] = local
    if args.survey:
        modules = {m.name: m for m in modules_for(args.survey, modules)}
    print(describe_modules(modules))
    return 0


def cmd_catalogs(args: argparse.Namespace) -> int:
    """List the cross-match catalogues; add or remove a local one."""
    from fink_broker.science import catalogues
    from fink_broker.science import local_catalogues as local

    folder = local.catalogue_dir(settings_from_args(args))
    if args.action == "add":
        class_col = None if args.default_class is not None else args.class_col
        entry = local.add(
            folder,
            args.name,
            Path(args.file),
            args.radius,
            ra_col=args.ra_col,
            dec_col=args.dec_col,
            id_col=args.id_col,
            class_col=class_col,
            default_class=args.default_class or "",
            description=args.description,
            replace=args.replace,
        )
        print(
            f"added {entry.name}: {entry.rows} rows, radius {entry.radius_arcsec:g} arcsec,"
            f" {entry.file}"
        )
        print(
            f"raw2science adds xm_{entry.name}_id, xm_{entry.name}_class and"
            f" xm_{entry.name}_sep_arcsec ({local.MODULE_NAME}) from its next start"
        )
        return 0
    if args.action == "remove":
        entry = local.remove(folder, args.name)
        print(f"removed {entry.name} ({entry.rows} rows); raw2science drops it at its next start")
        return 0
    print("built-in (module xmatch):")
    for c in catalogues.default_catalogues():
        where = "NOT INSTALLED" if c.missing_files() else "installed"
        print(f'  {c.name:<12} {c.radius_arcsec:>7g}"  {where:<13} {c.description}')
    entries = local.registered(folder)
    header = f"local (module {local.MODULE_NAME}, {folder}):"
    print(header if entries else f"local: none in {folder}")
    for e in entries:
        text = e.description or e.source
        print(f'  {e.name:<12} {e.radius_arcsec:>7g}"  {e.rows:>9} rows  {text}')
    return 0


def cmd_filters(args: argparse.Namespace) -> int:
    """List the installed filters, or count how many alerts of a night one would pass."""
    from fink_broker.plugins.filters import describe_filters, discover_filters, filters_for

    settings = settings_from_args(args)
    if args.action == "list":
        found = discover_filters()
        if args.survey:
            found = {f.name: f for f in filters_for(args.survey, found)}
        print(describe_filters(found))
        return 0
    if not args.name or not args.night:
        raise ConfigError("fink filters test needs a filter name and --night YYYYMMDD")
    from fink_broker.services.distribution import dry_run
    from fink_broker.surveys import build_survey

    survey = build_survey(settings)
    passed, total = dry_run(settings, args.name, args.night, survey)
    print(f"{args.name}: {passed} of {total} {survey.name} alerts of night {args.night} pass")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    """Archive one past night of the science archive into HBase, in one bounded run; or
    (``--rebuild``) drop the survey's tables and archive every night again."""
    from fink_broker.services.archive import archive_night, rebuild
    from fink_broker.surveys import build_survey

    settings = settings_from_args(args)
    adapter = build_survey(settings)
    survey = adapter.name
    nights = (
        rebuild(settings, survey=adapter)
        if args.rebuild
        else {args.night: archive_night(settings, args.night, survey=adapter)}
    )
    for night, written in nights.items():
        rows = ", ".join(f"{table} {n}" for table, n in sorted(written.items()))
        print(f"archived night {night} of {survey}: {rows or 'no alert'}")
    if args.rebuild:
        print(f"rebuilt the {survey} archive from {len(nights)} night(s)")
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    """Replay alert files into Kafka (same as `fink_simulator`)."""
    from fink_broker.simulator import cli as simulator_cli

    settings = load_settings(_config_path(args))
    return simulator_cli.run_from_args(args, settings) or 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fink`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 0
    _setup_logging(args.log_level)
    try:
        if args.verb == "init":
            return cmd_init(args)
        if args.verb == "start":
            return cmd_start(args, argv)
        if args.verb == "stop":
            return cmd_stop(args)
        if args.verb == "show":
            return cmd_show(args)
        if args.verb == "filters":
            return cmd_filters(args)
        if args.verb == "modules":
            return cmd_modules(args)
        if args.verb == "catalogs":
            return cmd_catalogs(args)
        if args.verb == "simulator":
            return cmd_simulator(args)
        if args.verb == "archive":
            return cmd_archive(args)
        if args.verb == "datasim":
            from fink_broker.datasim import night

            return night.run_from_args(args, settings_from_args(args))
        if args.verb == "cluster":
            from fink_broker.cli.cluster import cmd_cluster

            return cmd_cluster(args, settings_from_args(args), _config_path(args))
        if args.verb == "consume":
            from fink_broker.services import consume

            return consume.run_from_args(args, settings_from_args(args))
    except ConfigError as err:
        print(f"fink: config error: {err}", file=sys.stderr)
        return 2
    except FinkError as err:
        # expected operational failures: a message, not a traceback
        print(f"fink: {err}", file=sys.stderr)
        return 1
    parser.error(f"unknown verb {args.verb}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
