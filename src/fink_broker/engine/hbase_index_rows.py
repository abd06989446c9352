"""The index rows of the archive, as projections of the science frame (built on the JVM).

Each table but the main one is a :class:`Part`: an optional first projection (an explode,
a UDF), an optional filter, and the ``(table, row, cells)`` projection. Index rows hold the
main-table key of their alert (``r:key``) and the values their queries filter on, so the
API reads an index, then only the alerts it selected (layout: :mod:`fink_broker.tables.layout`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fink_broker.engine.canonical import history_items
from fink_broker.engine.filters import (
    filter_input_columns,
    filter_inputs,
    topics_column,
    verdicts_column,
)
from fink_broker.plugins import FailurePolicy
from fink_broker.plugins.filters import AlertFilter
from fink_broker.surveys.archive_shapes import ArchiveShape
from fink_broker.surveys.fields import History, survey_table
from fink_broker.tables import layout as L
from fink_broker.tables.sky import alert_pixels

#: the module output that labels alerts for the class index
CLASS_COLUMN = "finkclass"
#: the module output that names known Solar System objects for the SSO index
SSO_COLUMN = "sso_name"
#: the module output that scores anomalies for the anomaly index (Fink's name)
ANOMALY_COLUMN = "anomaly_score"
#: prefix and suffix of the cross-match outputs that name a catalogue counterpart
_XM_PREFIX, _XM_SUFFIX = "xm_", "_id"


@dataclass(frozen=True)
class Part:
    """The rows of one table as projections of the science frame: optional first
    projections (``stages``: an explode, a UDF), an optional filter, then the
    ``(table, row, cells)`` projection."""

    columns: tuple[Column, ...]
    stages: tuple[tuple[Column, ...], ...] = ()
    where: Column | None = None

    def apply(self, frame: DataFrame) -> DataFrame:
        for stage in self.stages:
            frame = frame.select(*stage)
        if self.where is not None:
            frame = frame.where(self.where)
        return frame.select(*self.columns).where(F.col("row").isNotNull())


def cells(values: list[tuple[str, Column]]) -> Column:
    """``map<family:qualifier, bytes>`` of (column name, encoded value) pairs; a null
    value writes no cell (see :mod:`fink_broker.tables.cells`)."""
    names = F.array(*[F.lit(name) for name, _ in values])
    encoded = F.array(*[col for _, col in values])
    return F.map_filter(F.map_from_arrays(names, encoded), lambda _k, v: v.isNotNull())


def encode(col: Column, dtype: str) -> Column:
    """A value as the bytes of its cell: binaries as they are, the rest as text."""
    if dtype == "binary":
        return col
    return col.cast("string").cast("binary")


def index_pairs(values: Sequence[tuple[str, Column, str]]) -> list[tuple[str, Column]]:
    """(column name, encoded value) of index values given as (qualifier in ``r:``,
    column, Spark type)."""
    return [(L.column(L.INDEX_FAMILY, n), encode(c, t)) for n, c, t in values]


def index_cells(values: Sequence[tuple[str, Column, str]]) -> Column:
    """The cells of index values (see :func:`index_pairs`)."""
    return cells(index_pairs(values))


def row(table: str, key: Column, values: Column) -> tuple[Column, ...]:
    return (F.lit(table).alias("table"), key.alias("row"), values.alias("cells"))


def key(*parts: Column) -> Column:
    """Parts joined by the key separator; null if any part is null."""
    joined: list[Column] = []
    for i, part in enumerate(parts):
        joined += [F.lit(L.KEY_SEP), part] if i else [part]
    return F.concat(*joined)


def mjd_key(mjd: Column) -> Column:
    return F.format_string(L.MJD_FORMAT, mjd)


def inverted_key(mjd: Column) -> Column:
    return F.format_string(L.INVERTED_FORMAT, F.lit(L.MJD_INVERSION) - mjd)


def sso_key(name: Column) -> Column:
    """:func:`fink_broker.tables.layout.sso_key` on the JVM."""
    return F.lower(F.regexp_replace(name, r"\s+", ""))


def without_separator(value: Column) -> Column:
    """Null where the text holds the key separator: it would make keys ambiguous."""
    return F.when(F.instr(value, L.KEY_SEP) == 0, value)


@F.pandas_udf(T.LongType())  # type: ignore[call-overload]
def _pixel(ra: pd.Series, dec: pd.Series) -> pd.Series:
    """Cone-search pixel of each alert (vectorised, Arrow batches)."""
    return pd.Series(alert_pixels(ra.to_numpy(), dec.to_numpy()))


@dataclass(frozen=True)
class AlertRefs:
    """What keys an alert's index rows, and what each of them carries."""

    #: object part of the keys, the alert's MJD and its key text
    obj: Column
    mjd: Column
    mjd_text: Column
    #: ``r:key`` (the main-table key) and ``r:mjd``
    refs: tuple[tuple[str, Column, str], ...]


