"""The Spark canonical columns and cuts equal the pure-Python reference of surveys/fields.py.

The input is the raw archive as stream2raw writes it (real alerts, encoded as on the wire,
decoded on the JVM by ``decode`` + ``archive_columns``), without Kafka: the reference is
``canonical_frame`` / ``evaluate_cuts`` applied to the very records that were encoded.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fink_broker.engine.canonical import (
    METADATA_KEY,
    canonical_columns,
    canonical_select,
    canonical_staged,
    cut_flags,
    passes_all,
    transform_column,
    with_canonical,
)
from fink_broker.engine.decode import archive_columns, decode
from fink_broker.surveys import get_adapter, rubin_fields, ztf_fields
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from fink_broker.surveys.fields import (
    CANONICAL_COLUMNS,
    CANONICAL_NAMES,
    BandMap,
    Cut,
    Epochs,
    Field,
    History,
    canonical_frame,
    evaluate_cuts,
)
from tests.alert_compare import as_archived
from tests.spark.test_decode import kafka_like

pytestmark = pytest.mark.spark

CUTS = {"ztf": ztf_fields.CUTS, "rubin": rubin_fields.CUTS}
#: Java's and C's pow/log10/hypot may differ by an ulp or two
REL = 1e-12


def archive(spark: SparkSession, survey: str, records: Sequence[Mapping[str, Any]]) -> DataFrame:
    """Records as stream2raw archives them: encoded, decoded on the JVM, provenance added."""
    adapter = get_adapter(survey)
    messages = [adapter.encode(r) for r in records]
    return archive_columns(decode(kafka_like(spark, messages), adapter), adapter)


@pytest.fixture(scope="module")
def real(spark, datasim: Path) -> dict[str, tuple[list[dict], DataFrame, list[dict]]]:
    """Per survey: the alerts as archived (resolved into the reader schema), their archive
    frame, and the alerts as published."""
    out = {}
    for survey in ("ztf", "rubin"):
        records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
        # the Python reference reads what the archive holds: each alert resolved into the
        # reader schema (a v9 Rubin alert in a v11 archive has no ssSource.residualRa)
        adapter = get_adapter(survey)
        resolved = [as_archived(adapter, r) for r in records]
        out[survey] = (resolved, archive(spark, survey, records), records)
    return out


def same_number(want: Any, got: Any) -> bool:
    """Doubles: null and NaN are one value (pandas holds NaN for null), else within REL."""
    want_null = want is None or (isinstance(want, float) and math.isnan(want))
    got_null = got is None or (isinstance(got, float) and math.isnan(got))
    if want_null or got_null:
        return want_null and got_null
    return math.isclose(want, got, rel_tol=REL, abs_tol=1e-300)


def mismatches(expected: pd.DataFrame, rows: Sequence[Row], prefix: str = "") -> list[str]:
    """Every (row, column) where Spark's value (``prefix + name``) differs from the reference."""
    out = []
    for i, row in enumerate(rows):
        for spec in CANONICAL_COLUMNS:
            if spec.name not in expected.columns:
                continue
            want, got = expected[spec.name].iloc[i], row[prefix + spec.name]
            element = spec.element_dtype
            if element is not None:
                ok = (want is None) == (got is None)
                if ok and want is not None:
                    ok = len(want) == len(got) and all(
                        same_number(w, g) if element == "double" else w == g
                        for w, g in zip(want, got, strict=True)
                    )
            elif spec.dtype == "double":
                ok = same_number(want, got)
            else:
                ok = (got is None) if pd.isna(want) else want == got
            if not ok:
                out.append(f"row {i} {spec.name}: expected {want!r:.120}, got {got!r:.120}")
    return out


