"""distribution's routing on the science rows of the real alerts: one message per
(alert, passing filter), from a plan Spark compiles whole."""

from __future__ import annotations

import pytest

from fink_broker.config import Settings
from fink_broker.engine.filters import filter_inputs
from fink_broker.plugins import FailurePolicy
from fink_broker.plugins.filters import run_filter, topic_name
from fink_broker.services import distribution, raw2science
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from tests.spark.test_canonical import archive

pytestmark = pytest.mark.spark


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_routed_messages_are_the_passing_filters_and_explode_is_compiled(spark, datasim, survey):
    settings = Settings()
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
    science = raw2science.science_rows(
        archive(spark, survey, records),
        survey,
        cuts=(),
        modules=raw2science.selected_modules(settings, survey),
        policy=FailurePolicy.FAIL,
    ).frame.cache()
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
