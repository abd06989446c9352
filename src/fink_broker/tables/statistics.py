"""Nightly statistics of the archive: counts per science file, summed per night.

The archive service counts what it archives as it archives (``services/archive_statistics
.py``) and writes one cell per science file in the night's row of the ``statistics`` table:
a file's counts replace themselves when the file is archived again (a replayed
micro-batch, ``fink archive --night``), so a night's counts never double, where increments
would. A night's statistics are the sum of its cells.

>>> cells = {file_qualifier("night=20200101/part-0.parquet"): encode({"alerts": 2,
...          "band": {"g": 2}}), file_qualifier("part-1.parquet"): encode({"alerts": 1,
...          "band": {"r": 1}})}
>>> merge(cells.values())
{'alerts': 3, 'band': {'g': 2, 'r': 1}}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from fink_broker.tables.layout import INDEX_FAMILY, column

#: counts of one file: ``{"alerts": n, "sso": n, "band": {b: n}, "label": {l: n}}``
Counts = dict[str, Any]


def file_qualifier(path: str) -> str:
    """The cell of one science file: a digest of its name, the same whatever URI scheme
    or folder Spark reports it under (``file:/...``, a relative path)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return column(INDEX_FAMILY, hashlib.sha1(name.encode()).hexdigest()[:16])


def encode(counts: Counts) -> bytes:
    """The cell value of one file's counts."""
    return json.dumps(counts, sort_keys=True).encode()


def _add(total: Counts, counts: Mapping[str, Any]) -> None:
    for name, value in counts.items():
        if isinstance(value, Mapping):
            _add(total.setdefault(name, {}), value)
        else:
            total[name] = total.get(name, 0) + int(value)


def merge(cells: Iterable[bytes]) -> Counts:
    """The sum of the counts of several files (a night)."""
    total: Counts = {}
    for cell in cells:
        _add(total, json.loads(cell))
    return total
