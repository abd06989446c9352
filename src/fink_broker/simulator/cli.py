"""``fink_simulator`` / ``fink simulator``: replay alert files into Kafka from the shell.

The lead's ``fink`` CLI calls :func:`add_arguments` on its subparser and
:func:`run_from_args` with the settings it loaded; ``fink_simulator`` (:func:`main`) does the
same with its own ``-c/--config``. Secrets never come from here: SASL passwords are read by
``fink_broker.config.kafka_password`` from the environment or a file.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from pathlib import Path

from fink_broker.config import ConfigError, Settings, load_settings
from fink_broker.simulator.bad_messages import INJECTION_KINDS
from fink_broker.simulator.kafka_producer import COMPRESSIONS
from fink_broker.simulator.replay import Injection, Progress, replay
from fink_broker.surveys import SURVEYS, build_survey

log = logging.getLogger(__name__)

#: exit codes: 0 all delivered, 1 delivery or Kafka failure, 2 bad usage or config
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser, *, with_config: bool = False) -> None:
    """Add the simulator options to ``parser``.

    ``-c/--config`` is added only on request: under ``fink`` it is a global option, and a
    subparser default would overwrite the value parsed by the parent parser.
    """
    if with_config:
        parser.add_argument("-c", "--config", help="TOML config file (default: $FINK_CONFIG)")
    parser.add_argument(
        "--survey", choices=SURVEYS, help="survey adapter (default: stream2raw.survey)"
    )
    parser.add_argument(
        "--datasim",
        metavar="FOLDER",
        help="folder of alert files (Avro container files, one alert or several each) "
        "(default: simulator.datasim)",
    )
    parser.add_argument(
        "--topic",
        help="topic to write to (default: simulator.topic, else the survey's default topic)",
    )
    parser.add_argument(
        "--nalerts",
        type=_non_negative_int,
        help="alerts to send (default: every file times --repeat)",
    )
    parser.add_argument(
        "--nbatches",
        type=_positive_int,
        default=1,
        help="split the alerts into this many batches (default: 1)",
    )
    parser.add_argument(
        "--interval",
        type=_non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="batch i starts at i * interval seconds (default: 0)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        metavar="ALERTS_PER_S",
        help="pace messages to this rate instead of batches",
    )
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        help="replay the folder N times with fresh, unique ids and distinct cutout pixels"
        " (default: 1)",
    )
    parser.add_argument(
        "--same-cutouts",
        action="store_true",
        help="repeat copies keep the original cutout bytes (faster to encode, but the "
        "archive then compresses repeated stamps: not a realistic load)",
    )
    parser.add_argument(
        "--schema-version",
        metavar="V",
        help="re-shape every alert into this version of the survey's schema (ZTF 3.3, 4.02; "
        "Rubin 7.4, 9.0, 10.0, 11.1...) instead of sending it as published: fields the file "
        "lacks get their default, null, or a zero, and are named in the log",
    )
    parser.add_argument(
        "--partitions",
        type=_positive_int,
        help="partitions of the topic if created (default: simulator.partitions)",
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (overrides kafka.bootstrap_servers)",
    )
    parser.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="none",
        help="producer compression codec (default: none, as the surveys)",
    )
    parser.add_argument(
        "--inject-garbage",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="interleave N messages of random bytes",
    )
    parser.add_argument(
        "--inject-truncated",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="interleave N real alerts cut at a random length",
    )
    parser.add_argument(
        "--inject-unknown-schema",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="Rubin: interleave N alerts with an unknown schema id",
    )
    parser.add_argument(
        "--inject",
        action="append",
        type=_injection,
        default=[],
        metavar="KIND=N",
        help=f"interleave N bad messages of KIND, repeatable ({', '.join(INJECTION_KINDS)})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the injected messages (default: 0)"
    )
    parser.add_argument(
        "--skip",
        type=int,
        default=0,
        help="leave out the first N alerts of the repeated sequence: go on where an earlier "
        "replay of N alerts stopped, with new ids (default: 0)",
    )


def _injection(text: str) -> Injection:
    """``KIND=N`` of ``--inject``."""
    kind, sep, count = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KIND=N, got {text!r}")
    try:
        return Injection(kind, _non_negative_int(count))  # type: ignore[arg-type]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _print_progress(state: Progress) -> None:
    print(state.format(), file=sys.stderr, flush=True)


def run_from_args(args: argparse.Namespace, settings: Settings) -> int:
    """Run a replay from parsed options; print the summary; return the exit code."""
    if args.bootstrap:
        settings = copy.deepcopy(settings)  # the caller's tree stays as loaded
        settings.kafka.bootstrap_servers = args.bootstrap
    folder = args.datasim or settings.simulator.datasim
    if not folder:
        print(
            "fink simulator: no alert folder: pass --datasim FOLDER or set [simulator] "
            "datasim (env FINK_SIMULATOR_DATASIM)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not Path(folder).is_dir():
        print(f"fink simulator: alert folder {folder} does not exist", file=sys.stderr)
        return EXIT_USAGE
    inject = [
        Injection("garbage", args.inject_garbage),
        Injection("truncated", args.inject_truncated),
        Injection("unknown_schema", args.inject_unknown_schema),
        *args.inject,
    ]
    from confluent_kafka import KafkaException

    try:
        survey = build_survey(settings, args.survey)
        summary = replay(
            settings,
            survey=survey,
            folder=folder,
            topic=args.topic,
            nalerts=args.nalerts,
            nbatches=args.nbatches,
            interval=args.interval,
            rate=args.rate,
            repeat=args.repeat,
            partitions=args.partitions,
            inject=inject,
            seed=args.seed,
            skip=args.skip,
            compression=args.compression,
            same_cutouts=args.same_cutouts,
            schema_version=args.schema_version,
            progress=_print_progress,
        )
    except (ValueError, ConfigError) as err:
        print(f"fink simulator: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaException as err:
        print(
            f"fink simulator: Kafka at {settings.kafka.bootstrap_servers}: {err}", file=sys.stderr
        )
        return EXIT_FAILED
    print(summary.format())
    return EXIT_OK if summary.ok else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    """The ``fink_simulator`` parser (``-c`` plus :func:`add_arguments`)."""
    parser = argparse.ArgumentParser(
        prog="fink_simulator",
        description="Replay a folder of alert files into a Kafka topic, as the survey "
        "publishes them (ZTF: Avro container per message; Rubin: Confluent wire format).",
    )
    add_arguments(parser, with_config=True)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fink_simulator``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings(args.config)
    except ConfigError as err:
        print(f"fink simulator: {err}", file=sys.stderr)
        return EXIT_USAGE
    return run_from_args(args, settings)


if __name__ == "__main__":
    sys.exit(main())
