"""The Docker image and docker-compose.yml, which CI cannot build or run (no Docker engine):
linted by hadolint and validated by docker-compose, and held to the README's set-up, the
config's defaults and fink's own command line."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from fink_broker.cli.parser import SERVICES, build_parser
from fink_broker.config import load_settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
README = (REPO / "README.md").read_text()
SETUP = (REPO / "scripts" / "setup.sh").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_docker_compose_validates_the_file() -> None:
    out = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr


def test_the_image_runs_the_readme_set_up() -> None:
    steps = instructions()
    runs = [args for kind, args in steps if kind == "RUN"]
    setup = [r for r in runs if "scripts/setup.sh" in r]
    assert len(setup) == 1, "the image sets itself up with setup.sh, once"
    command = setup[0].split("&&")[0].strip()
    assert command == "bash scripts/setup.sh --runtime"
    # the README names that command, and the developers' one, in its set-up
    assert "bash scripts/setup.sh --runtime" in README and "bash scripts/setup.sh\n" in README
    assert "--runtime)" in SETUP, "setup.sh accepts --runtime"
    kinds = [kind for kind, _ in steps]
    assert kinds.index("COPY") < kinds.index("RUN", kinds.index("COPY")), "set-up after COPY"
    # the image brings only what setup.sh expects to find: Python of the version setup.sh
    # and pyproject ask for; Java and Maven are setup.sh's to install, in one place
    python = re.search(r"PYTHON=\$\{PYTHON:-(python3\.\d+)\}", SETUP).group(1)
    first = runs[0]
    assert f" {python} " in f" {first} " and f"{python}-venv" in first
    requires = re.search(r'requires-python = ">=(3\.\d+)"', (REPO / "pyproject.toml").read_text())
    assert python == f"python{requires.group(1)}"
    assert f"Python {requires.group(1)}" in README
    for installed_by_setup in ("openjdk", "maven"):
        assert installed_by_setup in SETUP and installed_by_setup not in DOCKERFILE.read_text()
    assert "Java 17" in README and "openjdk-17" in SETUP


def test_the_image_settings_are_real_options_with_their_ports() -> None:
    steps = instructions()
    env = {}
    for kind, args in steps:
        if kind == "ENV":
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                env[key] = value
    fink_env = {k: v for k, v in env.items() if k.startswith("FINK_")}
    assert fink_env, "the image sets its paths through FINK_* variables"
    settings = load_settings(None, env=fink_env)  # an unknown FINK_ option is an error
    assert settings.paths.root == "/data/fink" and settings.paths.state_dir == "/data/state"
    exposed = {int(p) for kind, args in steps if kind == "EXPOSE" for p in args.split()}
    defaults = load_settings(None, env={})
    assert exposed == {defaults.api.port, defaults.dashboard.port, defaults.local_kafka.port}
    assert ("ENTRYPOINT", '["fink"]') in steps
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "jvm-cache", ".fink", ".git"} <= set(ignored)


def test_compose_runs_every_service_with_commands_fink_accepts() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    started = set()
    parser = build_parser()
    for name, service in services.items():
        command = service["command"]
        args = parser.parse_args(command)  # exits (fails the test) on a wrong flag
        if args.verb == "start":
            assert args.service in SERVICES and args.foreground, name
            started.add(args.service)
        for key in service.get("environment", {}):
            assert key.startswith("FINK_"), key
        load_settings(None, env={k: str(v) for k, v in service.get("environment", {}).items()})
        assert service["network_mode"] == "host" and service["pid"] == "host", name
    # checkstream is a console; the local registry is for tests and trials (in memory, no
    # auth, built with cargo, which the runtime image does not install): a deployment
    # points stream2raw.schema_registry_url at the survey's registry; the one-pass
    # pipeline runs the four stages in one process: a stack runs them apart, or it alone
    assert started == set(SERVICES) - {"checkstream", "registry", "pipeline"}
    assert any(s.get("build") == "." for s in services.values())


def test_the_readme_says_the_image_is_not_built_in_ci() -> None:
    section = README[README.index("## Docker") :]
    assert re.search(r"not built in CI", section)
    assert "docker build" in section and "docker-compose up" in section


def test_setup_refuses_an_unknown_option() -> None:
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh"), "--bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "unknown option" in out.stderr
