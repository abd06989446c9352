"""Science alerts -> HBase rows of every archive table, built on the JVM.

The pure builder :func:`archive_rows` turns a science DataFrame (batch or micro-batch) into
one frame of ``(table, row, cells)`` with ``cells`` a ``map<string, binary>`` from
``family:qualifier`` to the encoded value, for the main table, the index tables
(``engine/hbase_index_rows.py``) and the cutouts (layout: :mod:`fink_broker.tables.layout`).
Every value is encoded here, by Spark: ``engine/hbase_sink.py`` then only ships bytes to
the Thrift gateway.

A main-table row has three cells: ``i:alert``, the survey's own values, and ``d:fink``,
Fink's, each one Avro record (``to_avro``, schema recorded in the schema table), and
``d:schema``, the key of that schema row (Rubin's families are ``r``/``f``: the survey
declares them, ``surveys/archive_shapes.py``). One cell per column, as Fink's own archive does,
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
  have their own rows, and the history items (ZTF limits and earlier detections, Rubin
  forced photometry) go to the ``upper`` table, whole.
  Cutouts go to the ``cutouts`` table.
* ``d:`` (Fink) holds everything Fink added (science modules, provenance, Kafka position,
  ingest time, night) and the survey-agnostic canonical columns (``d:objectId``,
  ``d:mjd``, ``d:mag``, ``d:flux``...) that the API queries on for either survey.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.avro.functions import to_avro

from fink_broker import __version__
from fink_broker.engine import hbase_index_rows as I
from fink_broker.engine.archived_shape import nullable
from fink_broker.engine.canonical import canonical_columns, transform_column
from fink_broker.engine.outgoing import avro_schema_json
from fink_broker.plugins.filters import AlertFilter
from fink_broker.surveys import as_adapter
from fink_broker.surveys.archive_shapes import ArchiveShape, shape_of
from fink_broker.surveys.base import SurveyAdapter, alert_struct, survey_fields
from fink_broker.tables import layout as L

#: canonical columns stored in Fink's record of every alert
CANONICAL_STORED = (
    *("objectId", "alertId", "mjd", "ra", "dec"),
    *("band", "mag", "magerr", "flux", "fluxerr"),
)
ROW_SCHEMA = "table string, row string, cells map<string, binary>"
# re-exported: the archive service and the tests name the indexed module outputs
CLASS_COLUMN, SSO_COLUMN, ANOMALY_COLUMN = I.CLASS_COLUMN, I.SSO_COLUMN, I.ANOMALY_COLUMN


@dataclass(frozen=True)
class IndexOptions:
    """What the optional indexes take from the settings."""

    #: store the image cutouts
    cutouts: bool = True
    #: filters whose passing alerts the ``tag`` table lists
    filters: tuple[AlertFilter, ...] = ()
    #: alerts with ``anomaly_score`` at most this are indexed for ``/anomaly``
    anomaly_threshold: float = -0.5


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
    #: history list (``prv_candidates``...) -> field -> Spark type of its items
    history_types: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Plan:
    """Everything :func:`archive_rows` derives from a schema, built once per schema.

    Building the expressions costs ~5,000 py4j calls (1.5 s of driver time, measured);
    micro-batches of one stream share a schema, so they share the plan and only pay the
    projections.
    """

    parts: tuple[I.Part, ...]
    main_types: dict[str, str]
    record_schemas: dict[str, str]
    schema_key: str
    history_types: dict[str, dict[str, str]]


def _survey_columns(science: DataFrame, adapter: SurveyAdapter) -> list[T.StructField]:
    """Top-level survey fields of the survey's record: scalars, structs and arrays of
    scalars; not the histories (arrays of structs) nor the cutouts."""
    fields = survey_fields(adapter)

    def history(f: T.StructField) -> bool:
        return isinstance(f.dataType, T.ArrayType) and isinstance(
            f.dataType.elementType, T.StructType
        )

    return [
        f
        for f in science.schema.fields
        if f.name in fields and not I.is_cutout(f) and not history(f)
    ]


def _fink_columns(science: DataFrame, adapter: SurveyAdapter, canon: dict[str, Column]):
    """Columns of Fink's record: the canonical ones, then all Fink added."""
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


def avro_schema(spark, dtype: T.StructType, name: str) -> str:
    """The Avro schema (JSON) of records of type ``dtype``, every field nullable.

    Nullability differs between a streaming read (all nullable) and a batch read of the
    same Parquet, so it is dropped: one column set gives one schema, and one schema row.
    """
    return avro_schema_json(spark, nullable(dtype), name, "fink")


def _object_key(canon: dict[str, Column]) -> Column:
    """Object part of the keys: the object id; for a Rubin source attributed to a Solar
    System object (no diaObject) ``sso-<name>``; else, and for an id holding the key
    separator, ``alert-<alertId>``."""
    by_alert = F.concat(F.lit(L.ALERT_KEY_PREFIX), canon["alertId"].cast("string"))
    sso = F.concat(F.lit(L.SSO_KEY_PREFIX), I.sso_key(canon["sso_ref_name"]))
    named = F.coalesce(canon["objectId"], sso, by_alert)
    return F.coalesce(I.without_separator(named), by_alert)


