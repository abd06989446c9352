"""A Confluent-API schema registry on 127.0.0.1, for the tests and for the laptop case.

Rubin frames its alerts the Confluent way (a magic byte and a 4-byte schema id before the
Avro body), and clients that decode such a stream ask a schema registry for the id. This runs
a real one, ``rivven-schema serve`` (:mod:`fink_broker.infra.crates` builds it once into the
jar cache), so that a Rubin-like stream can be tried end to end without the survey's
registry. Its REST API is Confluent's at the root of ``http://127.0.0.1:<port>``
(``POST /subjects/<s>/versions``, ``GET /schemas/ids/<id>``, ``/config``, ``/compatibility``…).

The storage is in memory: schemas and ids live as long as the process, which is what a test
wants and what a local try needs (a fresh registry numbers its schemas 1, 2, …). The binary
takes no credentials: its command line offers no authentication, so the registry only ever
listens on loopback. Like the other local servers it is recorded in a PID file (``fink
show`` lists it, ``fink stop registry`` stops it) and logs to ``<state_dir>/logs/``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from fink_broker.config import Settings
from fink_broker.errors import FinkError
from fink_broker.infra import processes
from fink_broker.infra.crates import registry_binary
from fink_broker.infra.ports import port_in_use
from fink_broker.infra.processes import log_tail

log = logging.getLogger(__name__)

SERVICE = "registry"
#: seconds to wait for the first health answer (measured: it answers 15-60 ms after the spawn)
READY_TIMEOUT_S = 30.0
#: the media type of Confluent's REST API, for requests and answers
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryStartError(FinkError):
    """The local registry could not be started or did not answer."""


def registry_url(settings: Settings) -> str:
    """Base URL of the local registry's Confluent REST API (no trailing slash)."""
    return f"http://127.0.0.1:{settings.local_registry.port}"


def log_path(settings: Settings) -> Path:
    """``<state_dir>/logs/registry.log``: the registry's stdout and stderr."""
    return Path(settings.paths.state_dir).expanduser().resolve() / "logs" / f"{SERVICE}.log"


def registry_argv(settings: Settings, binary: Path) -> list[str]:
    """The command line of the registry: loopback only, the configured port and log level."""
    lr = settings.local_registry
    return [
        str(binary),
        "--log-level",
        lr.log_level,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(lr.port),
    ]


def registry_health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The registry's ``/health`` answer (status and version), or None if none answers.

    A refused connection, a timeout, an HTTP error and a body that is not a healthy status
    all read as None, so a start-up probe can poll it.
    """
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as answer:
            body = json.loads(answer.read())
    except (OSError, ValueError):  # URLError and refused connections are OSErrors
        return None
    return body if isinstance(body, dict) and body.get("status") == "healthy" else None


def _wait_ready(record: processes.ServiceRecord, url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        if not processes.is_running(record):
            raise RegistryStartError("the schema registry exited during startup")
        health = registry_health(url, timeout=1.0)
        if health is not None:
            return health
        if time.monotonic() >= deadline:
            raise RegistryStartError(f"the schema registry did not answer on {url} in {timeout} s")
        time.sleep(0.05)


def start_registry(
    settings: Settings, *, foreground: bool = False, timeout: float = READY_TIMEOUT_S
) -> processes.ServiceRecord:
    """Start the registry and return its record once ``/health`` answers.

    The binary is built on first use (minutes; ``python -m fink_broker.infra.jars`` does it
    ahead). With ``foreground`` this process becomes the registry (``exec``), logging to the
    terminal, and the function does not return. Raises :class:`processes.AlreadyRunningError`
    if Fink's registry runs, and :class:`RegistryStartError` if the port is taken or the
    registry does not answer within ``timeout`` seconds (the error carries the end of its
    log, and the process is stopped).
    """
    existing = processes.get(settings, SERVICE)
    if existing is not None:
        raise processes.AlreadyRunningError(existing)
    port = settings.local_registry.port
    if port_in_use(port):
        raise RegistryStartError(
            f"127.0.0.1:{port} is already in use by a process Fink did not start; "
            "choose another local_registry.port (env FINK_LOCAL_REGISTRY_PORT)"
        )
    argv = registry_argv(settings, registry_binary(settings))
    url = registry_url(settings)
    logs = log_path(settings)
    extra = {"url": url}
    if foreground:
        processes.register_foreground(
            SERVICE, settings=settings, argv=argv, ports=[port], extra=extra
        )
        log.info("exec schema registry on %s in the foreground", url)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)

    started = time.monotonic()
    # NO_COLOR: the binary's logger would write ANSI colour codes into the log file
    record = processes.start_background(
        SERVICE,
        argv,
        settings=settings,
        env={**os.environ, "NO_COLOR": "1"},
        log_path=logs,
        ports=[port],
        extra=extra,
    )
    try:
        health = _wait_ready(record, url, timeout)
    except RegistryStartError as err:
        with contextlib.suppress(Exception):
            processes.stop(settings, SERVICE, timeout=5.0)
        raise RegistryStartError(f"{err}\n{log_tail(logs)}") from None
    log.info(
        "schema registry %s ready on %s in %.2f s (PID %d)",
        health.get("version", "?"),
        url,
        time.monotonic() - started,
        record.pid,
    )
    return record


def stop_registry(settings: Settings, *, timeout: float = 10.0) -> bool:
    """Stop Fink's registry by its PID file (its schemas go with it); False if not running."""
    return processes.stop(settings, SERVICE, timeout=timeout)
