"""distribution's routing on the science rows of the real alerts: one message per
(alert, passing filter), from a plan Spark compiles whole."""

from __future__ import annotations

import pytest
from pyspark.sql import Observation

from fink_broker.config import Settings
from fink_broker.engine.filters import filter_inputs
from fink_broker.plugins import FailurePolicy
from fink_broker.plugins.filters import alert_filter, run_filter, topic_name
from fink_broker.services import distribution, raw2science
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from tests.spark.test_canonical import archive

pytestmark = pytest.mark.spark


def science_frame(spark, datasim, settings, survey: str):
    """The science rows of the real alerts of ``survey`` (no cut), cached."""
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
    return raw2science.science_rows(
        archive(spark, survey, records),
        survey,
        cuts=(),
        modules=raw2science.selected_modules(settings, survey),
        policy=FailurePolicy.FAIL,
    ).frame.cache()


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_routed_messages_are_the_passing_filters_and_explode_is_compiled(spark, datasim, survey):
    settings = Settings()
    science = science_frame(spark, datasim, settings, survey)
    filters = distribution.selected_filters(settings, survey)
    messages = distribution.routed(spark, science, survey, filters)

    # the count of messages per topic is what each filter selects on the same rows
    got = {r["topic"]: r["count"] for r in messages.groupBy("topic").count().collect()}
    suffix = get_adapter(survey).topic_suffix
    frame = distribution.filter_frame(science, survey, filter_inputs(filters))
    want = {}
    for f in filters:
        passed = int(run_filter(f, frame[list(f.inputs)]).sum())
        if passed:
            want[topic_name(f, suffix)] = passed
    assert got == want
    assert sum(want.values()) > 0, "no real alert passes any filter: the check would be empty"

    # the explode of every alert into its topics runs in generated code: a lambda there
    # made Spark interpret it and generate its wide row projection in every task
    # (the plan as executed: adaptive execution compiles stages when it runs them)
    messages.collect()
    plan = messages._jdf.queryExecution().executedPlan().toString()
    plan = plan.split("== Initial Plan ==")[0]
    generate = [line for line in plan.splitlines() if "Generate explode" in line]
    assert generate and all("*(" in line for line in generate), plan
    science.unpersist()


@alert_filter(name="always_raises", version="1.0", inputs=["ra"])
def _always_raises(df):
    """A filter with a bug: it raises on every batch."""
    raise ZeroDivisionError("a bug in the filter")


def test_a_raising_filter_selects_nothing_and_is_counted_under_null_and_count(spark, datasim):
    survey = "ztf"
    settings = Settings()
    science = science_frame(spark, datasim, settings, survey)
    good = distribution.selected_filters(settings, survey)
    alerts = science.count()

    alone = distribution.routed(spark, science, survey, good)
    want = {r["topic"]: r["count"] for r in alone.groupBy("topic").count().collect()}

    failures = Observation("filter_failures_test")
    mixed = distribution.routed(
        spark,
        science,
        survey,
        [*good, _always_raises],
        policy="null_and_count",
        failures=failures,
    )
    got = {r["topic"]: r["count"] for r in mixed.groupBy("topic").count().collect()}
    # the other topics are untouched, the broken filter's topic gets nothing
    assert got == want and sum(want.values()) > 0
    counted = failures.get
    assert counted["always_raises"] == alerts
    assert all(counted[f.name] == 0 for f in good)

    # under "fail" the micro-batch fails, with the filter's own error
    strict = distribution.routed(spark, science, survey, [*good, _always_raises], policy="fail")
    with pytest.raises(Exception, match="a bug in the filter"):
        strict.collect()
    science.unpersist()
