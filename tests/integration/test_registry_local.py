"""The local schema registry: Confluent REST round trips, `fink show` / `fink stop` by PID file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from fink_broker.config import Settings
from fink_broker.infra import processes, registry_local
from fink_broker.surveys.rubin import lsst_schema

pytestmark = pytest.mark.integration

CANDIDATE = {
    "type": "record",
    "name": "candidate",
    "namespace": "fink.test",
    "fields": [
        {"name": "candid", "type": "long"},
        {"name": "ra", "type": "double"},
        {"name": "dec", "type": "double"},
        {"name": "magpsf", "type": ["null", "float"], "default": None},
    ],
}


def _call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One request with Confluent's media type; (status, decoded JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="GET" if data is None else "POST",
        headers={
            "Content-Type": registry_local.CONTENT_TYPE,
            "Accept": registry_local.CONTENT_TYPE,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _register(base: str, subject: str, schema: dict[str, Any]) -> int:
    status, body = _call(f"{base}/subjects/{subject}/versions", {"schema": json.dumps(schema)})
    assert status == 200, body
    return body["id"]


def _canonical(schema_text: str) -> str:
    return to_parsing_canonical_form(parse_schema(json.loads(schema_text)))


def test_register_then_read_back_by_id(schema_registry: str) -> None:
    subject = f"test-{uuid.uuid4().hex[:8]}-value"
    schema_id = _register(schema_registry, subject, CANDIDATE)
    assert isinstance(schema_id, int) and schema_id > 0

    status, body = _call(f"{schema_registry}/schemas/ids/{schema_id}")
    assert status == 200, body
    assert _canonical(body["schema"]) == _canonical(json.dumps(CANDIDATE))
    assert body.get("schemaType", "AVRO") == "AVRO"

    # Confluent semantics: the same schema again is the same id, and no new version
    assert _register(schema_registry, subject, CANDIDATE) == schema_id
    assert _call(f"{schema_registry}/subjects/{subject}/versions") == (200, [1])
    status, latest = _call(f"{schema_registry}/subjects/{subject}/versions/latest")
    assert (status, latest["id"], latest["version"]) == (200, schema_id, 1)
    # an id nobody registered: Confluent's 404 with error code 40403
    status, missing = _call(f"{schema_registry}/schemas/ids/{10**6}")
    assert (status, missing["error_code"]) == (404, 40403)


def test_the_rubin_alert_schema_round_trips(schema_registry: str) -> None:
    """The schema a Rubin-framed stream names (lsst.v9_0, registry id 900 at Rubin)."""
    rubin = lsst_schema(900)
    subject = f"alerts-{uuid.uuid4().hex[:8]}-value"
    schema_id = _register(schema_registry, subject, json.loads(rubin.json))
    status, body = _call(f"{schema_registry}/schemas/ids/{schema_id}")
    assert status == 200
    assert _canonical(body["schema"]) == _canonical(rubin.json)


def _fink(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The `fink` command in a subprocess, pointed at ``settings`` by FINK_* variables."""
    env = {
        **os.environ,
        "FINK_PATHS_STATE_DIR": settings.paths.state_dir,
        "FINK_PATHS_JAR_CACHE": settings.paths.jar_cache,
        "FINK_LOCAL_REGISTRY_PORT": str(settings.local_registry.port),
    }
    return subprocess.run(
        [sys.executable, "-m", "fink_broker.cli.main", *args],
        cwd=Path(settings.paths.state_dir).parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_fink_start_show_stop_registry(fresh_registry_settings: Settings) -> None:
    settings = fresh_registry_settings
    port = settings.local_registry.port
    url = registry_local.registry_url(settings)

    started = _fink(settings, "start", "registry")
    assert started.returncode == 0, started.stderr
    assert url in started.stdout
    (record,) = processes.running(settings)
    assert record.name == "registry" and record.ports == [port]
    assert record.argv[-5:] == ["serve", "--host", "127.0.0.1", "--port", str(port)]
    assert Path(record.log_path or "") == registry_local.log_path(settings)
    assert registry_local.registry_health(url) is not None
    assert _register(url, "cli-value", CANDIDATE) == 1  # a fresh registry counts from 1
    shown = _fink(settings, "show")
    assert "registry" in shown.stdout and f"127.0.0.1:{port}" in shown.stdout
    rss = processes.usage(record, interval=0.05)["rss_mib"]
    assert rss < 64, f"the registry uses {rss} MiB"

    stopped = _fink(settings, "stop", "registry")
    assert stopped.returncode == 0, stopped.stderr
    # gone, or a zombie this sandbox's init has yet to reap (the `fink` that started it exited)
    assert not processes.is_running(record)
    assert processes.running(settings) == []
    assert registry_local.registry_health(url, timeout=1.0) is None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/subjects", timeout=1.0)
    assert _fink(settings, "stop", "registry").returncode == 1


def test_a_port_taken_by_someone_else_is_refused(fresh_registry_settings: Settings) -> None:
    settings = fresh_registry_settings
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", settings.local_registry.port))
        foreign.listen()
        with pytest.raises(registry_local.RegistryStartError, match="already in use"):
            registry_local.start_registry(settings)
    assert processes.running(settings) == []
