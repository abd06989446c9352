"""``fink_test``: run the test suite of a Fink checkout, and print its coverage.

The suite is the README's: ``ruff check`` and ``ruff format --check``, then pytest over
``tests/`` (unit, spark, integration, e2e) and the doctests of ``src/``, with coverage of
``fink_broker`` at the end (pytest-cov). ``--without-integration`` keeps the tiers that
need no JVM, the ones a laptop without Java runs in a minute: no test marked ``spark`` or
``integration`` (``tests/conftest.py`` marks every test of tests/spark, tests/integration
and tests/e2e, and every test using a Spark, Kafka or HBase fixture), and the run refuses
to start a JVM (:mod:`fink_broker.testing.no_jvm`), so a test that would need one fails
instead of passing unnoticed. ``--integration-only`` runs the other tiers; CI runs the two
halves, which together are the whole suite.

Arguments after the options go to pytest (``fink_test -k dashboard -x``). The exit code
is ruff's when lint fails, else pytest's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import fink_broker

#: the pytest selection of the tiers without a JVM, and of the others
WITHOUT_JVM = "not spark and not integration"
JVM_ONLY = "spark or integration"
LINTED = ("src", "tests", "benchmarks")


class NotACheckout(RuntimeError):
    """fink_test needs the tests of a source checkout, which an installed wheel lacks."""


def _is_checkout(folder: Path) -> bool:
    project = folder / "pyproject.toml"
    if not (project.is_file() and (folder / "tests").is_dir()):
        return False
    try:
        return tomllib.loads(project.read_text()).get("project", {}).get("name") == "fink-broker"
    except (OSError, tomllib.TOMLDecodeError):
        return False


def repo_root(start: Path, package: Path | None = None) -> Path:
    """The checkout to test: ``start`` or a parent of it, else the one this package was
    installed from in editable mode (``src/fink_broker`` -> the checkout)."""
    for folder in [start, *start.parents]:
        if _is_checkout(folder):
            return folder
    package = package or Path(fink_broker.__file__).resolve().parent
    if package.parent.name == "src" and _is_checkout(package.parent.parent):
        return package.parent.parent
    raise NotACheckout(
        f"no Fink checkout at {start} or above, and fink_broker ({package}) is not installed "
        "from one: fink_test runs the tests/ of a source checkout (git clone, then "
        "bash scripts/setup.sh)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fink_test",
        allow_abbrev=False,  # pytest options (--cov-append, -k) pass through untouched
        description=(
            "Run Fink's test suite (ruff, then pytest over tests/ and the doctests of src/) "
            "and print the coverage of fink_broker. Unknown arguments go to pytest."
        ),
    )
    tiers = parser.add_mutually_exclusive_group()
    tiers.add_argument(
        "--without-integration",
        action="store_true",
        help="only the tiers that need no Kafka, Spark or HBase (no JVM may start)",
    )
    tiers.add_argument(
        "--integration-only",
        action="store_true",
        help="only the tiers that need a JVM (spark, integration, e2e)",
    )
    parser.add_argument("--no-lint", action="store_true", help="skip ruff")
    parser.add_argument("--no-cov", action="store_true", help="do not measure coverage")
    return parser


def pytest_command(args: argparse.Namespace, extra: Sequence[str]) -> list[str]:
    """The pytest command line of a run.

    >>> cmd = pytest_command(build_parser().parse_args(["--without-integration"]), ["-x"])
    >>> cmd[3:7]
    ['-m', 'not spark and not integration', '-p', 'fink_broker.testing.no_jvm']
    >>> cmd[7:]
    ['--cov=fink_broker', '--cov-report=term', '-x']
    """
    command = [sys.executable, "-m", "pytest"]
    if args.without_integration:
        command += ["-m", WITHOUT_JVM, "-p", "fink_broker.testing.no_jvm"]
    elif args.integration_only:
        command += ["-m", JVM_ONLY]
    if not args.no_cov:
        command += ["--cov=fink_broker", "--cov-report=term"]
    return [*command, *extra]


def _ruff() -> str:
    """The ruff next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else (shutil.which("ruff") or "ruff")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fink_test`` console script."""
    args, extra = build_parser().parse_known_args(argv)
    try:
        root = repo_root(Path.cwd())
    except NotACheckout as err:
        print(f"fink_test: {err}", file=sys.stderr)
        return 2
    if not args.no_lint:
        ruff = _ruff()
        for lint in ([ruff, "check", *LINTED], [ruff, "format", "--check", *LINTED]):
            done = subprocess.run(lint, cwd=root, check=False)
            if done.returncode:
                return done.returncode
    command = pytest_command(args, extra)
    print(f"fink_test: {' '.join(command[1:])} (in {root})", flush=True)
    return subprocess.run(command, cwd=root, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