def pixel_part(table: str, alert: AlertRefs, canon: dict[str, Column], first: Column) -> Part:
    """Cone-search rows: HEALPix pixel of the alert, its position and first detection."""
    # one UDF call per alert: the pixel is computed once, then filtered and formatted
    pixel = F.lpad(F.col("_pixel").cast("string"), L.PIXEL_DIGITS, "0")
    values = [
        *alert.refs,
        ("ra", canon["ra"], "double"),
        ("dec", canon["dec"], "double"),
        ("first", first, "double"),
    ]
    return Part(
        row(table, key(pixel, alert.mjd_text, alert.obj), index_cells(values)),
        stages=((F.col("*"), _pixel(canon["ra"], canon["dec"]).alias("_pixel")),),
        where=F.col("_pixel") >= 0,
    )


def latest_part(table: str, alert: AlertRefs, label: Column) -> Part:
    """Rows of a "newest alerts first" index: ``<label>·<100000-mjd>·<object>``."""
    return Part(
        row(table, key(label, inverted_key(alert.mjd), alert.obj), index_cells([*alert.refs])),
        where=label.isNotNull(),
    )


def anomaly_part(table: str, alert: AlertRefs, score: Column, threshold: float) -> Part:
    """``anomaly`` rows: alerts whose score is at most ``threshold`` (lower: more anomalous)."""
    return Part(
        row(
            table,
            key(inverted_key(alert.mjd), alert.obj),
            index_cells([*alert.refs, ("score", score, "double")]),
        ),
        where=score <= F.lit(threshold),
    )


def tag_part(
    science: DataFrame, table: str, alert: AlertRefs, filters: Sequence[AlertFilter], survey: str
) -> Part:
    """``tag`` rows: one per (alert, filter it passes), as the distribution routes it."""
    inputs = filter_input_columns(science.schema, survey, filter_inputs(filters))
    # a filter that raises on an alert tags it with nothing, as distribution publishes it
    # nowhere under its default policy: the archive is not held up by one filter's bug
    verdicts = verdicts_column(filters, inputs.columns, FailurePolicy.NULL_AND_COUNT)
    passed = topics_column(filters, [f.name for f in filters], F.col("_verdicts"))
    latest = latest_part(table, alert, F.col("_tag"))
    stages = (
        (F.col("*"), *inputs.stage_select()),
        (F.col("*"), verdicts.alias("_verdicts")),
        (F.col("*"), F.explode(passed).alias("_tag")),
    )
    return Part(latest.columns, stages=stages, where=latest.where)