#: table paths the archive's reader schema lacks (ZTF 4.02, Rubin lsst.v11_1): v9's Solar
#: System fields that v10 renamed or replaced, and nothing else (a typo in a table would show
#: up here as a new absent path)
ABSENT = {
    "ztf": "",
    "rubin": "MPCORB.mpcDesignation, ssSource.predictedVMagnitude, ssSource.residualDec, "
    "ssSource.residualRa",
}


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_canonical_columns_and_cuts_equal_the_python_reference(real, survey, caplog):
    records, df, _published = real[survey]
    cuts = CUTS[survey]
    with caplog.at_level(logging.INFO, logger="fink_broker.engine.canonical"):
        extended = with_canonical(df, survey)
    absent = [r.getMessage().split(": ")[-1] for r in caplog.records if "absent" in r.msg]
    assert absent == ([ABSENT[survey]] if ABSENT[survey] else [])
    assert extended.columns[: len(df.columns)] == df.columns  # raw columns kept, in place
    types = {f.name: f.dataType for f in extended.schema.fields}
    assert {s.name: types[s.name] for s in CANONICAL_COLUMNS} == {
        s.name: T.DataType.fromDDL(s.dtype) for s in CANONICAL_COLUMNS
    }
    assert df.select(*canonical_select(df, survey)).columns == list(CANONICAL_NAMES)
    # one pass: the with_canonical columns, the same computed by canonical_select from the
    # raw fields (prefixed here only to tell them apart), the cut flags
    computed = [c.alias(f"raw_{n}") for n, c in canonical_columns(df, survey).items()]
    rows = (
        extended.orderBy("kafka_offset")
        .select(
            *CANONICAL_NAMES,
            *computed,
            *cut_flags(df, cuts),
            passes_all(cuts, df).alias("passed_all"),
        )
        .collect()
    )
    assert len(rows) == len(records)
    reference = canonical_frame(records, survey)
    assert mismatches(reference, rows) == []
    assert mismatches(reference, rows, prefix="raw_") == []
    expected = evaluate_cuts(cuts, records)
    for cut in cuts:
        assert [r[f"cut_{cut.name}"] for r in rows] == expected[cut.name].tolist(), cut.name
    assert [r["passed_all"] for r in rows] == expected["passed_all"].tolist()
    assert 0 < expected["passed_all"].sum() < len(records)
    # staged: the sorted epoch arrays computed once in a first projection, the same values
    staged = canonical_staged(df, survey)
    assert staged.stage and set(staged.columns) == set(CANONICAL_NAMES)
    two_steps = (
        df.select("*", *staged.stage_select())
        .orderBy("kafka_offset")
        .select(*[c.alias(f"staged_{n}") for n, c in staged.columns.items()])
    )
    assert mismatches(reference, two_steps.collect(), prefix="staged_") == []
    # ... and Spark keeps them computed once: one sort_array per stage column, where the
    # one-step columns sort once per hist_* column
    plan = two_steps._jdf.queryExecution().optimizedPlan().toString()
    assert plan.count("sort_array(") == len(staged.stage), plan
    one_step = df.select(*computed)._jdf.queryExecution().optimizedPlan().toString()
    assert one_step.count("sort_array(") > len(staged.stage)
    # passes_all without a frame combines the cut_<name> columns cut_flags added
    flagged = df.select("kafka_offset", *cut_flags(df, cuts))
    assert flagged.where(passes_all(cuts)).count() == expected["passed_all"].sum()


def test_naming_clashes_and_reuse_of_marked_columns(real):
    _, df, _ = real["ztf"]
    extended = with_canonical(df, "ztf", ["objectId", "mjd"])
    # ZTF's raw objectId is the canonical objectId: replaced in place, not duplicated
    assert extended.columns == [*df.columns, "mjd"]
    assert extended.schema["objectId"].metadata[METADATA_KEY] == {
        "name": "objectId",
        "survey": "ztf",
    }
    # a second call replaces its own columns instead of failing
    assert with_canonical(extended, "ztf", ["mjd"]).columns == extended.columns
    clashing = df.withColumn("mjd", F.lit(0.0))
    with pytest.raises(ValueError, match="prefix="):
        with_canonical(clashing, "ztf", ["mjd"])
    prefixed = with_canonical(clashing, "ztf", ["mjd", "band"], prefix="c_")
    assert prefixed.columns[-2:] == ["c_mjd", "c_band"]
    # the bridge gets the canonical names back, reading the marked columns
    inputs = canonical_columns(prefixed, "ztf", ["mjd", "band"])
    assert "c_mjd" in str(inputs["mjd"]) and "c_band" in str(inputs["band"])
    row = prefixed.orderBy("kafka_offset").select(*canonical_select(prefixed, "ztf")).first()
    assert row is not None and row["mjd"] > 58000 and row["band"] in ("g", "r")
    with pytest.raises(ValueError, match="not a raw rubin alert frame"):
        canonical_select(df, "rubin")
    with pytest.raises(ValueError, match="not canonical"):
        canonical_select(df, "ztf", ["magpsf"])


