"""raw2science on a raw archive made from the 150 real alerts, bounded (availableNow) runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fink_broker.config import load_settings
from fink_broker.engine.decode import archive_columns, decode
from fink_broker.engine.modules import (
    FAILURES_COLUMN,
    FailureCounters,
    ModuleRunner,
    modules_column,
)
from fink_broker.engine.sinks import write_batch
from fink_broker.lake import Lake
from fink_broker.plugins import FailurePolicy, science_module
from fink_broker.science import local_catalogues
from fink_broker.science.provenance import ENGINE_COLUMNS, OUTPUTS
from fink_broker.services import raw2science
from fink_broker.surveys import build_survey, get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from fink_broker.surveys.fields import canonical_frame
from tests.alert_compare import as_archived
from tests.conftest import base_overrides
from tests.science_frames import enriched_frame
from tests.spark.test_decode import kafka_like

pytestmark = pytest.mark.spark

RUBIN_REJECT = (
    "pixelFlags",
    "pixelFlags_bad",
    "pixelFlags_edge",
    "pixelFlags_offimage",
    "pixelFlags_nodataCenter",
    "pixelFlags_saturatedCenter",
    "pixelFlags_interpolatedCenter",
    "pixelFlags_suspectCenter",
    "psfFlux_flag",
    "centroid_flag",
)


def passes_cuts(survey: str, record: dict) -> bool:
    """The default quality cuts, written out independently of the broker's Cut objects."""
    if survey == "ztf":
        c = record["candidate"]
        return c["nbad"] == 0 and c["rb"] is not None and c["rb"] >= 0.55 and c["fid"] != 3
    s = record["diaSource"]
    ok = s.get("reliability") is not None and s["reliability"] >= 0.5
    return ok and not any(s.get(flag) is True for flag in RUBIN_REJECT)


def make_lake(spark, datasim, tmp) -> tuple[object, dict[str, set]]:
    """Settings whose raw archive holds the 150 real alerts as stream2raw writes them, and
    the ids that pass the cuts per survey."""
    settings = load_settings(None, env={}, overrides=base_overrides(tmp))
    expected = {}
    for survey in ("ztf", "rubin"):
        adapter = get_adapter(survey)
        records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
        decoded = decode(kafka_like(spark, [adapter.encode(r) for r in records]), adapter)
        raw = Lake(settings.paths.root, survey).raw
        write_batch(spark, archive_columns(decoded, adapter), raw, 0, ["night"])
        key = adapter.alert_id
        expected[survey] = {r[key] for r in records if passes_cuts(survey, r)}
    return settings, expected


def add_near_catalogue(datasim: Path, tmp: Path, folder: Path) -> None:
    """Register in ``folder`` (``fink catalogs add``) a catalogue ``near`` of positions
    1 arcsec from five alerts of each survey."""
    near = []
    for survey in ("ztf", "rubin"):
        records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)][:5]
        frame = canonical_frame(records, survey, ["ra", "dec"])
        near.append(
            frame.assign(dec=frame["dec"] + 1 / 3600, id=[f"near_{i}" for i in frame.index])
        )
    source = tmp / "near.csv"
    pd.concat(near)[["ra", "dec", "id"]].to_csv(source, index=False)
    local_catalogues.add(folder, "near", source, 2.0, class_col=None, default_class="near")


@pytest.fixture(scope="module")
def lake_settings(spark, datasim, tmp_path_factory):
    """The lake of :func:`make_lake`, and a local catalogue (``fink catalogs add``) of
    positions 1 arcsec from five alerts of each survey: the modules include xmatch_local."""
    tmp = tmp_path_factory.mktemp("r2s")
    settings, expected = make_lake(spark, datasim, tmp)
    add_near_catalogue(datasim, tmp, local_catalogues.catalogue_dir(settings))
    return settings, expected


