"""Frames shaped as a Parquet archive reads them back: partition column last, all nullable.

The one-pass pipeline hands its in-memory frames to the writers of raw2science,
distribution and archive, which the separate services feed from a read of the archive.
Such a read differs from the frame that was written in two ways: the partition column
(``night``) comes last, and every field is nullable (Spark writes Parquet so, nested
fields included). The outgoing Avro schema is built from the frame's schema, and the
science rows keep the raw columns in order, so both modes must hand over the same shape
for their topics and archives to hold the same bytes.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import types as T

#: the partition column of every archive (``night=YYYYMMDD``)
PARTITION = "night"


def nullable(kind: T.DataType) -> T.DataType:
    """``kind`` with every field, element and value nullable, at every depth."""
    if isinstance(kind, T.StructType):
        return T.StructType(
            [T.StructField(f.name, nullable(f.dataType), True, f.metadata) for f in kind.fields]
        )
    if isinstance(kind, T.ArrayType):
        return T.ArrayType(nullable(kind.elementType), True)
    if isinstance(kind, T.MapType):
        return T.MapType(kind.keyType, nullable(kind.valueType), True)
    return kind


def read_back_schema(schema: T.StructType, partition: str = PARTITION) -> T.StructType:
    """The schema a read of an archive written from frames of ``schema`` returns."""
    fields = [f for f in schema.fields if f.name != partition]
    fields += [f for f in schema.fields if f.name == partition]
    shaped = nullable(T.StructType(fields))
    assert isinstance(shaped, T.StructType)
    return shaped


def as_read_back(frame: DataFrame, partition: str = PARTITION) -> DataFrame:
    """``frame`` as a read of the archive it is written to would return it."""
    return frame.to(read_back_schema(frame.schema, partition))
