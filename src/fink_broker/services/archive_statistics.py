"""Counts of the alerts the archive writes, per night and science file (``statistics``).

One aggregation per micro-batch, over a few columns: the number of alerts by night, file,
band, Fink label and Solar System flag. It replaces the plain count the batch log needs,
so the statistics cost no extra pass over the batch. Layout and merging:
:mod:`fink_broker.tables.statistics`.
"""

from __future__ import annotations

from collections import defaultdict

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fink_broker.engine.canonical import canonical_columns
from fink_broker.engine.hbase_rows import CLASS_COLUMN, SSO_COLUMN
from fink_broker.tables import statistics as S

NIGHT = "night"


def file_counts(
    batch: DataFrame, survey: str, source: str | None = None
) -> dict[tuple[str, str], S.Counts]:
    """(night, cell of the file) -> counts of the alerts of ``batch`` from that file.

    ``source`` names the rows of a batch that was read from no file (the one-pass
    pipeline's, in memory): one cell for them all, the same when the batch is replayed.
    """
    origin = F.lit(source) if source is not None else F.input_file_name()
    band = canonical_columns(batch, survey, ["band"])["band"]
    label = F.col(CLASS_COLUMN) if CLASS_COLUMN in batch.columns else F.lit(None)
    sso = F.col(SSO_COLUMN).isNotNull() if SSO_COLUMN in batch.columns else F.lit(False)
    grouped = batch.groupBy(
        F.col(NIGHT).cast("string").alias("night"),
        origin.alias("file"),
        band.alias("band"),
        label.cast("string").alias("label"),
        sso.alias("sso"),
    ).count()
    out: dict[tuple[str, str], S.Counts] = defaultdict(
        lambda: {"alerts": 0, "sso": 0, "band": {}, "label": {}}
    )
    for row in grouped.collect():
        counts = out[row["night"], S.file_qualifier(row["file"])]
        n = int(row["count"])
        counts["alerts"] += n
        counts["sso"] += n if row["sso"] else 0
        for kind in ("band", "label"):
            if row[kind] is not None:
                counts[kind][row[kind]] = counts[kind].get(row[kind], 0) + n
    return dict(out)