def _ztf_edge_cases(records: Sequence[dict]) -> list[dict]:
    base = next(r for r in records if r["prv_candidates"])
    prv = base["prv_candidates"]
    limits = [p for p in prv if p["magpsf"] is None]
    assert limits, "the sample should hold non-detections"
    out = []
    for edit in range(7):
        r = copy.deepcopy(base)
        c = r["candidate"]
        if edit == 0:  # sentinels everywhere, i band, unset quality fields
            c.update(sgscore1=-999.0, distpsnr1=-999.0, ssdistnr=-999.0, ssmagnr=-999.0)
            c.update(ssnamenr="null", fid=3, rb=None, nbad=None)
        elif edit == 1:  # a known asteroid, negative subtraction
            c.update(ssnamenr="1234", ssdistnr=2.5, ssmagnr=18.25, isdiffpos="f")
        elif edit == 2:  # no history at all
            r["prv_candidates"] = None
            c["isdiffpos"] = "0"
        elif edit == 3:  # only upper limits, out of order, one at the alert's own time
            tie = dict(limits[0], jd=c["jd"])
            r["prv_candidates"] = [*reversed(limits), tie]
        elif edit == 4:  # detections out of order, one tied with the current epoch
            dets = [dict(p, magpsf=19.0 + i / 8, isdiffpos="f") for i, p in enumerate(prv)]
            dets.append(dict(prv[0], magpsf=17.5, jd=c["jd"]))
            r["prv_candidates"] = list(reversed(dets))
        elif edit == 5:  # empty list, an unknown filter id
            r["prv_candidates"] = []
            c["fid"] = 4
        else:  # nbad too high
            c["nbad"] = 3
        out.append(r)
    return out


def _rubin_edge_cases(records: Sequence[dict]) -> list[dict]:
    base = next(r for r in records if r["prvDiaSources"])
    sso = next(r for r in records if r["ssSource"] is not None)
    prv = base["prvDiaSources"]
    out = []
    for edit in range(6):
        r = copy.deepcopy(sso if edit == 4 else base)
        s = r["diaSource"]
        if edit == 0:  # zero flux, object id 0, no diaObject, unset flags and reliability
            s.update(psfFlux=0.0, diaObjectId=0, reliability=None, psfFlux_flag=None)
            r["diaObject"] = None
        elif edit == 1:  # negative flux, a raised flag, no history
            s.update(psfFlux=-1500.0, pixelFlags_bad=True)
            r["prvDiaSources"] = None
        elif edit == 2:  # NaN and null fluxes, NaN reliability
            s.update(psfFlux=math.nan, psfFluxErr=None, reliability=math.nan)
            r["prvDiaSources"] = [dict(p, psfFlux=None) for p in prv]
        elif edit == 3:  # history out of order with non-positive fluxes, a tie with now
            items = [dict(p, psfFlux=-abs(p["psfFlux"] or 1.0)) for p in prv]
            items.append(dict(prv[0], midpointMjdTai=s["midpointMjdTai"], psfFlux=0.0))
            r["prvDiaSources"] = list(reversed(items))
        elif edit == 4:  # Solar System source without MPCORB: the ssObjectId names it
            r["MPCORB"] = None
            s["ssObjectId"] = 987654321
        else:  # empty history
            r["prvDiaSources"] = []
        out.append(r)
    return out


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_edge_cases_match_python(spark, real, survey):
    published = (_ztf_edge_cases if survey == "ztf" else _rubin_edge_cases)(real[survey][2])
    df = archive(spark, survey, published)
    adapter = get_adapter(survey)
    records = [as_archived(adapter, r) for r in published]
    cuts = CUTS[survey]
    rows = df.orderBy("kafka_offset").select(*canonical_select(df, survey), *cut_flags(df, cuts))
    rows = rows.collect()
    assert len(rows) == len(records)
    assert mismatches(canonical_frame(records, survey), rows) == []
    expected = evaluate_cuts(cuts, records)
    for cut in cuts:
        assert [r[f"cut_{cut.name}"] for r in rows] == expected[cut.name].tolist(), cut.name
    if survey == "ztf":
        assert rows[0]["band"] == "i" and rows[5]["band"] is None
        assert rows[1]["flux"] < 0 and rows[1]["sso_ref_name"] == "1234"
        assert len(rows[2]["hist_mjd"]) == 1 and rows[2]["uplim_mjd"] == []
    else:
        assert rows[0]["mag"] is None and rows[0]["objectId"] is None
        # a NaN flux stays NaN (as in Python) but has no magnitude: null, not NaN, in Spark
        assert math.isnan(rows[2]["flux"]) and rows[2]["mag"] is None
        assert rows[4]["sso_ref_name"] == "987654321"


