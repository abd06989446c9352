"""Options of Spark's Kafka source and sink, security included.

The SASL password is read from the environment or a file (``config.kafka_password``) and
placed only in the JAAS option handed to the Kafka client inside the JVM; Spark redacts it
in its logs through ``spark.sql.redaction.string.regex`` (see ``session``).

A refused login reaches Python as a Spark job failure (``Py4JJavaError: Job aborted due to
stage failure...``) whose Kafka cause is buried in a JVM stack trace: :func:`refused_login`
finds it and turns it into the same :class:`fink_broker.kafka_clients.KafkaAuthError` that
Fink's Python clients raise, with a message that says which setting to fix.
"""

from __future__ import annotations

import re
from typing import Any

from fink_broker import kafka_clients
from fink_broker.config import KafkaSettings, kafka_password
from fink_broker.errors import FinkError

#: the Kafka client's exception for refused credentials (SASL and SSL subclass it); it is
#: not retriable, so the Kafka sink fails the task at once (measured: ~3 s) instead of hanging
AUTH_EXCEPTION = "org.apache.kafka.common.errors.AuthenticationException"
#: the same, found in an error's text when no JVM exception object is at hand
_AUTH_TEXT = re.compile(r"org\.apache\.kafka\.common\.errors\.\w*AuthenticationException: ([^\n]*)")
#: enough to reach the Kafka cause under Spark's wrappers, bounded against cause cycles
_MAX_CAUSES = 16

JAAS_MODULES = {
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
}


class KafkaAuthError(FinkError, ValueError):
    """The Kafka security settings are incomplete (e.g. SASL without a password)."""


def spark_kafka_options(kafka: KafkaSettings, bootstrap: str | None = None) -> dict[str, str]:
    """``kafka.*`` options for ``spark.readStream.format("kafka")`` and the Kafka sink.

    The request timeout and retry pause apply to the source's consumers and the sink's
    producers alike: after a broker dies, both wait for the new partition leaders.

    >>> for key, value in spark_kafka_options(KafkaSettings(bootstrap_servers="b:9092")).items():
    ...     print(key, value)
    kafka.bootstrap.servers b:9092
    kafka.security.protocol PLAINTEXT
    kafka.request.timeout.ms 30000
    kafka.retry.backoff.ms 200
    """
    options = {
        "kafka.bootstrap.servers": bootstrap or kafka.bootstrap_servers,
        "kafka.security.protocol": kafka.security_protocol,
        "kafka.request.timeout.ms": str(kafka.request_timeout_ms),
        "kafka.retry.backoff.ms": str(kafka.retry_backoff_ms),
    }
    if kafka.security_protocol.startswith("SASL"):
        password = kafka_password(kafka)
        if not kafka.sasl_username or password is None:
            raise KafkaAuthError(
                f"{kafka.security_protocol} needs kafka.sasl_username and a password in "
                f"${kafka.sasl_password_env} or kafka.sasl_password_file"
            )
        module = JAAS_MODULES.get(kafka.sasl_mechanism)
        if module is None:
            raise KafkaAuthError(f"unsupported SASL mechanism {kafka.sasl_mechanism}")
        user = kafka.sasl_username.replace('"', '\\"')
        secret = password.replace('"', '\\"')
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = (
            f'{module} required username="{user}" password="{secret}";'
        )
    if kafka.security_protocol == "SASL_SSL" and kafka.ssl_ca_location:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = kafka.ssl_ca_location
    return options


def spark_producer_options(kafka: KafkaSettings) -> dict[str, str]:
    """:func:`spark_kafka_options` plus the delivery guarantees of Spark's Kafka sink
    (``kafka_clients.producer_delivery``: acks, idempotence, delivery timeout).

    >>> options = spark_producer_options(KafkaSettings(bootstrap_servers="b:9092"))
    >>> options["kafka.acks"], options["kafka.enable.idempotence"]
    ('all', 'true')
    """
    delivery = kafka_clients.producer_delivery(kafka)
    return {
        **spark_kafka_options(kafka),
        **{f"kafka.{k}": str(v).lower() for k, v in delivery.items()},
    }


def _java_auth_message(java: Any) -> str | None:
    """The message of the first Kafka ``AuthenticationException`` in a JVM cause chain.

    The class hierarchy is read by reflection on the exception object itself: the Kafka
    classes live in Spark's jar class loader, which ``Class.forName`` through py4j may not see.
    """
    for _ in range(_MAX_CAUSES):
        if java is None:
            return None
        cls = java.getClass()
        while cls is not None:
            if cls.getName() == AUTH_EXCEPTION:
                return str(java.getMessage())
            cls = cls.getSuperclass()
        java = java.getCause()
    return None


def refused_login(
    err: BaseException, kafka: KafkaSettings, section: str = "kafka"
) -> kafka_clients.KafkaAuthError | None:
    """A clear error if ``err`` (from Spark's Kafka source or sink) is a refused login, else None.

    ``section`` names the settings the user must fix (``kafka`` or ``output_kafka``). The
    password is masked should the Kafka message ever quote it.

    >>> kafka = KafkaSettings(bootstrap_servers="b:9094", security_protocol="SASL_PLAINTEXT",
    ...                       sasl_username="alice")
    >>> err = RuntimeError("Lost task 1.0: org.apache.kafka.common.errors."
    ...                    "SaslAuthenticationException: invalid credentials\\n\\tat ...")
    >>> print(refused_login(err, kafka, "output_kafka"))  # doctest: +NORMALIZE_WHITESPACE
    Kafka authentication failed for user 'alice' with SCRAM-SHA-512 on b:9094: invalid
    credentials (check output_kafka.sasl_username and the password in
    $FINK_KAFKA_PASSWORD or output_kafka.sasl_password_file)
    >>> refused_login(RuntimeError("Connection refused"), kafka) is None
    True
    """
    # Py4JJavaError carries the JVM exception as java_exception, pyspark's captured errors
    # as _origin
    java = getattr(err, "java_exception", None) or getattr(err, "_origin", None)
    reason = _java_auth_message(java) if java is not None else None
    if reason is None:
        found = _AUTH_TEXT.search(str(err))
        if found is None:
            return None
        reason = found.group(1).strip()
    return kafka_clients.auth_error(kafka, reason, section)