def run_bounded(spark, settings, survey: str, **raw2science_options):
    settings.stream2raw.survey = survey
    settings.raw2science.trigger = "availableNow"
    for key, value in raw2science_options.items():
        setattr(settings.raw2science, key, value)
    query = raw2science.start(settings, spark)
    query.awaitTermination()
    assert query.exception() is None
    return spark.read.parquet(Lake(settings.paths.root, survey).science)


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_cuts_modules_columns_and_idempotent_rerun(spark, lake_settings, survey):
    settings, expected = lake_settings
    science = run_bounded(spark, settings, survey)
    adapter = get_adapter(survey)
    ids = {r[0] for r in science.select(adapter.alert_id).collect()}
    assert ids == expected[survey]
    assert 0 < len(ids) < {"ztf": 50, "rubin": 100}[survey]

    modules = raw2science.selected_modules(settings, survey)
    assert {"solar_system", "xmatch", "xmatch_local"} <= {m.name for m in modules}
    # every classifier of the survey runs (Fink's models, converted at set-up)
    classifiers = {"ztf": {"snn_ztf", "anomaly"}, "rubin": {"snn_rubin", "cats", "slsn"}}
    assert classifiers[survey] <= {m.name for m in modules}
    declared = [c for m in modules for c in m.outputs]
    declared += [*OUTPUTS, *ENGINE_COLUMNS, FAILURES_COLUMN]
    types = dict(science.dtypes)
    for spec in declared:
        assert spec.name in types, f"{spec.name} missing from the science archive"
        assert types[spec.name] == spec.dtype, (spec.name, types[spec.name], spec.dtype)
    rows = science.select(FAILURES_COLUMN.name, "fink_science_modules").collect()
    assert all(r[0] is None for r in rows), "a built-in module failed on real alerts"
    assert all("xmatch=" in r[1] and "xmatch_local=1.0+" in r[1] for r in rows)
    # the local catalogue's entries lie 1 arcsec from five alerts of each survey
    matched = science.where("xm_near_id IS NOT NULL").select("xm_near_sep_arcsec").collect()
    assert 0 < len(matched) <= 5
    assert all(abs(r[0] - 1.0) < 0.01 for r in matched)

    files_before = sorted(science.inputFiles())
    again = run_bounded(spark, settings, survey)
    assert sorted(again.inputFiles()) == files_before
    assert again.count() == len(ids)


def same_value(want: object, got: object) -> bool:
    """Module outputs of the pandas reference and of Spark: null and NaN are one value,
    doubles agree to 1e-9 (the inputs do to 1e-12; fits may amplify), arrays by element."""
    if isinstance(want, list | tuple | np.ndarray) or isinstance(got, list | tuple | np.ndarray):
        if want is None or got is None:
            return want is None and got is None
        return len(want) == len(got) and all(map(same_value, want, got))
    if pd.isna(want) or pd.isna(got):
        return bool(pd.isna(want) and pd.isna(got))
    if isinstance(want, float | np.floating) or isinstance(got, float | np.floating):
        return math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-12)
    return bool(want == got)


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_module_values_are_those_of_their_own_alert(spark, lake_settings, datasim, survey):
    """Each science row carries what the module functions compute from that alert's own
    fields (pandas reference on the same records): the modules run on a second read of the
    alerts whose rows, queued for Python, do not hold the cutouts, zipped to the alerts
    by position, without a join, from the scan's column batches."""
    settings, _ = lake_settings
    adapter = get_adapter(survey)
    modules = raw2science.selected_modules(settings, survey)
    raw = spark.read.parquet(Lake(settings.paths.root, survey).raw)
    rows = raw2science.science_rows(raw, survey, (), modules, FailurePolicy.FAIL, tasks=2)
    science = rows.frame

    lines = science._jdf.queryExecution().executedPlan().toString().splitlines()
    assert any("Scan ExistingRDD" in line for line in lines)
    assert not any("Join" in line for line in lines)
    assert rows.columnar, "the zip read the alerts as rows: one more copy of each"
    assert rows.values is not None
    lines = rows.values._jdf.queryExecution().executedPlan().toString().splitlines()
    python = [i for i, line in enumerate(lines) if "ArrowEvalPython" in line]
    assert python, "no Python UDF in the plan"
    assert not any("cutout" in lines[i + 1] for i in python)

    outputs = [c.name for m in modules for c in m.outputs]
    got = science.select(adapter.alert_id, *outputs).toPandas().set_index(adapter.alert_id)
    records = [
        as_archived(adapter, read_alert_file(f)[0]) for f in iter_alert_files(datasim / survey)
    ]
    want = enriched_frame(records, survey, modules)
    want.index = pd.Index([r[adapter.alert_id] for r in records])
    assert sorted(got.index) == sorted(want.index)
    bad = [
        f"{alert} {name}: {want.at[alert, name]!r:.80} != {got.at[alert, name]!r:.80}"
        for alert in want.index
        for name in outputs
        if not same_value(want.at[alert, name], got.at[alert, name])
    ]
    assert not bad, bad[:10]


def test_noscience_applies_cuts_only(spark, datasim, tmp_path):
    settings, expected = make_lake(spark, datasim, tmp_path)
    science = run_bounded(spark, settings, "ztf", noscience=True)
    assert science.count() == len(expected["ztf"])
    assert "xm_vsx_id" not in science.columns
    assert {r[0] for r in science.select("fink_science_modules").collect()} == {"no-science"}


def _boom_and_ok():
    """Two modules on ``x``: ``boom`` always raises, ``ok`` doubles it."""

    @science_module(name="boom", version="0.1", inputs=["x"], outputs=[("y", "double")])
    def boom(df: pd.DataFrame) -> pd.DataFrame:
        raise ZeroDivisionError("bad batch")

    @science_module(name="ok", version="0.1", inputs=["x"], outputs=[("z", "double")])
    def ok(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"z": df["x"] * 2.0}, index=df.index)

    return boom, ok


