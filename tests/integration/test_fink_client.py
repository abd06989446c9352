"""The PyPI ``fink-client`` consumes our topics with its own consumer and decodes the alerts.

Fink's users read topics with ``fink-client``, not with this repository's code, so the
outgoing format (key = Avro writer schema JSON, value = schemaless Avro) is only right if
*their* client decodes it. ``scripts/setup.sh`` installs a pinned ``fink-client`` in a
separate venv (``.venv-fink-client``, its own dependency versions); the distribution runs
here on the science archive of the real ZTF alerts, then ``fink_client_probe.py`` reads the
topics with ``fink_client.consumer.AlertConsumer`` in that venv. What the client decodes
must equal, field by field, what the topics hold as decoded by ``test_distribution``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fink_broker.plugins.filters import topic_name
from fink_broker.services import distribution
from fink_broker.surveys import get_adapter
from tests.integration.fink_client_probe import canonical
from tests.integration.topics import decode, read_topic
from tests.spark.test_raw2science import make_lake, run_bounded

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = REPO / ".venv-fink-client" / "bin" / "python"
PROBE = Path(__file__).with_name("fink_client_probe.py")
#: fink-client's survey names (``AlertConsumer(survey=...)``)
CLIENT_SURVEY = {"ztf": "ztf", "rubin": "lsst"}
#: seconds the client gets to join its group and read every alert (a few are enough)
READ_TIMEOUT_S = 45.0


@pytest.fixture(scope="session")
def fink_client_python() -> Path:
    """The interpreter of ``.venv-fink-client``; CI must have it (``scripts/setup.sh``).

    Session-scoped and first in the test's arguments, so a missing venv skips (or fails)
    the test before the Spark session and the broker start.
    """
    if not CLIENT_PYTHON.exists():
        reason = f"{CLIENT_PYTHON} is missing: run scripts/setup.sh to install fink-client"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CLIENT_PYTHON


def read_with_fink_client(
    python: Path, bootstrap: str, survey: str, topics: list[str], count: int
) -> list[dict[str, str]]:
    """``{"topic", "alert"}`` of every alert the fink-client probe read (canonical JSON).

    ``-I`` (isolated mode) keeps this venv's ``PYTHONPATH`` and user site out of the client's
    interpreter, so it runs only with what ``pip install fink-client`` brought.
    """
    argv = [str(python), "-I", str(PROBE), bootstrap, CLIENT_SURVEY[survey], str(count)]
    argv += [str(READ_TIMEOUT_S), *topics]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=READ_TIMEOUT_S + 30, check=False
    )
    assert result.returncode == 0, f"fink-client probe failed:\n{result.stderr[-3000:]}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def changed_fields(ours: str, theirs: str) -> list[str]:
    """Top-level fields whose canonical JSON differ: a readable assertion message."""
    a, b = json.loads(ours), json.loads(theirs)
    return sorted(k for k in a.keys() | b.keys() if json.dumps(a.get(k)) != json.dumps(b.get(k)))


def test_fink_client_consumes_and_decodes_our_topics(
    fink_client_python: Path, spark: Any, local_kafka: Any, datasim: Path, tmp_path: Path
) -> None:
    survey = "ztf"
    settings, _ = make_lake(spark, datasim, tmp_path)
    settings.kafka.bootstrap_servers = local_kafka.bootstrap
    settings.distribution.trigger = "availableNow"
    settings.distribution.topic_prefix = f"fc{tmp_path.name[-6:]}_"
    run_bounded(spark, settings, survey, ztf_rb_min=0.0)
    query = distribution.start(settings, spark)
    query.awaitTermination()
    assert query.exception() is None

    # what the topics hold, decoded by the broker's own test helpers
    adapter = get_adapter(survey)
    prefix = settings.distribution.topic_prefix
    ours: dict[str, dict[Any, str]] = {}
    for f in distribution.selected_filters(settings, survey):
        topic = topic_name(f, adapter.topic_suffix, prefix=prefix)
        records = [decode(k, v) for k, v in read_topic(local_kafka.bootstrap, topic)]
        if records:  # an empty topic may not exist: subscribing to it is an error
            ours[topic] = {r[adapter.alert_id]: canonical(r) for r in records}
    count = sum(len(v) for v in ours.values())
    assert count > 0, "the real alerts selected by no filter: the test checks nothing"

    lines = read_with_fink_client(
        fink_client_python, local_kafka.bootstrap, survey, sorted(ours), count
    )
    theirs: dict[str, dict[Any, str]] = {}
    for line in lines:
        alert_id = json.loads(line["alert"])[adapter.alert_id]
        theirs.setdefault(line["topic"], {})[alert_id] = line["alert"]
    assert len(lines) == count, "fink-client read duplicates or extra alerts"
    assert sorted(theirs) == sorted(ours)
    for topic, alerts in ours.items():
        assert sorted(theirs[topic]) == sorted(alerts), topic
        for alert_id, text in alerts.items():
            got, expected = json.loads(theirs[topic][alert_id]), json.loads(text)
            # the fields a user reads first, named so that a failure says what broke
            assert got["objectId"] == expected["objectId"]
            assert got["candidate"]["ra"] == expected["candidate"]["ra"]
            assert got["candidate"]["magpsf"] == expected["candidate"]["magpsf"]
            # then every field, cutouts (by digest) and Fink's science values included
            diff = changed_fields(text, theirs[topic][alert_id])
            assert theirs[topic][alert_id] == text, (topic, alert_id, diff)
