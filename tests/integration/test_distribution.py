"""distribution on the science archive of the 150 real alerts, with a real Kafka broker.

Each topic must hold exactly the alerts that its filter selects when the filter function is
applied directly to the science archive, and `fink consume` must read them back (key = writer
schema) as records whose every field equals the archive's row.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest

from fink_broker.lake import Lake
from fink_broker.plugins.filters import topic_name
from fink_broker.services import distribution
from fink_broker.services.consume import consume
from fink_broker.surveys import get_adapter
from tests.alert_compare import differences
from tests.integration.topics import decode, expected_topics, read_topic
from tests.spark.test_raw2science import make_lake, run_bounded

pytestmark = pytest.mark.integration


def utc_naive(record: dict) -> dict:
    """Avro timestamps decode as aware UTC datetimes; Spark rows hold naive UTC ones."""
    return {
        k: v.astimezone(dt.UTC).replace(tzinfo=None) if isinstance(v, dt.datetime) else v
        for k, v in record.items()
    }


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_topics_hold_what_each_filter_selects(spark, local_kafka, datasim, tmp_path, survey):
    settings, _ = make_lake(spark, datasim, tmp_path)
    settings.kafka.bootstrap_servers = local_kafka.bootstrap
    settings.distribution.trigger = "availableNow"
    settings.distribution.topic_prefix = f"t{tmp_path.name[-6:]}_"
    run_bounded(spark, settings, survey, ztf_rb_min=0.0, rubin_reliability_min=0.0)

    science = spark.read.parquet(Lake(settings.paths.root, survey).science)
    filters = distribution.selected_filters(settings, survey)
    assert filters, "no built-in filter"
    query = distribution.start(settings, spark)
    query.awaitTermination()
    assert query.exception() is None

    adapter = get_adapter(survey)
    selected = expected_topics(spark, settings, survey)
    rows = {r[adapter.alert_id]: r.asDict(recursive=True) for r in science.collect()}
    nights = {alert_id: row["night"] for alert_id, row in rows.items()}
    total = 0
    published: dict[str, int] = {}
    for f in filters:
        topic = topic_name(f, adapter.topic_suffix, prefix=settings.distribution.topic_prefix)
        expected = selected[topic]
        raw_messages = read_topic(local_kafka.bootstrap, topic)
        # read back the way users do: `fink consume`'s decoder and consumer group
        records = consume(settings, [topic], from_beginning=True, timeout=10)
        got = [r[adapter.alert_id] for r in records]
        assert sorted(got) == sorted(decode(k, v)[adapter.alert_id] for k, v in raw_messages)
        assert sorted(got) == sorted(expected), f.name
        for record in records:
            archived = rows[record[adapter.alert_id]]
            assert differences(utc_naive(record), archived) == [], f.name
        total += len(got)
        published[topic] = len(got)
        # the dry run counts the same selection, night by night, without publishing
        for night in sorted(set(nights.values())):
            passed, alerts = distribution.dry_run(settings, f.name, night)
            assert alerts == sum(1 for n in nights.values() if n == night)
            assert passed == sum(1 for i in expected if nights[i] == night), (f.name, night)
    assert total > 0, "the real alerts selected by no filter: the test checks nothing"
    # the counts the write observed, as logged per micro-batch, are what the topics hold
    lines = (Path(settings.paths.state_dir) / "metrics" / "distribution.jsonl").read_text()
    batches = [json.loads(line) for line in lines.splitlines()]
    assert sum(b["rows_in"] for b in batches) == len(rows)
    logged: Counter[str] = Counter()
    for b in batches:
        logged.update(b["detail"]["topics"])
    assert dict(logged) == {t: n for t, n in published.items() if n}