def history_parts(
    science: DataFrame, table: str, shape: ArchiveShape, obj: Column
) -> tuple[list[Part], dict[str, dict[str, str]]]:
    """``upper`` rows: the items of the alert histories the survey declares (ZTF upper limits
    and earlier detections, Rubin forced photometry), each item whole, as JSON; and the
    Spark type of every field of each list (for the schema row: the API types them)."""
    canonical = survey_table(shape.name)
    parts, types = [], {}
    for points in shape.histories:
        history = canonical[points.canonical]
        if not isinstance(history, History):
            raise TypeError(f"{points.canonical} is not a History column of {shape.name}")
        found = history_items(history, science.schema)
        if found is None:
            continue
        items, item_type = found
        name = history.epochs.list_path
        types[name] = {f.name: f.dataType.simpleString() for f in item_type.fields}
        point = F.col("_p")
        mjd = point.getField("mjd")
        values = [
            ("point", F.to_json(point.getField("item")), "string"),
            ("mjd", mjd, "double"),
            ("kind", F.lit(points.kind), "string"),
            ("list", F.lit(name), "string"),
        ]
        parts.append(
            Part(
                row(
                    table, key(F.col("_obj"), mjd_key(mjd), F.lit(points.kind)), index_cells(values)
                ),
                stages=((obj.alias("_obj"), F.explode(items).alias("_p")),),
                where=mjd.isNotNull(),
            )
        )
    return parts, types


def names_part(science: DataFrame, table: str, alert: AlertRefs, canon: dict[str, Column]) -> Part:
    """``names`` rows: what the resolver finds an object by. The object and alert ids,
    the known Solar System object's name, and the id of each catalogue counterpart
    (``xm_<catalogue>_id``), keyed by the name in lower case."""
    entries = [
        (canon["objectId"], F.lit("object")),
        (canon["alertId"].cast("string"), F.lit("alert")),
    ]
    if SSO_COLUMN in science.columns:
        entries.append((F.col(SSO_COLUMN), F.lit("sso")))
    for name in science.columns:
        if name.startswith(_XM_PREFIX) and name.endswith(_XM_SUFFIX):
            catalogue = name[len(_XM_PREFIX) : -len(_XM_SUFFIX)]
            entries.append((F.col(name).cast("string"), F.lit(catalogue)))
    structs = F.array(*[F.struct(n.alias("name"), s.alias("source")) for n, s in entries])
    entry = F.col("_n")
    name = without_separator(entry.getField("name"))
    values = [
        *alert.refs,
        ("name", name, "string"),
        ("source", entry.getField("source"), "string"),
        ("objectId", canon["objectId"], "string"),
        ("alertId", canon["alertId"].cast("string"), "string"),
        ("ra", canon["ra"], "double"),
        ("dec", canon["dec"], "double"),
    ]
    keep = [F.col("*"), F.explode(structs).alias("_n")]
    return Part(
        row(table, key(F.lower(name), alert.obj), index_cells(values)),
        stages=(tuple(keep),),
        where=name.isNotNull() & (F.length(name) > 0),
    )


def is_cutout(field: T.StructField) -> bool:
    return field.name.startswith("cutout")


def _cutout_bytes(col: Column, dtype: T.DataType) -> Column:
    """The image bytes of a cutout: a binary column, or the binary field of a struct
    (ZTF's ``{fileName, stampData}``)."""
    if isinstance(dtype, T.StructType):
        binary = [f.name for f in dtype.fields if isinstance(f.dataType, T.BinaryType)]
        return col.getField(binary[0]) if binary else F.lit(None).cast("binary")
    return col


def cutout_part(science: DataFrame, table: str, alert: AlertRefs, alert_id: Column) -> Part:
    """``cutouts`` rows: the three stamps of each alert, keyed by alert id."""
    fields = {f.name: f.dataType for f in science.schema.fields if is_cutout(f)}
    stamps = [
        (L.column(L.CUTOUT_FAMILY, kind), _cutout_bytes(F.col(f"cutout{kind}"), dtype))
        for kind in L.CUTOUT_KINDS
        if (dtype := fields.get(f"cutout{kind}")) is not None
    ]
    return Part(row(table, alert_id.cast("string"), cells([*stamps, *index_pairs(alert.refs)])))