def _main_part(
    science: DataFrame,
    adapter: SurveyAdapter,
    shape: ArchiveShape,
    canon: dict[str, Column],
    table: str,
    key: Column,
) -> tuple[I.Part, dict[str, str], dict[str, str], str]:
    """Main-table rows with their Avro cells; column types, record schemas, schema key."""
    families = shape.families
    survey = F.struct(*[F.col(f.name) for f in _survey_columns(science, adapter)])
    fink = F.struct(*_fink_columns(science, adapter, canon))
    typed = science.select(survey.alias("i"), fink.alias("d")).schema
    survey_type, fink_type = typed["i"].dataType, typed["d"].dataType
    flat = L.flatten_survey(_struct_items(survey_type) or [], alert_struct(adapter), _struct_items)
    types = {L.column(families.survey, n): t.simpleString() for n, t in flat.items()}
    types.update({L.column(families.fink, f.name): f.dataType.simpleString() for f in fink_type})
    spark = science.sparkSession
    schemas = {
        families.survey_record: avro_schema(spark, survey_type, "survey"),
        families.fink_record: avro_schema(spark, fink_type, "fink"),
    }
    digest = hashlib.sha256(json.dumps(schemas, sort_keys=True).encode()).hexdigest()[:12]
    schema_key = L.schema_key(__version__, digest)
    cells = F.create_map(
        F.lit(families.survey_record),
        to_avro(survey, schemas[families.survey_record]),
        F.lit(families.fink_record),
        to_avro(fink, schemas[families.fink_record]),
        F.lit(families.schema_cell),
        F.lit(schema_key).cast("binary"),
    )
    return I.Part(I.row(table, key, cells)), types, schemas, schema_key


def _plan(
    science: DataFrame, adapter: SurveyAdapter, tables: L.ArchiveTables, options: IndexOptions
) -> _Plan:
    survey = adapter.name
    shape = shape_of(survey)
    canon = canonical_columns(science, adapter, [*CANONICAL_STORED, "sso_ref_name"])
    obj = _object_key(canon)
    mjd_text = I.mjd_key(canon["mjd"])
    main_key = I.key(obj, mjd_text)
    alert = I.AlertRefs(
        obj=obj,
        mjd=canon["mjd"],
        mjd_text=mjd_text,
        refs=(("key", main_key, "string"), ("mjd", canon["mjd"], "double")),
    )
    main, main_types, record_schemas, schema_key = _main_part(
        science, adapter, shape, canon, tables.name(L.TableKind.ALERTS), main_key
    )
    first = F.coalesce(
        transform_column(shape.first_detection, science.schema, "double"), canon["mjd"]
    )
    parts = [main, I.pixel_part(tables.name(L.TableKind.PIXEL), alert, canon, first)]
    if I.CLASS_COLUMN in science.columns:
        label = I.without_separator(F.col(I.CLASS_COLUMN))
        parts.append(I.latest_part(tables.name(L.TableKind.CLASS), alert, label))
    if options.filters:
        tag_table = tables.name(L.TableKind.TAG)
        parts.append(I.tag_part(science, tag_table, alert, options.filters, survey))
    if I.ANOMALY_COLUMN in science.columns:
        score = F.col(I.ANOMALY_COLUMN).cast("double")
        anomaly_table = tables.name(L.TableKind.ANOMALY)
        parts.append(I.anomaly_part(anomaly_table, alert, score, options.anomaly_threshold))
    if I.SSO_COLUMN in science.columns:
        name = I.without_separator(I.sso_key(F.col(I.SSO_COLUMN)))
        key = I.key(name, mjd_text, obj)
        parts.append(I.Part(I.row(tables.name(L.TableKind.SSO), key, I.index_cells(alert.refs))))
    histories, history_types = I.history_parts(science, tables.name(L.TableKind.UPPER), shape, obj)
    parts += histories
    parts.append(I.names_part(science, tables.name(L.TableKind.NAMES), alert, canon))
    if options.cutouts:
        cutouts = tables.name(L.TableKind.CUTOUTS)
        parts.append(I.cutout_part(science, cutouts, alert, canon["alertId"]))
    return _Plan(tuple(parts), main_types, record_schemas, schema_key, history_types)


#: plans by (schema, survey, tables, options); a stream sees one schema, tests a few
_PLANS: dict[tuple[str, str, L.ArchiveTables, tuple], _Plan] = {}
_MAX_PLANS = 32


def archive_rows(
    science: DataFrame,
    survey: str | SurveyAdapter,
    tables: L.ArchiveTables,
    options: IndexOptions | None = None,
) -> ArchiveRows:
    """Pure builder: science alerts -> ``(table, row, cells)`` rows of every archive table."""
    adapter = as_adapter(survey)
    options = options or IndexOptions()
    filters = tuple(f.name for f in options.filters)
    memo = (
        science.schema.json(),
        adapter.name,
        tables,
        (options.cutouts, filters, options.anomaly_threshold),
    )
    plan = _PLANS.get(memo)
    if plan is None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        plan = _PLANS[memo] = _plan(science, adapter, tables, options)
    rows = plan.parts[0].apply(science)
    for part in plan.parts[1:]:
        rows = rows.unionByName(part.apply(science))
    return ArchiveRows(
        rows=rows,
        main_types=plan.main_types,
        record_schemas=plan.record_schemas,
        schema_key=plan.schema_key,
        history_types=plan.history_types,
    )
