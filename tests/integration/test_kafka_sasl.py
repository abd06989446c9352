"""`fink start kafka --sasl`: SCRAM-SHA-512 logins work, wrong ones fail loudly, nothing leaks.

Each test runs its own broker (``fresh_kafka_settings``): the session broker has no SASL
listener. The password comes from an environment variable, as in production.
"""

from __future__ import annotations

import copy
import io
import json
import time
import uuid
from pathlib import Path

import fastavro
import psutil
import pytest
from confluent_kafka import Producer

from fink_broker.config import KafkaSettings, Settings
from fink_broker.infra import kafka_local, processes
from fink_broker.kafka_clients import KafkaAuthError, connection_config, with_auth_check
from fink_broker.services.consume import consume
from tests.integration.conftest import free_ports

pytestmark = pytest.mark.integration

PASSWORD_ENV = "FINK_TEST_SASL_PASSWORD"
USER = "fink-test"
SCHEMA = {
    "type": "record",
    "name": "alert",
    "fields": [{"name": "objectId", "type": "string"}, {"name": "candid", "type": "long"}],
}


def _sasl_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    taken = {settings.local_kafka.port, settings.local_kafka.controller_port}
    settings.local_kafka.sasl_port = next(p for p in free_ports(3) if p not in taken)
    settings.kafka.sasl_username = USER
    settings.kafka.sasl_password_env = PASSWORD_ENV
    monkeypatch.setenv(PASSWORD_ENV, password)


def _client_settings(settings: Settings) -> Settings:
    """What a user of the SASL listener configures: its address and SASL_PLAINTEXT."""
    client = copy.deepcopy(settings)
    client.kafka.bootstrap_servers = kafka_local.local_sasl_bootstrap(settings)
    client.kafka.security_protocol = "SASL_PLAINTEXT"
    return client


def _produce(kafka: KafkaSettings, topic: str, candid: int, timeout: float = 20.0) -> int:
    """Produce one outgoing-format alert; returns the messages left undelivered.

    ``poll`` (not a single ``flush``) serves the error callback at once, so a refused login
    raises :class:`KafkaAuthError` within a second instead of at the end of the flush.
    """
    producer = Producer(with_auth_check({**connection_config(kafka), "message.timeout.ms": 10_000}))
    value = _value({"objectId": f"ZTF{candid}", "candid": candid})
    producer.produce(topic, key=json.dumps(SCHEMA).encode(), value=value)
    deadline = time.monotonic() + timeout
    try:
        while len(producer) and time.monotonic() < deadline:
            producer.poll(0.2)
    except KafkaAuthError:
        # the traceback keeps this frame: without the producer, it stops reconnecting now
        producer.purge()
        del producer
        raise
    return producer.flush(1.0)


def _value(record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(SCHEMA), record)
    return buf.getvalue()


def _texts_of(settings: Settings, record: processes.ServiceRecord) -> dict[str, bytes]:
    """Everything the broker wrote or exposes: logs, config, data, PID file, argv, env."""
    home = kafka_local.kafka_dir(settings)
    texts = {str(p): p.read_bytes() for p in home.rglob("*") if p.is_file()}
    texts["pid file"] = processes.pid_file(settings, "kafka").read_bytes()
    texts["record argv"] = "\0".join(record.argv).encode()
    proc = psutil.Process(record.pid)
    texts["/proc cmdline"] = "\0".join(proc.cmdline()).encode()
    texts["/proc environ"] = "\0".join(f"{k}={v}" for k, v in proc.environ().items()).encode()
    return texts


def test_scram_login_works_and_a_wrong_password_fails_clearly(
    fresh_kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = f"s3cret-{uuid.uuid4().hex}"
    wrong = f"wrong-{uuid.uuid4().hex}"
    settings = fresh_kafka_settings
    _sasl_settings(settings, monkeypatch, password)
    record = kafka_local.start_kafka(settings, sasl=True)
    lk = settings.local_kafka
    assert record.ports == [lk.port, lk.controller_port, lk.sasl_port]
    assert record.extra["sasl_bootstrap"] == f"127.0.0.1:{lk.sasl_port}"
    client = _client_settings(settings)
    topic = f"test_sasl_{uuid.uuid4().hex[:8]}"

    # the right password: delivered through the SASL port, and read back through it
    assert _produce(client.kafka, topic, 1) == 0
    got = consume(client, [topic], from_beginning=True, max_alerts=1, timeout=20)
    assert got == [{"objectId": "ZTF1", "candid": 1}]
    # the PLAINTEXT listener stays open for local administration
    assert kafka_local.kafka_ready(kafka_local.local_bootstrap(settings))

    # a wrong password: a clear authentication error, from the producer and the consumer
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    started = time.monotonic()
    with pytest.raises(KafkaAuthError) as failed:
        _produce(client.kafka, topic, 2)
    message = str(failed.value)
    assert "authentication failed" in message.lower()
    assert "invalid credentials" in message
    assert USER in message and "SCRAM-SHA-512" in message
    assert wrong not in message
    assert time.monotonic() - started < 10, "the refusal must surface at once, not on timeout"
    with pytest.raises(KafkaAuthError, match="invalid credentials"):
        consume(client, [topic], from_beginning=True, max_alerts=1, timeout=20)

    # neither password is in the broker's logs, config, data, PID file, argv or environment
    texts = _texts_of(settings, record)
    assert any("server.log" in name for name in texts)
    for secret in (password, wrong):
        leaks = [name for name, text in texts.items() if secret.encode() in text]
        assert not leaks, f"password found in {leaks}"
    assert PASSWORD_ENV.encode() not in texts["/proc environ"]
    assert "--add-scram" not in record.argv  # the credential came through the Admin API


def test_restart_updates_the_scram_password(
    fresh_kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fresh_kafka_settings
    _sasl_settings(settings, monkeypatch, "first-password")
    kafka_local.start_kafka(settings, sasl=True)
    client = _client_settings(settings)
    topic = f"test_sasl_restart_{uuid.uuid4().hex[:8]}"
    assert _produce(client.kafka, topic, 1) == 0
    kafka_local.stop_kafka(settings, timeout=10)

    monkeypatch.setenv(PASSWORD_ENV, "second-password")
    kafka_local.start_kafka(settings, sasl=True)  # same storage: the user exists already
    assert _produce(client.kafka, topic, 2) == 0
    monkeypatch.setenv(PASSWORD_ENV, "first-password")
    with pytest.raises(KafkaAuthError):
        _produce(client.kafka, topic, 3)


def test_sasl_start_refuses_a_missing_password(
    fresh_kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fresh_kafka_settings
    _sasl_settings(settings, monkeypatch, "unused")
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(kafka_local.KafkaStartError, match=f"needs a password.*{PASSWORD_ENV}"):
        kafka_local.start_kafka(settings, sasl=True)
    assert processes.get(settings, "kafka") is None
    assert not Path(kafka_local.kafka_dir(settings), "server.properties").exists()
