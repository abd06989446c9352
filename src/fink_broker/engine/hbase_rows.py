"""Science alerts -> HBase rows of every archive table, built on the JVM.

The pure builder :func:`archive_rows` turns a science DataFrame (batch or micro-batch) into
one frame of ``(table, row, cells)`` with ``cells`` a ``map<string, binary>`` from
``family:qualifier`` to the encoded value, for the main table, the index tables and the
cutouts (layout: :mod:`fink_broker.tables.layout`). Every value is encoded here, by Spark:
``engine/hbase_sink.py`` then only ships bytes to the Thrift gateway.

Which columns go where:

* ``i:`` (survey) holds the survey's own top-level fields and the fields of its
  structs. The fields of the struct that carries the alert time (ZTF ``candidate``,
  Rubin ``diaSource``) keep their bare names (``i:magpsf``, ``i:psfFlux``), as in Fink's
  API; other structs prefix theirs (``i:diaObject.nDiaSources``). A struct field with the
  name of a top-level field (``candidate.candid``) is the same value and is not repeated.
  Histories (arrays of structs: ``prv_candidates``, ``prvDiaSources``) are not repeated on
  every alert: earlier alerts have their own rows, and limits and forced photometry go to
  the ``upper`` table. Cutouts go to the ``cutouts`` table.
* ``d:`` (Fink) holds everything Fink added (science modules, provenance, Kafka position,
  ingest time, night) and the survey-agnostic canonical columns (``d:objectId``,
  ``d:mjd``, ``d:mag``, ``d:flux``...) that the API queries on for either survey.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fink_broker.engine.canonical import canonical_columns
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import SurveyAdapter, alert_struct, survey_fields
from fink_broker.tables import layout as L
from fink_broker.tables.sky import alert_pixels

#: canonical columns stored in ``d:`` of every alert
CANONICAL_STORED = (
    *("objectId", "alertId", "mjd", "ra", "dec"),
    *("band", "mag", "magerr", "flux", "fluxerr"),
)
#: canonical columns the index and upper rows are built from
_KEY_INPUTS = ("objectId", "alertId", "mjd", "ra", "dec", "sso_ref_name")
_LIMIT_INPUTS = ("uplim_mjd", "uplim_band", "uplim_maglim")
_FORCED_INPUTS = ("forced_mjd", "forced_band", "forced_flux", "forced_fluxerr")
#: the module output that labels alerts for the class index
CLASS_COLUMN = "fink_class"
#: the module output that names known Solar System objects for the SSO index
SSO_COLUMN = "sso_name"
ROW_SCHEMA = "table string, row string, cells map<string, binary>"


@dataclass(frozen=True)
class ArchiveRows:
    """The rows of one batch for every table, and the column types of the main table."""

    rows: DataFrame
    #: ``family:qualifier`` -> Spark type (``simpleString``) of every main-table column
    main_types: dict[str, str]

    @property
    def schema_hash(self) -> str:
        """Short digest of the main-table columns and types (keys the schema row)."""
        text = json.dumps(self.main_types, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _encode(col: Column, dtype: T.DataType) -> Column:
    """A value as the bytes of its cell (see :mod:`fink_broker.tables.cells`)."""
    if isinstance(dtype, T.BinaryType):
        return col
    if isinstance(dtype, T.StringType):
        return col.cast("binary")
    if isinstance(dtype, T.ArrayType | T.StructType | T.MapType):
        return F.to_json(col).cast("binary")
    return col.cast("string").cast("binary")


def _cells(typed: DataFrame) -> Column:
    """``map<family:qualifier, bytes>`` of the columns of ``typed``, null values left out."""
    fields = typed.schema.fields
    names = F.array(*[F.lit(f.name) for f in fields])
    values = F.array(*[_encode(F.col(f"`{f.name}`"), f.dataType) for f in fields])
    return F.map_filter(F.map_from_arrays(names, values), lambda _k, v: v.isNotNull())


def _is_cutout(field: T.StructField) -> bool:
    return field.name.startswith("cutout")


def _cutout_bytes(col: Column, dtype: T.DataType) -> Column:
    """The image bytes of a cutout: a binary column, or the binary field of a struct
    (ZTF's ``{fileName, stampData}``)."""
    if isinstance(dtype, T.StructType):
        binary = [f.name for f in dtype.fields if isinstance(f.dataType, T.BinaryType)]
        return col.getField(binary[0]) if binary else F.lit(None).cast("binary")
    return col


def _survey_columns(science: DataFrame, adapter: SurveyAdapter) -> list[Column]:
    """``i:`` columns: top-level survey fields, then the fields of the survey's structs."""
    fields = survey_fields(adapter)
    main_struct = alert_struct(adapter)
    top = [f for f in science.schema.fields if f.name in fields and not _is_cutout(f)]
    out: dict[str, Column] = {}
    for f in top:
        if not isinstance(f.dataType, T.StructType | T.ArrayType):
            out[f.name] = F.col(f.name)
    for f in top:
        if isinstance(f.dataType, T.StructType):
            for sub in f.dataType.fields:
                name = L.survey_qualifier(f.name, sub.name, main_struct)
                out.setdefault(name, F.col(f.name).getField(sub.name))
        elif isinstance(f.dataType, T.ArrayType) and not isinstance(
            f.dataType.elementType, T.StructType
        ):
            out[f.name] = F.col(f.name)
    return [c.alias(L.column(L.SURVEY_FAMILY, n)) for n, c in out.items()]


def _fink_columns(science: DataFrame, adapter: SurveyAdapter, canon: dict[str, Column]):
    fields = survey_fields(adapter)
    added = [
        F.col(f.name).alias(L.column(L.FINK_FAMILY, f.name))
        for f in science.schema.fields
        if f.name not in fields and f.name not in CANONICAL_STORED
    ]
    stored = [canon[n].alias(L.column(L.FINK_FAMILY, n)) for n in CANONICAL_STORED]
    return stored + added


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


def _rows(frame: DataFrame, table: str, row: Column, typed: list[Column]) -> DataFrame:
    typed_frame = frame.select(row.alias("_row"), *typed)
    cells = _cells(typed_frame.drop("_row"))
    return typed_frame.select(
        F.lit(table).alias("table"), F.col("_row").alias("row"), cells.alias("cells")
    ).where(F.col("row").isNotNull())


def _index(name: str, col: Column) -> Column:
    return col.alias(L.column(L.INDEX_FAMILY, name))


def archive_rows(
    science: DataFrame, survey: str, tables: L.ArchiveTables, *, cutouts: bool = True
) -> ArchiveRows:
    """Pure builder: science alerts -> ``(table, row, cells)`` rows of every archive table."""
    adapter = get_adapter(survey)
    canon = canonical_columns(
        science, survey, [*CANONICAL_STORED, "sso_ref_name", *_LIMIT_INPUTS, *_FORCED_INPUTS]
    )
    obj = _object_key(canon)
    mjd = _mjd_key(canon["mjd"])
    main_key = _key(obj, mjd)
    refs = [
        _index("key", main_key),
        _index("objectId", canon["objectId"]),
        _index("alertId", canon["alertId"]),
        _index("mjd", canon["mjd"]),
    ]
    main_columns = _survey_columns(science, adapter) + _fink_columns(science, adapter, canon)
    main_types = {
        f.name: f.dataType.simpleString() for f in science.select(*main_columns).schema.fields
    }
    parts = [_rows(science, tables.name(L.TableKind.ALERTS), main_key, main_columns)]
    # one UDF call per alert: the pixel is computed once, then filtered and formatted
    located = science.withColumn("_pixel", _pixel(canon["ra"], canon["dec"]))
    pixel = F.lpad(F.col("_pixel").cast("string"), L.PIXEL_DIGITS, "0")
    parts.append(
        _rows(
            located.where(F.col("_pixel") >= 0),
            tables.name(L.TableKind.PIXEL),
            _key(pixel, mjd, obj),
            [*refs, _index("ra", canon["ra"]), _index("dec", canon["dec"])],
        )
    )
    if CLASS_COLUMN in science.columns:
        inverted = F.format_string(L.INVERTED_FORMAT, F.lit(L.MJD_INVERSION) - canon["mjd"])
        parts.append(
            _rows(
                science,
                tables.name(L.TableKind.CLASS),
                _key(F.col(CLASS_COLUMN), inverted, obj),
                [*refs, _index("kind", F.col(CLASS_COLUMN))],
            )
        )
    if SSO_COLUMN in science.columns:
        parts.append(
            _rows(
                science.where(F.col(SSO_COLUMN).isNotNull()),
                tables.name(L.TableKind.SSO),
                _key(_sso_key(F.col(SSO_COLUMN)), mjd, obj),
                [*refs, _index("kind", F.col(SSO_COLUMN))],
            )
        )
    parts += _history_rows(science, tables, obj, canon)
    if cutouts:
        parts.append(_cutout_rows(science, tables, canon, main_key))
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.unionByName(part)
    return ArchiveRows(rows=rows, main_types=main_types)


def _history_rows(
    science: DataFrame, tables: L.ArchiveTables, obj: Column, canon: dict[str, Column]
) -> list[DataFrame]:
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
        exploded = science.select(
            obj.alias("_obj"), canon["objectId"].alias("_oid"), F.explode(points).alias("_p")
        )
        point = F.col("_p")
        out.append(
            _rows(
                exploded.where(point.getField("mjd").isNotNull()),
                table,
                _key(F.col("_obj"), _mjd_key(point.getField("mjd"))),
                [
                    _index("objectId", F.col("_oid")),
                    _index("mjd", point.getField("mjd")),
                    _index("kind", F.lit(kind)),
                    *[_index(c, point.getField(c)) for c in cells],
                ],
            )
        )
    return out


def _cutout_rows(
    science: DataFrame, tables: L.ArchiveTables, canon: dict[str, Column], main_key: Column
) -> DataFrame:
    """``cutouts`` rows: the three stamps of each alert, keyed by alert id."""
    fields = {f.name: f.dataType for f in science.schema.fields if _is_cutout(f)}
    stamps = [
        _cutout_bytes(F.col(f"cutout{kind}"), fields[f"cutout{kind}"]).alias(
            L.column(L.CUTOUT_FAMILY, kind)
        )
        for kind in L.CUTOUT_KINDS
        if f"cutout{kind}" in fields
    ]
    return _rows(
        science,
        tables.name(L.TableKind.CUTOUTS),
        canon["alertId"].cast("string"),
        [
            _index("key", main_key),
            _index("objectId", canon["objectId"]),
            _index("mjd", canon["mjd"]),
            *stamps,
        ],
    )


def written_tables(tables: L.ArchiveTables, *, cutouts: bool) -> Sequence[str]:
    """Names of the tables :func:`archive_rows` writes to."""
    kinds = [k for k in L.TableKind if k is not L.TableKind.SCHEMA]
    return [tables.name(k) for k in kinds if cutouts or k is not L.TableKind.CUTOUTS]
