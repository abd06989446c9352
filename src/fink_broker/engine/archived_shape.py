"""Frames shaped as a Parquet archive reads them back: the partition column last.

The one-pass pipeline hands its in-memory frames to the writers of raw2science,
distribution and archive, which the separate services feed from a read of the archive.
Such a read returns the partition column (``night``) last; the science rows keep the raw
columns in order and the outgoing Avro schema follows the column order, so both modes
must hand over the same order for their topics to hold the same bytes.

A read also makes every field nullable (Spark writes Parquet so, nested fields included).
Casting the in-memory frames to that schema rebuilt every nested struct of every alert
(Rubin's histories: arrays of ~100-field structs) and made the pipeline's JVM cost per
alert higher than the separate services' at 400 alerts/s; instead, what reads the schema
ignores nullability (:func:`nullable`: the outgoing and HBase Avro schemas).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

#: the partition column of every archive (``night=YYYYMMDD``)
PARTITION = "night"


def nullable(kind: T.DataType) -> T.DataType:
    """``kind`` with every field, element and value nullable, at every depth: the schema a
    read of a Parquet archive returns for frames of ``kind``, as the Avro writer schemas
    of a batch read and of a streaming read (or an in-memory frame) must agree."""
    if isinstance(kind, T.StructType):
        return T.StructType(
            [T.StructField(f.name, nullable(f.dataType), True, f.metadata) for f in kind.fields]
        )
    if isinstance(kind, T.ArrayType):
        return T.ArrayType(nullable(kind.elementType), True)
    if isinstance(kind, T.MapType):
        return T.MapType(kind.keyType, nullable(kind.valueType), True)
    return kind


def read_back_order(names: list[str], partition: str = PARTITION) -> list[str]:
    """The column order a read of an archive written from frames of ``names`` returns."""
    return [n for n in names if n != partition] + [n for n in names if n == partition]


def as_read_back(frame: DataFrame, partition: str = PARTITION) -> DataFrame:
    """``frame`` in the column order a read of the archive it is written to returns (a
    projection: no row is copied)."""
    return frame.select(*[F.col(f"`{n}`") for n in read_back_order(frame.columns, partition)])
