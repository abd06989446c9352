"""distribution publishes through a SCRAM-SHA-512 listener; a wrong password fails it clearly.

Fink's production brokers take SASL/SCRAM logins only, so the distribution's Spark Kafka sink
must publish with the ``output_kafka`` credentials, and a wrong password must stop the query
in seconds with an error that says the login was refused (and by whom), not hang or retry
for ever, and never quote the password. The test runs its own broker (``fresh_kafka_settings``:
the session broker has no SASL listener) and the science archive of the real ZTF alerts.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pyspark.errors import StreamingQueryException
from pyspark.sql.streaming import StreamingQuery

from fink_broker.config import KafkaSettings, Settings
from fink_broker.infra import kafka_local
from fink_broker.kafka_clients import KafkaAuthError
from fink_broker.lake import Lake
from fink_broker.plugins.filters import topic_name
from fink_broker.services import distribution
from fink_broker.surveys import get_adapter
from tests.integration.conftest import free_ports
from tests.integration.topics import decode, read_topic
from tests.spark.test_raw2science import make_lake, run_bounded

pytestmark = pytest.mark.integration

USER = "fink-distribution"
#: the broker's SCRAM credential is provisioned from this variable (``kafka`` settings) ...
BROKER_PASSWORD_ENV = "FINK_TEST_BROKER_PASSWORD"
#: ... and the distribution logs in with this one (``output_kafka`` settings)
OUTPUT_PASSWORD_ENV = "FINK_TEST_OUTPUT_PASSWORD"
#: a refused login must end the query well before this (measured: ~3 s)
FAIL_WITHIN_S = 30.0


def start_sasl_broker(broker: Settings, monkeypatch: pytest.MonkeyPatch, password: str) -> str:
    """Start ``broker`` with its SCRAM listener and user; return the listener's address."""
    taken = {broker.local_kafka.port, broker.local_kafka.controller_port}
    broker.local_kafka.sasl_port = next(p for p in free_ports(3) if p not in taken)
    broker.kafka.sasl_username = USER
    broker.kafka.sasl_password_env = BROKER_PASSWORD_ENV
    monkeypatch.setenv(BROKER_PASSWORD_ENV, password)
    kafka_local.start_kafka(broker, sasl=True)
    return kafka_local.local_sasl_bootstrap(broker)


def published_batches(settings: Settings) -> list[dict[str, Any]]:
    """The distribution's metrics lines: one per micro-batch that was published."""
    path = Path(settings.paths.state_dir) / "metrics" / f"{distribution.SERVICE}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def query_error(query: StreamingQuery, timeout: float) -> StreamingQueryException:
    """The error that ended ``query``; the test fails if it ends cleanly or outlives ``timeout``.

    The query is stopped in any case, so a hanging sink cannot outlive the test.
    """
    try:
        terminated = query.awaitTermination(timeout)
    except StreamingQueryException as err:
        return err
    finally:
        query.stop()
    pytest.fail("the query finished without error" if terminated else "the query hangs")


def test_distribution_publishes_through_scram_and_refuses_a_wrong_password(
    spark: Any,
    fresh_kafka_settings: Settings,
    datasim: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = f"s3cret-{uuid.uuid4().hex}"
    wrong = f"wrong-{uuid.uuid4().hex}"
    sasl_bootstrap = start_sasl_broker(fresh_kafka_settings, monkeypatch, password)

    survey = "ztf"
    settings, _ = make_lake(spark, datasim, tmp_path / "fink")
    settings.distribution.trigger = "availableNow"
    settings.distribution.topic_prefix = f"sasl{tmp_path.name[-6:]}_"
    settings.output_kafka = KafkaSettings(
        bootstrap_servers=sasl_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password_env=OUTPUT_PASSWORD_ENV,
    )
    run_bounded(spark, settings, survey, ztf_rb_min=0.0)

    # a wrong password: the query fails within seconds, saying the login was refused
    monkeypatch.setenv(OUTPUT_PASSWORD_ENV, wrong)
    started = time.monotonic()
    message = str(query_error(distribution.start(settings, spark), FAIL_WITHIN_S))
    assert time.monotonic() - started < FAIL_WITHIN_S
    assert "Kafka authentication failed" in message
    assert "invalid credentials" in message
    assert USER in message and "SCRAM-SHA-512" in message and sasl_bootstrap in message
    assert "output_kafka.sasl_username" in message and OUTPUT_PASSWORD_ENV in message
    assert wrong not in message and password not in message
    assert published_batches(settings) == []

    # `fink start distribution` (run) reports it as one line, the FinkError the CLI prints
    with pytest.raises(KafkaAuthError) as refused:
        distribution.run(settings)
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith(f"Kafka authentication failed for user '{USER}'")
    assert wrong not in str(refused.value)

    # the right password: the restarted query publishes the batch the refusals left undone
    monkeypatch.setenv(OUTPUT_PASSWORD_ENV, password)
    query = distribution.start(settings, spark)
    query.awaitTermination()
    assert query.exception() is None
    (batch,) = published_batches(settings)
    per_topic: dict[str, int] = batch["detail"]["topics"]
    assert sum(per_topic.values()) > 0, "the real alerts selected by no filter"

    adapter = get_adapter(survey)
    archived = {
        r[0]
        for r in spark.read.parquet(Lake(settings.paths.root, survey).science)
        .select(adapter.alert_id)
        .collect()
    }
    plaintext = kafka_local.local_bootstrap(fresh_kafka_settings)
    for f in distribution.selected_filters(settings, survey):
        topic = topic_name(f, adapter.topic_suffix, prefix=settings.distribution.topic_prefix)
        ids = [decode(k, v)[adapter.alert_id] for k, v in read_topic(plaintext, topic)]
        # exactly once here: the refused attempts published nothing
        assert len(ids) == per_topic.get(topic, 0), topic
        assert len(set(ids)) == len(ids) and set(ids) <= archived, topic