def test_failing_module_is_nulled_and_counted(spark):
    boom, ok = _boom_and_ok()
    counters = FailureCounters(spark, [boom, ok])
    runner = ModuleRunner((boom, ok), FailurePolicy.NULL_AND_COUNT, counters)
    out = runner(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    assert out["y"].isna().all()
    assert out["z"].tolist() == [2.0, 4.0, 6.0]
    assert out[FAILURES_COLUMN.name].tolist() == ["boom"] * 3
    with pytest.raises(ZeroDivisionError):
        ModuleRunner((boom,), FailurePolicy.FAIL)(pd.DataFrame({"x": [1.0]}))


@pytest.mark.parametrize("modules", [True, False], ids=["modules", "noscience"])
@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_batch_counts_as_written_and_on_a_replayed_batch(spark, datasim, tmp_path, survey, modules):
    """The write counts the cuts as it goes (the zip with modules, an observation without);
    a batch committed before a crash is not written again, and its counts come from an
    aggregation of their own, equal to the first."""
    settings, expected = make_lake(spark, datasim, tmp_path)
    lake = Lake(settings.paths.root, survey)
    settings.raw2science.noscience = not modules
    writer = raw2science.ScienceBatchWriter(spark, settings, build_survey(settings, survey))
    raw = spark.read.parquet(lake.raw)
    writer(raw, 0)
    files = sorted(spark.read.parquet(lake.science).inputFiles())
    writer(raw, 0)
    assert sorted(spark.read.parquet(lake.science).inputFiles()) == files
    lines = (Path(settings.paths.state_dir) / "metrics" / "raw2science.jsonl").read_text()
    first, replayed = [json.loads(line) for line in lines.splitlines()]
    n = {"ztf": 50, "rubin": 100}[survey]
    assert (first["rows_in"], first["rows_out"]) == (n, len(expected[survey]))
    assert (replayed["rows_in"], replayed["rows_out"], replayed["detail"]["cut"]) == (
        first["rows_in"],
        first["rows_out"],
        first["detail"]["cut"],
    )
    assert sum(first["detail"]["cut"].values()) >= n - len(expected[survey])
    assert spark.read.parquet(lake.science).count() == len(expected[survey])


def test_session_failure_counters_are_shared_and_count_each_run(spark):
    """A query started again in the same session reuses its module counters (and so its
    science expressions); each run still counts only its own failures, through Spark tasks."""

    boom, ok = _boom_and_ok()
    counters = FailureCounters.of_session(spark, [boom, ok])
    assert FailureCounters.of_session(spark, [boom, ok]) is counters
    assert FailureCounters.of_session(spark, [ok]) is not counters
    frame = spark.createDataFrame(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0]})).repartition(2)
    for _run in range(2):
        before = counters.snapshot()
        shared = FailureCounters.of_session(spark, [boom, ok])
        column = modules_column([boom, ok], {"x": F.col("x")}, FailurePolicy.NULL_AND_COUNT, shared)
        rows = frame.select(column.alias("m")).select("m.*").collect()
        assert sorted(r["z"] for r in rows) == [2.0, 4.0, 6.0, 8.0, 10.0]
        assert {r["y"] for r in rows} == {None}
        assert counters.since(before) == {"boom": 5}


def _leaf_fields(kind: T.DataType) -> int:
    """Number of leaf fields of a Spark type, through structs and arrays."""
    if isinstance(kind, T.StructType):
        return sum(_leaf_fields(f.dataType) for f in kind.fields)
    if isinstance(kind, T.ArrayType):
        return _leaf_fields(kind.elementType)
    return 1


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_modules_read_only_the_alert_fields_they_use(spark, lake_settings, survey):
    """The modules' read of the alerts is pruned to the fields of their inputs and of the
    cuts. A lambda over whole history elements, or a struct handed whole from one select to
    the next, made Spark read every field of ``prv_candidates``/``prvDiaSources`` and of
    ``candidate``/``diaSource``: the largest part of what the modules cost Rubin alerts."""
    settings, _ = lake_settings
    raw = spark.read.parquet(Lake(settings.paths.root, survey).raw)
    modules = raw2science.selected_modules(settings, survey)
    cuts = build_survey(settings, survey).cuts
    values = raw2science.science_rows(raw, survey, cuts, modules, "null_and_count").values
    assert values is not None
    leaves = values._jdf.queryExecution().sparkPlan().collectLeaves()
    assert leaves.length() == 1
    read = T.StructType.fromJson(json.loads(leaves.apply(0).requiredSchema().json()))
    assert not any(n.startswith("cutout") for n in read.names), read.names
    history, alert = {
        "ztf": ("prv_candidates", "candidate"),
        "rubin": ("prvDiaSources", "diaSource"),
    }[survey]
    for name in (history, alert):
        assert name in read.names
        kept, full = _leaf_fields(read[name].dataType), _leaf_fields(raw.schema[name].dataType)
        assert kept <= full // 4, (name, kept, full)
