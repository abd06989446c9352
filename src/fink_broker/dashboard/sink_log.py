"""The files a Spark streaming file sink has committed, newest first, read from its log.

Every Parquet archive of Fink is written through Spark's file sink, which records in
``<folder>/_spark_metadata/<batchId>`` the files of each micro-batch it committed (and, every
few batches, all files so far in ``<batchId>.compact``). A file in the folder that the log
does not list belongs to a micro-batch still being written or one that failed: readers must
not see it. The dashboard reads the newest entries only: the batch files after the last
compaction, and the tail of the compaction file when those are not enough, so a night of
micro-batches does not make each refresh parse the whole history.

Each log file is ``v1`` then one JSON object per line
(``{"path": "file:/…/part-….parquet", "size": …, "modificationTime": …, "action": "add"}``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

#: bytes read from the end of a compaction file, enough for ~600 entries
COMPACT_TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class CommittedFile:
    """One file of the archive, as the sink log lists it."""

    path: str
    size: int
    modified_ms: int


def _local_path(uri: str) -> str:
    """A local path from the URI the log holds (``file:/a/b``, ``file:///a/b``, or a path).

    >>> _local_path("file:/data/x%20y.parquet"), _local_path("/data/z.parquet")
    ('/data/x y.parquet', '/data/z.parquet')
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path)
    raise ValueError(f"{uri} is not a local file")


def parse_entries(text: str) -> list[CommittedFile]:
    """The added files listed in (a part of) a sink log file; other lines are skipped.

    >>> parse_entries('v1\\n{"path":"file:/a.parquet","size":3,"modificationTime":5,'
    ...               '"action":"add"}\\n{"path":"file:/b","size":1,"action":"delete"}')
    [CommittedFile(path='/a.parquet', size=3, modified_ms=5)]
    """
    out = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
            if entry.get("action", "add") != "add" or entry.get("isDir"):
                continue
            out.append(
                CommittedFile(
                    _local_path(entry["path"]),
                    int(entry.get("size", 0)),
                    int(entry.get("modificationTime", 0)),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a torn tail line of a compaction file, or another version's format
    return out


def _log_files(log_dir: Path) -> list[tuple[int, bool, Path]]:
    """(batch id, is compaction, path) of every log file, newest batch first."""
    out = []
    for entry in os.scandir(log_dir):
        name = entry.name
        compact = name.endswith(".compact")
        stem = name.removesuffix(".compact")
        if stem.isdigit():
            out.append((int(stem), compact, Path(entry.path)))
    return sorted(out, reverse=True)


def _tail(path: Path, size: int) -> str:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        length = handle.tell()
        handle.seek(max(0, length - size))
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    return text if length <= size else text.split("\n", 1)[-1]  # drop the torn first line


def newest_files(folder: str | os.PathLike[str], count: int) -> list[CommittedFile]:
    """At least ``count`` of the newest committed files of ``folder`` (fewer if it has fewer),
    newest first; empty when the folder has no sink log yet."""
    log_dir = Path(folder) / "_spark_metadata"
    if not log_dir.is_dir():
        return []
    found: dict[str, CommittedFile] = {}
    for _, compact, path in _log_files(log_dir):
        try:
            text = _tail(path, COMPACT_TAIL_BYTES) if compact else path.read_text()
        except FileNotFoundError:  # removed by the sink's clean-up after a compaction
            continue
        for entry in parse_entries(text):
            found.setdefault(entry.path, entry)
        if len(found) >= count:
            break
    return sorted(found.values(), key=lambda f: (f.modified_ms, f.path), reverse=True)
