"""The science archive the API tests query: the real alerts, and two later alerts of each
object, so light curves have several points in both bands.

The real sample has one alert per object once the quality cuts ran: no rate, no colour,
no earlier detection that is itself archived. Each object gets two more alerts (the science
archive is written again with them): 0.1 day later in the other band (a colour), and 1 day
later 0.3 mag brighter in the first band (a rate, rising). Ids are shifted so that the
new alerts are new (ZTF ``candid``, Rubin ``diaSourceId``), the object ids are kept.

The real ZTF histories hold upper limits only; each later ZTF alert's history also holds
the real alert (archived: a ``valid`` point) and a detection half a day before it that is
not archived (a ``badquality`` point, as one the quality cuts dropped).

The real Rubin alerts carry no forced photometry; each later Rubin alert carries two
points (``prvDiaForcedSources`` as the schema types them), measured like its diaSource
one and two days before it, so ``/fp`` has points to serve and page.

One ZTF object also has a replay copy ``<objectId>_1`` (as ``fink simulator`` makes them,
fresh alert id): ``_`` is legal in an id, and the rows of one must never answer for the
other.

No built-in module scores anomalies yet; every alert gets an ``anomaly_score`` in [-1, 0)
drawn from a hash of its alert id, as Fink's anomaly module would add it, so the anomaly
index and ``/api/v1/anomaly`` have alerts on both sides of the threshold.
"""

from __future__ import annotations

import shutil

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fink_broker.engine.canonical import canonical_columns
from fink_broker.engine.hbase_rows import ANOMALY_COLUMN
from fink_broker.lake import Lake

#: id shift of the added alerts (copy k: k * this), far above the real ids' span
ID_SHIFT = 10**15
#: (days later, other band, magnitude change) of each added alert
EPOCHS = ((0.1, True, 0.2), (1.0, False, -0.3))


def _as_items(science: DataFrame, list_name: str, source: str, overrides: dict):
    """An item of the history list ``list_name`` from the fields of the struct column
    ``source`` that the item has, with ``overrides`` (name -> column), nulls elsewhere,
    each cast to the item's type."""
    item_type = science.schema[list_name].dataType.elementType
    present = set(science.schema[source].dataType.fieldNames())

    def value(name: str):
        if name in overrides:
            return overrides[name]
        return F.col(f"{source}.{name}") if name in present else F.lit(None)

    return F.struct(*[value(f.name).cast(f.dataType).alias(f.name) for f in item_type.fields])


def _ztf_history(science: DataFrame):
    """The alert's history with two more detections: the (real) alert itself, which is
    archived (a ``valid`` point, not a bad-quality one), and one half a day earlier that
    is not (``badquality``, as a detection the quality cuts dropped)."""
    prv_type = science.schema["prv_candidates"].dataType
    jd, candid = F.col("candidate.jd"), F.col("candidate.candid")
    itself = _as_items(science, "prv_candidates", "candidate", {})
    dropped = _as_items(
        science, "prv_candidates", "candidate", {"jd": jd - 0.5, "candid": candid + 1}
    )
    return F.concat(
        F.coalesce(F.col("prv_candidates"), F.array().cast(prv_type)), F.array(itself, dropped)
    )


def _ztf(science: DataFrame, k: int, days: float, flip: bool, dmag: float) -> DataFrame:
    science = science.withColumn("prv_candidates", _ztf_history(science))
    fid = F.col("candidate.fid")
    candidate = (
        F.col("candidate")
        .withField("candid", F.col("candidate.candid") + k * ID_SHIFT)
        .withField("jd", F.col("candidate.jd") + days)
        .withField("fid", F.when(F.lit(flip), 3 - fid).otherwise(fid))
        .withField("magpsf", F.col("candidate.magpsf") + dmag)
    )
    return science.withColumn("candid", F.col("candid") + k * ID_SHIFT).withColumn(
        "candidate", candidate
    )


#: the copy number of the replayed object
REPLAY_SUFFIX = "_1"


def replay_copy(science: DataFrame) -> DataFrame:
    """The alerts of the first ZTF object as object ``<objectId>_1``, with fresh ids."""
    first = science.agg(F.min("objectId")).first()[0]
    shifted = _ztf(science.where(F.col("objectId") == first), len(EPOCHS) + 1, 0.0, False, 0.0)
    return shifted.withColumn("objectId", F.concat(F.col("objectId"), F.lit(REPLAY_SUFFIX)))


_RUBIN_BANDS = {"g": "r", "r": "g", "i": "z", "z": "i", "u": "g", "y": "z"}


def _rubin(science: DataFrame, k: int, days: float, flip: bool, dmag: float) -> DataFrame:
    band = F.col("diaSource.band")
    other = F.element_at(F.create_map(*[F.lit(x) for kv in _RUBIN_BANDS.items() for x in kv]), band)
    source = (
        F.col("diaSource")
        .withField("diaSourceId", F.col("diaSource.diaSourceId") + k * ID_SHIFT)
        .withField("midpointMjdTai", F.col("diaSource.midpointMjdTai") + days)
        .withField("band", F.when(F.lit(flip), other).otherwise(band))
        .withField("psfFlux", F.col("diaSource.psfFlux") * 10 ** (-0.4 * dmag))
    )
    return (
        science.where(F.col("diaSource.diaObjectId") != 0)
        .withColumn("diaSourceId", F.col("diaSourceId") + k * ID_SHIFT)
        .withColumn("diaSource", source)
        .withColumn("prvDiaForcedSources", _forced(science, k))
    )


def _forced(science: DataFrame, k: int):
    """Two forced-photometry points one and two days before the (shifted) diaSource:
    its fields where the forced source has them, fresh ids, nulls elsewhere."""

    def point(days: int):
        return _as_items(
            science,
            "prvDiaForcedSources",
            "diaSource",
            {
                "diaForcedSourceId": F.col("diaSource.diaSourceId")
                + (10 * k + days) * ID_SHIFT // 100,
                "midpointMjdTai": F.col("diaSource.midpointMjdTai") - days,
            },
        )

    return F.array(point(1), point(2))


def add_later_alerts(spark, settings, survey: str) -> DataFrame:
    """Add the later alerts of every object and an anomaly score to the survey's science
    archive; the whole archive, read back."""
    lake = Lake(settings.paths.root, survey)
    science = spark.read.parquet(lake.science)
    shift = _ztf if survey == "ztf" else _rubin
    copies = [shift(science, k + 1, *epoch) for k, epoch in enumerate(EPOCHS)]
    # shifted values (magpsf + 0.2...) widen float fields to double: keep the real types
    extra = (
        copies[0]
        .unionByName(copies[1])
        .select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in science.schema.fields])
    )
    if survey == "ztf":
        replay = replay_copy(science)
        extra = extra.unionByName(
            replay.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in science.schema])
        )
    alert_id = canonical_columns(science, survey, ["alertId"])["alertId"]
    scored = (
        science.unionByName(extra)
        .withColumn(ANOMALY_COLUMN, (F.abs(F.xxhash64(alert_id)) % 1000) / 1000.0 - 1.0)
        .repartition(2)
    )
    rebuilt = f"{lake.science}.rebuilt"
    scored.write.partitionBy("night").parquet(rebuilt)
    shutil.rmtree(lake.science)
    shutil.move(rebuilt, lake.science)
    return spark.read.parquet(lake.science)
