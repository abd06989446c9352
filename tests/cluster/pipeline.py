"""The four services of both surveys in bounded runs, and a probe of what executors run.

The same function drives the cluster run (in a driver process of its own, ``python -m
tests.cluster.pipeline CONFIG OUT``: one Spark application on the standalone master, whose
executors receive the shipped environment once) and the local run (the test session's
``local[2]`` session). Both read the same Kafka topics and differ in data root, HBase
namespace and topic prefix only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from fink_broker.config import Settings, load_settings
from fink_broker.engine.session import get_session
from fink_broker.lake import Lake
from fink_broker.services import archive, distribution, raw2science, stream2raw

SURVEYS = ("ztf", "rubin")


def topic_of(prefix: str, survey: str) -> str:
    """The input topic of ``survey`` in a test."""
    return f"{prefix}_{survey}"


def data_root(root: str, prefix: str) -> str:
    """A test's own data root beside the configured one (other tests' checkpoints apart)."""
    return f"{root.rstrip('/')}-{prefix}"


def run_pipeline(spark: Any, settings: Settings, input_prefix: str) -> dict[str, Any]:
    """stream2raw, raw2science, distribution and archive of both surveys, availableNow.

    Returns the rows each stage holds per survey, read back from the data root.
    """
    counts: dict[str, dict[str, int]] = {}
    for name in ("stream2raw", "raw2science", "distribution", "archive"):
        getattr(settings, name).trigger = "availableNow"
    for survey in SURVEYS:
        settings.stream2raw.survey = survey
        settings.stream2raw.topic = topic_of(input_prefix, survey)
        for service in (stream2raw, raw2science, distribution, archive):
            query = service.start(settings, spark)
            query.awaitTermination()
            if query.exception() is not None:
                raise RuntimeError(f"{service.SERVICE} {survey}: {query.exception()}")
        lake = Lake(settings.paths.root, survey)
        counts[survey] = {
            "raw": spark.read.parquet(lake.raw).count(),
            "science": spark.read.parquet(lake.science).count(),
        }
    return counts


def _probe(_: Any) -> Any:
    """Runs in an executor's Python worker: where its interpreter, the broker and the
    catalogues it reads come from."""
    import fink_broker

    yield {
        "cwd": os.getcwd(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "fink_broker": fink_broker.__file__,
        "sys_path": sys.path,
        "pythonpath": os.environ.get("PYTHONPATH"),
    }


def _probe_module(modules: Any) -> Any:
    """Runs in an executor: the files of the modules pickled by the driver, as resolved."""
    for module in modules:
        cells = module.function.__closure__ or ()
        for cell in cells:
            value = cell.cell_contents
            if isinstance(value, tuple) and value and hasattr(value[0], "files"):
                yield {
                    "module": module.name,
                    "files": [os.path.abspath(os.fspath(f)) for c in value for f in c.files()],
                }


def probe_executors(spark: Any, settings: Settings) -> dict[str, Any]:
    """What two tasks (one per executor) report, and how the driver's modules resolve there."""
    from fink_broker.services.raw2science import selected_modules

    sc = spark.sparkContext
    seen = sc.parallelize(range(4), 4).mapPartitions(_probe).collect()
    settings.stream2raw.survey = "ztf"
    modules = [m for m in selected_modules(settings, "ztf") if m.name.startswith("xmatch")]
    resolved = sc.parallelize([modules], 1).mapPartitions(
        lambda parts: (r for ms in parts for r in _probe_module(ms))
    )
    return {"tasks": seen, "modules": resolved.collect(), "driver_prefix": sys.prefix}


def main(argv: list[str]) -> int:
    """``python -m tests.cluster.pipeline CONFIG OUT_JSON INPUT_PREFIX OUTPUT_PREFIX``."""
    config, out, input_prefix, output_prefix = argv
    settings = load_settings(config, env={})
    settings.paths.root = data_root(settings.paths.root, output_prefix)
    settings.hbase.namespace = output_prefix
    settings.distribution.topic_prefix = f"{output_prefix}_"
    spark = get_session(settings, app_name="fink-cluster-test")
    result = {
        "counts": run_pipeline(spark, settings, input_prefix),
        "probe": probe_executors(spark, settings),
        "default_parallelism": spark.sparkContext.defaultParallelism,
    }
    Path(out).write_text(json.dumps(result, indent=2))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