def test_schema_versions_missing_paths_read_as_typed_nulls(spark):
    # a v10-like Rubin row: MPCORB/residuals gone, mpc_orbits/ephOffset/designation new
    schema = T.StructType.fromDDL(
        "diaSourceId long, diaSource struct<diaObjectId:long, ssObjectId:long, "
        "midpointMjdTai:double, ra:double, dec:double, band:string, psfFlux:double, "
        "psfFluxErr:double>, mpc_orbits struct<packed_primary_provisional_designation:string>, "
        "ssSource struct<designation:string, ephOffset:double, ephVmag:float>"
    )
    source = {"diaObjectId": 0, "ssObjectId": 5, "midpointMjdTai": 61000.25, "ra": 10.0}
    source |= {"dec": -5.0, "band": "r", "psfFlux": 2500.0, "psfFluxErr": 120.0}
    records = [
        {
            "diaSourceId": 1,
            "diaSource": source,
            "mpc_orbits": {"packed_primary_provisional_designation": "K08A00B"},
            "ssSource": {"designation": "2008 AB", "ephOffset": 0.21, "ephVmag": 20.5},
        },
        {"diaSourceId": 2, "diaSource": dict(source, psfFlux=-3.0), "mpc_orbits": None},
    ]
    df = spark.createDataFrame(records, schema)
    rows = df.select(*canonical_select(df, "rubin")).collect()
    assert mismatches(canonical_frame(records, "rubin"), rows) == []
    assert rows[0]["sso_ref_name"] == "K08A00B" and rows[1]["sso_ref_name"] == "5"
    assert rows[0]["hist_mjd"] == [61000.25] and rows[0]["ndethist"] is None


def test_transform_column_alone_and_unknown_transforms(spark):
    df = spark.createDataFrame(
        [({"x": 1.5, "f": 2}, [{"t": 2.0, "m": 1.0}, {"t": 1.0, "m": None}])],
        "c struct<x:double, f:int>, l array<struct<t:double, m:float>>",
    )
    epochs = Epochs("l", time="t", current_time="c.x")
    history = History(epochs, Field("m"), Field("c.f"))
    row = df.select(
        transform_column(Field("c.x", scale=2.0, null_if=("null", -999)), df.schema).alias("a"),
        transform_column(BandMap("c.f", {2: "r", "2": "no"}), df.schema).alias("b"),
        transform_column(history, df.schema, "array<double>").alias("h"),
        transform_column(History(epochs, Field("t")), df.schema).alias("t"),
    ).first()
    assert row is not None
    assert (row["a"], row["b"], row["h"], row["t"]) == (
        3.0,
        "r",
        [None, 2.0, 1.0],
        [1.0, None, 2.0],
    )
    with pytest.raises(TypeError, match="no Spark builder for Cut"):
        transform_column(Cut("x", "c.x", ">", 0), df.schema)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be compared"):
        cut_flags(df, [Cut("x", "c.x", ">", "a")])
