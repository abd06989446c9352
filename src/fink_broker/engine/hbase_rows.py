"""Science alerts -> HBase rows of every archive table, built on the JVM.

The pure builder :func:`archive_rows` turns a science DataFrame (batch or micro-batch) into
one frame of ``(table, row, cells)`` with ``cells`` a ``map<string, binary>`` from
``family:qualifier`` to the encoded value, for the main table, the index tables and the
cutouts (layout: :mod:`fink_broker.tables.layout`). Every value is encoded here, by Spark:
``engine/hbase_sink.py`` then only ships bytes to the Thrift gateway.

A main-table row has three cells: ``i:alert``, the survey's own values, and ``d:fink``,
Fink's, each one Avro record (``to_avro``, schema recorded in the schema table), and
``d:schema``, the key of that schema row. One cell per column, as Fink's own archive does,
costs the HBase server per cell: 130 cells a row ran at 724 rows/s on the 2-core machine
where one packed cell ran at 5,133 rows/s (happybase puts of 3,000 rows). The API
unpacks the records into the same ``family:qualifier`` columns:

* ``i:`` (survey) holds the survey's own top-level fields and the fields of its
  structs. The fields of the struct that carries the alert time (ZTF ``candidate``,
  Rubin ``diaSource``) keep their bare names (``i:magpsf``, ``i:psfFlux``), as in Fink's
  API; other structs prefix theirs (``i:diaObject.nDiaSources``). A struct field with the
  name of a top-level field (``candidate.candid``) is the same value and is not repeated
  (:func:`fink_broker.tables.layout.flatten_survey`). Histories (arrays of structs:
  ``prv_candidates``, ``prvDiaSources``) are not repeated on every alert: earlier alerts
  have their own rows, and limits and forced photometry go to the ``upper`` table.
  Cutouts go to the ``cutouts`` table.
* ``d:`` (Fink) holds everything Fink added (science modules, provenance, Kafka position,
  ingest time, night) and the survey-agnostic canonical columns (``d:objectId``,
  ``d:mjd``, ``d:mag``, ``d:flux``...) that the API queries on for either survey.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.avro.functions import to_avro

from fink_broker import __version__
from fink_broker.engine.canonical import canonical_columns
from fink_broker.engine.outgoing import avro_schema_json
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import SurveyAdapter, alert_struct, survey_fields
from fink_broker.tables import layout as L
from fink_broker.tables.sky import alert_pixels

#: canonical columns stored in ``d:`` of every alert
CANONICAL_STORED = (
    *("objectId", "alertId", "mjd", "ra", "dec"),
    *("band", "mag", "magerr", "flux", "fluxerr"),
)
_LIMIT_INPUTS = ("uplim_mjd", "uplim_band", "uplim_maglim")
_FORCED_INPUTS = ("forced_mjd", "forced_band", "forced_flux", "forced_fluxerr")
#: the module output that labels alerts for the class index
CLASS_COLUMN = "fink_class"
#: the module output that names known Solar System objects for the SSO index
SSO_COLUMN = "sso_name"
ROW_SCHEMA = "table string, row string, cells map<string, binary>"


@dataclass(frozen=True)
class ArchiveRows:
    """The rows of one batch for every table, and what the schema row must record."""

    rows: DataFrame
    #: ``family:qualifier`` -> Spark type (``simpleString``) of every main-table column
    main_types: dict[str, str]
    #: packed cell (``i:alert``, ``d:fink``) -> the Avro schema (JSON) its records use
    record_schemas: dict[str, str]
    #: key of the schema row that describes these rows (each main row carries it)
    schema_key: str


@dataclass(frozen=True)
class _Part:
    """The rows of one table as projections of the science frame: an optional first
    projection (``pre``, e.g. an explode), an optional filter, the ``(table, row, cells)``
    projection."""

    columns: tuple[Column, ...]
    pre: tuple[Column, ...] = ()
    where: Column | None = None

    def apply(self, frame: DataFrame) -> DataFrame:
        if self.pre:
            frame = frame.select(*self.pre)
        if self.where is not None:
            frame = frame.where(self.where)
        return frame.select(*self.columns).where(F.col("row").isNotNull())


@dataclass(frozen=True)
class _Plan:
    """Everything :func:`archive_rows` derives from a schema, built once per schema.

    Building the expressions costs ~5,000 py4j calls (1.5 s of driver time, measured);
    micro-batches of one stream share a schema, so they share the plan and only pay the
    projections.
    """

    parts: tuple[_Part, ...]
    main_types: dict[str, str]
    record_schemas: dict[str, str]
    schema_key: str


def _cells(values: list[tuple[str, Column]]) -> Column:
    """``map<family:qualifier, bytes>`` of (column name, encoded value) pairs; a null
    value writes no cell (see :mod:`fink_broker.tables.cells`)."""
    names = F.array(*[F.lit(name) for name, _ in values])
    encoded = F.array(*[col for _, col in values])
    return F.map_filter(F.map_from_arrays(names, encoded), lambda _k, v: v.isNotNull())


def _index_pairs(values: list[tuple[str, Column, str]]) -> list[tuple[str, Column]]:
    """(column name, encoded value) of index values given as (qualifier in ``r:``,
    column, Spark type)."""
    return [(L.column(L.INDEX_FAMILY, n), _encode(c, t)) for n, c, t in values]


def _index_cells(values: list[tuple[str, Column, str]]) -> Column:
    """The cells of index values (see :func:`_index_pairs`)."""
    return _cells(_index_pairs(values))


def _encode(col: Column, dtype: str) -> Column:
    """A value as the bytes of its cell: binaries as they are, the rest as text."""
    if dtype == "binary":
        return col
    return col.cast("string").cast("binary")


def _row(table: str, key: Column, cells: Column) -> tuple[Column, ...]:
    return (F.lit(table).alias("table"), key.alias("row"), cells.alias("cells"))


def _is_cutout(field: T.StructField) -> bool:
    return field.name.startswith("cutout")


def _cutout_bytes(col: Column, dtype: T.DataType) -> Column:
    """The image bytes of a cutout: a binary column, or the binary field of a struct
    (ZTF's ``{fileName, stampData}``)."""
    if isinstance(dtype, T.StructType):
        binary = [f.name for f in dtype.fields if isinstance(f.dataType, T.BinaryType)]
        return col.getField(binary[0]) if binary else F.lit(None).cast("binary")
    return col


def _survey_columns(science: DataFrame, adapter: SurveyAdapter) -> list[T.StructField]:
    """Top-level survey fields of the ``i:alert`` record: scalars, structs and arrays of
    scalars; not the histories (arrays of structs) nor the cutouts."""
    fields = survey_fields(adapter)

    def history(f: T.StructField) -> bool:
        return isinstance(f.dataType, T.ArrayType) and isinstance(
            f.dataType.elementType, T.StructType
        )

    return [
        f
        for f in science.schema.fields
        if f.name in fields and not _is_cutout(f) and not history(f)
    ]


def _fink_columns(science: DataFrame, adapter: SurveyAdapter, canon: dict[str, Column]):
    """Columns of the ``d:fink`` record: the canonical ones, then all Fink added."""
    fields = survey_fields(adapter)
    stored = [canon[n].alias(n) for n in CANONICAL_STORED]
    added = [
        F.col(f.name)
        for f in science.schema.fields
        if f.name not in fields and f.name not in CANONICAL_STORED
    ]
    return stored + added


def _struct_items(dtype: object) -> list[tuple[str, T.DataType]] | None:
    if isinstance(dtype, T.StructType):
        return [(f.name, f.dataType) for f in dtype.fields]
    return None


def _nullable(dtype: T.DataType) -> T.DataType:
    """``dtype`` with every field, element and value nullable, at every depth."""
    if isinstance(dtype, T.StructType):
        return T.StructType([T.StructField(f.name, _nullable(f.dataType)) for f in dtype.fields])
    if isinstance(dtype, T.ArrayType):
        return T.ArrayType(_nullable(dtype.elementType), True)
    if isinstance(dtype, T.MapType):
        return T.MapType(dtype.keyType, _nullable(dtype.valueType), True)
    return dtype


def avro_schema(spark, dtype: T.StructType, name: str) -> str:
    """The Avro schema (JSON) of records of type ``dtype``, every field nullable.

    Nullability differs between a streaming read (all nullable) and a batch read of the
    same Parquet, so it is dropped: one column set gives one schema, and one schema row.
    """
    return avro_schema_json(spark, _nullable(dtype), name, "fink")


def _object_key(canon: dict[str, Column]) -> Column:
    """Object part of the keys: the object id; for a Rubin source attributed to a Solar
    System object (no diaObject) ``sso-<name>``, else ``alert-<alertId>``."""
    return F.coalesce(
        canon["objectId"],
        F.concat(F.lit("sso-"), _sso_key(canon["sso_ref_name"])),
        F.concat(F.lit("alert-"), canon["alertId"].cast("string")),
    )


def _sso_key(name: Column) -> Column:
    """:func:`fink_broker.tables.layout.sso_key` on the JVM."""
    return F.lower(F.regexp_replace(name, r"\s+", ""))


def _key(*parts: Column) -> Column:
    """Parts joined by the key separator; null if any part is null."""
    joined: list[Column] = []
    for i, part in enumerate(parts):
        joined += [F.lit(L.KEY_SEP), part] if i else [part]
    return F.concat(*joined)


def _mjd_key(mjd: Column) -> Column:
    return F.format_string(L.MJD_FORMAT, mjd)


@F.pandas_udf(T.LongType())  # type: ignore[call-overload]
def _pixel(ra: pd.Series, dec: pd.Series) -> pd.Series:
    """Cone-search pixel of each alert (vectorised, Arrow batches)."""
    return pd.Series(alert_pixels(ra.to_numpy(), dec.to_numpy()))


def _main_part(
    science: DataFrame, adapter: SurveyAdapter, canon: dict[str, Column], table: str, key: Column
) -> tuple[_Part, dict[str, str], dict[str, str], str]:
    """Main-table rows with their Avro cells; column types, record schemas, schema key."""
    survey = F.struct(*[F.col(f.name) for f in _survey_columns(science, adapter)])
    fink = F.struct(*_fink_columns(science, adapter, canon))
    typed = science.select(survey.alias("i"), fink.alias("d")).schema
    survey_type, fink_type = typed["i"].dataType, typed["d"].dataType
    flat = L.flatten_survey(_struct_items(survey_type) or [], alert_struct(adapter), _struct_items)
    types = {L.column(L.SURVEY_FAMILY, n): t.simpleString() for n, t in flat.items()}
    types.update({L.column(L.FINK_FAMILY, f.name): f.dataType.simpleString() for f in fink_type})
    spark = science.sparkSession
    schemas = {
        L.SURVEY_RECORD: avro_schema(spark, survey_type, "survey"),
        L.FINK_RECORD: avro_schema(spark, fink_type, "fink"),
    }
    digest = hashlib.sha256(json.dumps(schemas, sort_keys=True).encode()).hexdigest()[:12]
    schema_key = L.schema_key(__version__, digest)
    cells = F.create_map(
        F.lit(L.SURVEY_RECORD),
        to_avro(survey, schemas[L.SURVEY_RECORD]),
        F.lit(L.FINK_RECORD),
        to_avro(fink, schemas[L.FINK_RECORD]),
        F.lit(L.SCHEMA_CELL),
        F.lit(schema_key).cast("binary"),
    )
    return _Part(_row(table, key, cells)), types, schemas, schema_key


def _history_parts(tables: L.ArchiveTables, obj: Column, canon: dict[str, Column]) -> list[_Part]:
    """``upper`` rows: one per ZTF upper limit and per Rubin forced-photometry point."""
    table = tables.name(L.TableKind.UPPER)
    out = []
    for kind, names, cells in (
        ("upperlim", _LIMIT_INPUTS, ("band", "maglim")),
        ("forced", _FORCED_INPUTS, ("band", "flux", "fluxerr")),
    ):
        points = F.arrays_zip(
            *[canon[n].alias(c) for n, c in zip(names, ("mjd", *cells), strict=True)]
        )
        point = F.col("_p")
        # one JSON cell per point: these rows are many (every limit of every history)
        values = F.struct(
            point.getField("mjd").alias("mjd"),
            F.lit(kind).alias("kind"),
            *[point.getField(c).alias(c) for c in cells],
        )
        key = _key(F.col("_obj"), _mjd_key(point.getField("mjd")))
        point_cell = F.create_map(F.lit(L.POINT_CELL), F.to_json(values).cast("binary"))
        out.append(
            _Part(
                _row(table, key, point_cell),
                pre=(obj.alias("_obj"), F.explode(points).alias("_p")),
                where=point.getField("mjd").isNotNull(),
            )
        )
    return out


def _cutout_part(
    science: DataFrame,
    tables: L.ArchiveTables,
    canon: dict[str, Column],
    refs: list[tuple[str, Column, str]],
) -> _Part:
    """``cutouts`` rows: the three stamps of each alert, keyed by alert id."""
    fields = {f.name: f.dataType for f in science.schema.fields if _is_cutout(f)}
    stamps = [
        (L.column(L.CUTOUT_FAMILY, kind), _cutout_bytes(F.col(f"cutout{kind}"), dtype))
        for kind in L.CUTOUT_KINDS
        if (dtype := fields.get(f"cutout{kind}")) is not None
    ]
    cells = _cells([*stamps, *_index_pairs(refs)])
    table = tables.name(L.TableKind.CUTOUTS)
    return _Part(_row(table, canon["alertId"].cast("string"), cells))


def _plan(science: DataFrame, survey: str, tables: L.ArchiveTables, cutouts: bool) -> _Plan:
    adapter = get_adapter(survey)
    canon = canonical_columns(
        science, survey, [*CANONICAL_STORED, "sso_ref_name", *_LIMIT_INPUTS, *_FORCED_INPUTS]
    )
    obj = _object_key(canon)
    mjd = _mjd_key(canon["mjd"])
    main_key = _key(obj, mjd)
    refs = [("key", main_key, "string"), ("mjd", canon["mjd"], "double")]
    main, main_types, record_schemas, schema_key = _main_part(
        science, adapter, canon, tables.name(L.TableKind.ALERTS), main_key
    )
    parts = [main]
    # one UDF call per alert: the pixel is computed once, then filtered and formatted
    pixel = F.lpad(F.col("_pixel").cast("string"), L.PIXEL_DIGITS, "0")
    position = [("ra", canon["ra"], "double"), ("dec", canon["dec"], "double")]
    parts.append(
        _Part(
            _row(
                tables.name(L.TableKind.PIXEL),
                _key(pixel, mjd, obj),
                _index_cells([*refs, *position]),
            ),
            pre=(F.col("*"), _pixel(canon["ra"], canon["dec"]).alias("_pixel")),
            where=F.col("_pixel") >= 0,
        )
    )
    if CLASS_COLUMN in science.columns:
        inverted = F.format_string(L.INVERTED_FORMAT, F.lit(L.MJD_INVERSION) - canon["mjd"])
        key = _key(F.col(CLASS_COLUMN), inverted, obj)
        parts.append(_Part(_row(tables.name(L.TableKind.CLASS), key, _index_cells(refs))))
    if SSO_COLUMN in science.columns:
        key = _key(_sso_key(F.col(SSO_COLUMN)), mjd, obj)
        parts.append(
            _Part(
                _row(tables.name(L.TableKind.SSO), key, _index_cells(refs)),
                where=F.col(SSO_COLUMN).isNotNull(),
            )
        )
    parts += _history_parts(tables, obj, canon)
    if cutouts:
        parts.append(_cutout_part(science, tables, canon, refs))
    return _Plan(tuple(parts), main_types, record_schemas, schema_key)


#: plans by (schema, survey, tables, cutouts); a stream sees one schema, tests a few
_PLANS: dict[tuple[str, str, L.ArchiveTables, bool], _Plan] = {}
_MAX_PLANS = 32


def archive_rows(
    science: DataFrame, survey: str, tables: L.ArchiveTables, *, cutouts: bool = True
) -> ArchiveRows:
    """Pure builder: science alerts -> ``(table, row, cells)`` rows of every archive table."""
    key = (science.schema.json(), survey, tables, cutouts)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        plan = _PLANS[key] = _plan(science, survey, tables, cutouts)
    rows = plan.parts[0].apply(science)
    for part in plan.parts[1:]:
        rows = rows.unionByName(part.apply(science))
    return ArchiveRows(
        rows=rows,
        main_types=plan.main_types,
        record_schemas=plan.record_schemas,
        schema_key=plan.schema_key,
    )
