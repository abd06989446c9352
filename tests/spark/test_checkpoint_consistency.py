"""A checkpoint lost while its archive is kept: the service refuses to start rather than
skip the archive's batch ids as replays; --reset-checkpoint re-reads and drops by id."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fink_broker.engine.decode import archive_columns, decode
from fink_broker.engine.sink_state import CheckpointMismatch, latest_sink_batch, read_resume
from fink_broker.engine.sinks import write_batch
from fink_broker.lake import Lake
from fink_broker.services import raw2science
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from tests.spark.test_decode import kafka_like
from tests.spark.test_raw2science import make_lake, run_bounded

pytestmark = pytest.mark.spark

#: added to the ids of the alerts of the second raw batch: new alerts, same night
NEW_IDS = 10**15


def test_missing_checkpoint_refuses_then_reset_loses_and_duplicates_nothing(
    spark, datasim, tmp_path
):
    survey = "ztf"
    adapter = get_adapter(survey)
    settings, expected = make_lake(spark, datasim, tmp_path)
    lake = Lake(settings.paths.root, survey)
    first = run_bounded(spark, settings, survey, noscience=True)
    ids = {r[0] for r in first.select(adapter.alert_id).collect()}
    assert ids == expected[survey] and ids

    # more alerts reach the raw archive while raw2science's checkpoint is lost
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
    for record in records:
        record["candid"] += NEW_IDS
    decoded = decode(kafka_like(spark, [adapter.encode(r) for r in records]), adapter)
    write_batch(spark, archive_columns(decoded, adapter), lake.raw, 1, ["night"])
    checkpoint = Path(lake.checkpoint(raw2science.SERVICE))
    shutil.rmtree(checkpoint)

    with pytest.raises(CheckpointMismatch, match="--reset-checkpoint") as refused:
        raw2science.start(settings, spark)
    assert "is missing" in str(refused.value) and str(lake.science) in str(refused.value)
    latest = latest_sink_batch(spark, lake.science)

    # the reset: a new checkpoint whose batches follow the archive's, the old alerts dropped
    settings.raw2science.trigger = "availableNow"
    query = raw2science.start(settings, spark, reset_checkpoint=True)
    query.awaitTermination()
    assert query.exception() is None
    resume = read_resume(spark, str(checkpoint))
    assert resume.base == latest + 1 and resume.nights
    science = spark.read.parquet(lake.science)
    got = [r[0] for r in science.select(adapter.alert_id).collect()]
    assert len(got) == len(set(got)), "an alert is archived twice"
    assert set(got) == ids | {i + NEW_IDS for i in ids}, "an alert is lost"
    assert latest_sink_batch(spark, lake.science) > latest

    # and a plain restart from the new checkpoint is consistent: no refusal, nothing new
    again = run_bounded(spark, settings, survey, noscience=True)
    assert again.count() == len(got)
