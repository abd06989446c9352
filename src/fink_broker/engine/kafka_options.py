"""Options of Spark's Kafka source and sink, security included.

The SASL password is read from the environment or a file (``config.kafka_password``) and
placed only in the JAAS option handed to the Kafka client inside the JVM; Spark redacts it
in its logs through ``spark.sql.redaction.string.regex`` (see ``session``).
"""

from __future__ import annotations

from fink_broker.config import KafkaSettings, kafka_password
from fink_broker.errors import FinkError

JAAS_MODULES = {
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
}


class KafkaAuthError(FinkError, ValueError):
    """The Kafka security settings are incomplete (e.g. SASL without a password)."""


def spark_kafka_options(kafka: KafkaSettings, bootstrap: str | None = None) -> dict[str, str]:
    """``kafka.*`` options for ``spark.readStream.format("kafka")`` and the Kafka sink.

    >>> spark_kafka_options(KafkaSettings(bootstrap_servers="b:9092"))
    {'kafka.bootstrap.servers': 'b:9092', 'kafka.security.protocol': 'PLAINTEXT'}
    """
    options = {
        "kafka.bootstrap.servers": bootstrap or kafka.bootstrap_servers,
        "kafka.security.protocol": kafka.security_protocol,
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
