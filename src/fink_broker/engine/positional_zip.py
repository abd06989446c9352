"""Joins values computed from a second read of some rows back to those rows, by position.

The Java side (``PositionalZip``, infra/java) says why and how; this is its Python face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame

from fink_broker.engine.session import java_strings, jvm_class

#: Fink's Java zip (infra/java)
POSITIONAL_ZIP = "org.fink.broker.PositionalZip"


@dataclass(frozen=True)
class Zipped:
    """The rows that pass, each with its values, and what the zip counted on the way."""

    frame: DataFrame
    #: the Java ``PositionalZip.Zipped``: its counts are read after ``frame`` is written
    java: object
    #: whether the rows were read from the scan's column batches (one row copy fewer)
    columnar: bool

    def counts(self) -> list[int]:
        """Rows in, rows kept, then the rows each flag but the last removed (once written)."""
        return [int(n) for n in self.java.counts()]  # type: ignore[attr-defined]


def zip_by_position(
    rows: DataFrame, flags: Sequence, values: DataFrame, keys: Sequence[str]
) -> Zipped:
    """``rows`` that pass, each followed by the columns of ``values`` but its last
    ``len(keys)``, which must equal the row's ``keys``.

    ``flags``: boolean columns over ``rows``, one per cut (True: passes it), then the one
    that says whether a row passes every cut. ``values``: one row per passing row, in scan
    order, from a read of the same source with the same coalescing as ``rows``.
    """
    spark = rows.sparkSession
    java = jvm_class(spark, POSITIONAL_ZIP).zip(
        rows._jdf, rows.select(*flags)._jdf, values._jdf, java_strings(spark, list(keys))
    )
    return Zipped(DataFrame(java.frame(), spark), java, bool(java.columnar()))
