"""Configuration shared by every confluent-kafka client Fink creates (producer, consumer, admin).

The simulator, ``checkstream`` and ``fink consume`` all reach Kafka with the same bootstrap
servers and security options, taken from ``Settings.kafka`` only. The SASL password is read
through :func:`fink_broker.config.kafka_password` (an environment variable or a file), so it
never appears in argv; :func:`redacted` is the only form of a config that may be logged.

librdkafka retries a failed SASL handshake forever and reports it only through its error
callback, so a wrong password looks like a silent hang. :func:`fail_on_auth_error` turns it
into a :class:`KafkaAuthError` raised from the client's ``poll``/``consume``/``flush``.

Pure Python: no pyspark here, so the simulator and the consumer start in a second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from fink_broker.config import ConfigError, KafkaSettings, Settings, kafka_password
from fink_broker.errors import FinkError

log = logging.getLogger(__name__)

#: largest message the clients (and a topic created by Fink) accept; Rubin alerts with
#: cutouts reach a few hundred kB and the broker default of ~1 MB leaves too little margin
MAX_MESSAGE_BYTES = 10 * 1024 * 1024

#: how long producers wait to fill a batch, in ms (the simulator's and Spark's sink)
LINGER_MS = 20

_SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password", "ssl.keystore.password"})

#: librdkafka error codes that mean "the credentials were refused", not "try again later"
_AUTH_ERRORS = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.ILLEGAL_SASL_STATE,
        KafkaError.UNSUPPORTED_SASL_MECHANISM,
    }
)


class KafkaAuthError(FinkError):
    """The broker refused the SASL credentials (wrong user, password or mechanism)."""


def connection_config(kafka: KafkaSettings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Bootstrap and security properties shared by producers, consumers and admin clients.

    SASL properties are set only for a SASL protocol, so a PLAINTEXT laptop setup does not
    need (or leak) anything. A SASL protocol without a password is refused here, with the
    place to put it, rather than by the broker after a timeout.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
    }
    if kafka.security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = kafka.sasl_mechanism
        config["sasl.username"] = kafka.sasl_username
        password = kafka_password(kafka, env)
        if password is None:
            raise ValueError(
                f"security protocol {kafka.security_protocol} needs a SASL password: set "
                f"${kafka.sasl_password_env} or kafka.sasl_password_file"
            )
        config["sasl.password"] = password
    if kafka.ssl_ca_location:
        config["ssl.ca.location"] = kafka.ssl_ca_location
    return config


def producer_delivery(kafka: KafkaSettings) -> dict[str, Any]:
    """Acknowledgements, idempotence and retry timeouts of a producer writing to ``kafka``.

    The same names in librdkafka (the simulator) and in the Java client (Spark's Kafka sink,
    which prefixes them with ``kafka.``). On a replicated cluster, ``acks=all`` waits for the
    in-sync replicas (at least the brokers' ``min.insync.replicas``), so a record survives
    the loss of its leader; idempotence numbers each producer's records, so a send retried
    after a broker died is written once, not twice. Both clients then retry until
    ``delivery_timeout_ms``.

    >>> delivery = producer_delivery(KafkaSettings())
    >>> delivery["acks"], delivery["enable.idempotence"], delivery["delivery.timeout.ms"]
    ('all', True, 120000)
    """
    if kafka.idempotence and kafka.acks != "all":
        raise ConfigError(f'kafka.idempotence needs kafka.acks = "all", not {kafka.acks!r}')
    if kafka.delivery_timeout_ms < kafka.request_timeout_ms + LINGER_MS:
        raise ConfigError(
            f"kafka.delivery_timeout_ms ({kafka.delivery_timeout_ms}) must be at least "
            f"kafka.request_timeout_ms ({kafka.request_timeout_ms}) + {LINGER_MS} ms of linger"
        )
    return {
        "acks": kafka.acks,
        "enable.idempotence": kafka.idempotence,
        "delivery.timeout.ms": kafka.delivery_timeout_ms,
        "request.timeout.ms": kafka.request_timeout_ms,
        "retry.backoff.ms": kafka.retry_backoff_ms,
    }


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a client config that is safe to log (secrets replaced by ``***``).

    >>> redacted({"sasl.password": "s3cret", "bootstrap.servers": "b:9092"})
    {'sasl.password': '***', 'bootstrap.servers': 'b:9092'}
    """
    return {k: ("***" if k in _SECRET_KEYS else v) for k, v in config.items()}


def is_auth_error(err: KafkaError) -> bool:
    """True if ``err`` says the credentials were refused (retrying will not help)."""
    return err.code() in _AUTH_ERRORS


def fail_on_auth_error(config: Mapping[str, Any]) -> Callable[[KafkaError], None]:
    """An ``error_cb`` that raises :class:`KafkaAuthError` on refused credentials.

    confluent-kafka re-raises an exception from a callback in the ``poll``, ``consume`` or
    ``flush`` call that ran it, so the caller sees the failure at once instead of a client
    that waits forever. Other errors (a broker down, a refused connection) are transient
    for librdkafka, which retries them and logs each attempt itself: here they are logged
    at debug level, except "all brokers down" (once per outage), which is worth a warning.
    """
    who = config.get("sasl.username") or "(no user)"
    how = config.get("sasl.mechanism") or config.get("security.protocol", "PLAINTEXT")
    where = config.get("bootstrap.servers", "?")

    def on_error(err: KafkaError) -> None:
        if is_auth_error(err):
            raise KafkaAuthError(
                f"Kafka authentication failed for user {who!r} with {how} on {where}: "
                f"{err.str()} (check kafka.sasl_username and the password in "
                "kafka.sasl_password_env / kafka.sasl_password_file)"
            )
        level = logging.WARNING if err.code() == KafkaError._ALL_BROKERS_DOWN else logging.DEBUG
        log.log(level, "Kafka client error on %s: %s", where, err.str())

    return on_error


def auth_error(kafka: KafkaSettings, reason: str, section: str = "kafka") -> KafkaAuthError:
    """The error for refused credentials: who, how, where, why, and which settings to fix.

    ``section`` is the settings section the credentials come from (``kafka`` or
    ``output_kafka``). The password is masked should ``reason`` ever quote it.

    >>> kafka = KafkaSettings(bootstrap_servers="b:9094", security_protocol="SASL_PLAINTEXT",
    ...                       sasl_username="alice")
    >>> print(auth_error(kafka, "invalid credentials", "output_kafka"))
    ... # doctest: +NORMALIZE_WHITESPACE
    Kafka authentication failed for user 'alice' with SCRAM-SHA-512 on b:9094: invalid
    credentials (check output_kafka.sasl_username and the password in
    $FINK_KAFKA_PASSWORD or output_kafka.sasl_password_file)
    """
    try:
        password = kafka_password(kafka)
    except OSError:
        password = None
    if password:
        reason = reason.replace(password, "***")
    how = (
        kafka.sasl_mechanism
        if kafka.security_protocol.startswith("SASL")
        else kafka.security_protocol
    )
    return KafkaAuthError(
        f"Kafka authentication failed for user {kafka.sasl_username or '(no user)'!r} with "
        f"{how} on {kafka.bootstrap_servers}: {reason} (check {section}.sasl_username and the "
        f"password in ${kafka.sasl_password_env} or {section}.sasl_password_file)"
    )


def ensure_topics(
    kafka: KafkaSettings,
    topics: Sequence[str],
    partitions: int = -1,
    *,
    timeout: float = 30.0,
    section: str = "kafka",
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the missing ``topics`` (``partitions`` each, -1: the broker's default); return
    the names created.

    Writers create their topics before they publish rather than rely on the broker creating
    them on first use: production clusters disable that, and a producer whose first batch
    races the creation of its topic can be left retrying out-of-order sequence numbers until
    its delivery timeout (seen with Spark's idempotent Kafka producer). Refused credentials
    raise :func:`auth_error` within a second: the admin client's error callback is polled
    while the creation is pending. The client is kept referenced until its futures resolve.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    refused: list[KafkaError] = []
    admin = AdminClient(
        {
            **connection_config(kafka, env),
            "error_cb": lambda e: is_auth_error(e) and refused.append(e),
        }
    )
    new = [
        NewTopic(t, num_partitions=partitions, config={"max.message.bytes": str(MAX_MESSAGE_BYTES)})
        for t in topics
    ]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    deadline = time.monotonic() + timeout
    while not all(f.done() for f in futures.values()) and not refused:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Kafka on {kafka.bootstrap_servers}: topics {list(topics)} not "
                f"created within {timeout:.0f} s"
            )
        admin.poll(0.1)
    if refused:
        raise auth_error(kafka, refused[0].str(), section)
    created = []
    denied: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
            log.info("created topic %s", name)
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                denied[name] = err.args[0].str()
    del admin  # only now: the futures are resolved
    if denied:
        raise TopicsRefused(kafka, denied)
    return created


class TopicsRefused(FinkError):
    """The cluster refused to create topics (an ACL, a policy, an invalid name): an operator
    creates them, or grants the right; restarting would be refused again."""

    def __init__(self, kafka: KafkaSettings, denied: Mapping[str, str]) -> None:
        self.topics = sorted(denied)
        reasons = "; ".join(f"{t}: {why}" for t, why in sorted(denied.items()))
        super().__init__(
            f"Kafka on {kafka.bootstrap_servers} refused to create the topics "
            f"{', '.join(self.topics)} ({reasons}). Create them on the cluster (or grant "
            "this user the right to), then start again."
        )


def with_auth_check(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` plus the :func:`fail_on_auth_error` callback."""
    return {**config, "error_cb": fail_on_auth_error(config)}


def outgoing_kafka(settings: Settings) -> KafkaSettings:
    """The cluster of Fink's outgoing topics: ``output_kafka`` when it names bootstrap
    servers, else the input cluster (``kafka``), as on a laptop with one local broker."""
    out = settings.output_kafka
    return out if out.bootstrap_servers else settings.kafka
