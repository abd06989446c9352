"""Fixtures shared by every tier: the real alerts of ../shared/datasim and one Spark session.

The Spark session is created once per test run (5-10 s of JVM start) and shared by the
spark/, integration/ and e2e/ tiers, as the feasibility study recommends.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASIM = REPO.parent / "shared" / "datasim"

#: tiers whose every test needs a JVM, by folder, and the marker each test there gets
JVM_FOLDERS = {
    "spark": "spark",
    "integration": "integration",
    "e2e": "integration",
    "cluster": "integration",
}
#: fixtures that start a JVM (a Spark session, a Kafka broker, HBase), wherever they are used
JVM_FIXTURES = {
    "spark": "spark",
    "local_kafka": "integration",
    "local_hbase": "integration",
    "fresh_kafka_settings": "integration",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a JVM, by its folder and by its fixtures, so that
    ``-m "not spark and not integration"`` (``fink_test --without-integration``) selects
    the tiers without one even where a module forgot its ``pytestmark``."""
    tests = REPO / "tests"
    for item in items:
        path = Path(str(item.path))
        parts = path.relative_to(tests).parts if path.is_relative_to(tests) else ()
        markers = set()
        if len(parts) > 1 and parts[0] in JVM_FOLDERS:
            markers.add(JVM_FOLDERS[parts[0]])
        for name in getattr(item, "fixturenames", ()):
            if name in JVM_FIXTURES:
                markers.add(JVM_FIXTURES[name])
        for marker in sorted(markers - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)


@pytest.fixture(scope="session")
def datasim() -> Path:
    """../shared/datasim; tests skip without it, except in CI where it must exist."""
    if not DATASIM.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide the real alerts in {DATASIM}")
        pytest.skip(f"real alerts not available: {DATASIM} is absent")
    return DATASIM


def base_overrides(tmp: Path) -> dict[str, object]:
    """Settings overrides that keep a test's data and state in ``tmp``."""
    return {
        "paths.root": str(tmp / "lake"),
        "paths.state_dir": str(tmp / "state"),
        "paths.jar_cache": str(REPO / "jvm-cache"),
        "spark.driver_memory": "2g",
    }


@pytest.fixture(scope="session")
def spark_settings(tmp_path_factory: pytest.TempPathFactory):
    """Settings of the shared Spark session (tmp data root, the repo's jar cache)."""
    from fink_broker.config import load_settings

    return load_settings(None, env={}, overrides=base_overrides(tmp_path_factory.mktemp("spark")))


@pytest.fixture(scope="session")
def spark(spark_settings):
    """The one SparkSession of the test run (local[2], Fink's connectors and JVM functions)."""
    from fink_broker.engine.session import get_session

    session = get_session(spark_settings, app_name="fink-tests")
    yield session
    session.stop()


#: where tests leave what CI keeps (the dashboard's screenshot): under the default data root
ARTIFACTS = Path(os.environ.get("FINK_TEST_ARTIFACTS", REPO / "fink-data" / "artifacts"))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder of CI artifacts (``$FINK_TEST_ARTIFACTS``, else ``fink-data/artifacts``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
