"""Download one file over HTTP(S), resumable, with progress.

A night of ZTF alerts is one tarball of hundreds of MB to tens of GB, so a download must
survive a dropped connection: bytes go to ``<name>.part`` next to a small JSON record of
what the server said about the file (size, ``ETag``, ``Last-Modified``). A later attempt,
in the same run or a new one, asks for the rest (``Range: bytes=N-``) under ``If-Range``: a
server whose file changed answers with the whole new file, which then replaces the part.
Only a complete file is renamed to its final name.

Standard library only (``urllib``): no client to configure, and proxies from the usual
environment variables.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import TextIO

from fink_broker.errors import FinkError

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
#: (bytes so far, total bytes or None) -> None, called as the file grows
ProgressFn = Callable[[int, int | None], None]


class DownloadError(FinkError):
    """The file could not be downloaded; the message says why and what to do."""


@dataclass
class Remote:
    """What the server said about the file, kept with the part to resume it safely."""

    total: int | None = None
    etag: str = ""
    last_modified: str = ""

    @property
    def validator(self) -> str:
        """The ``If-Range`` value: the entity tag if any, else the modification date."""
        return self.etag or self.last_modified


class Progress:
    """Bytes, percentage and rate on a terminal line (or a line per 10% in a log)."""

    def __init__(self, label: str, out: TextIO | None = None) -> None:
        self.label = label
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self.started = time.monotonic()
        self.first: int | None = None
        self.shown = -1

    def __call__(self, done: int, total: int | None) -> None:
        if self.first is None:
            self.first = done
        rate = (done - self.first) / max(time.monotonic() - self.started, 1e-6)
        if total:
            percent = int(100 * done / total)
            step = percent if self.tty else percent // 10 * 10
            if step == self.shown and done != total:
                return
            self.shown = step
            text = f"{self.label}: {done / 1e6:.1f} of {total / 1e6:.1f} MB ({percent}%)"
        else:
            text = f"{self.label}: {done / 1e6:.1f} MB"
        text += f", {rate / 1e6:.1f} MB/s"
        self.out.write(f"\r{text}" if self.tty else f"{text}\n")
        if self.tty and total and done == total:
            self.out.write("\n")
        self.out.flush()


def _read_record(path: Path) -> Remote | None:
    try:
        return Remote(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _request(url: str, start: int, remote: Remote | None) -> urllib.request.Request:
    request = urllib.request.Request(url, headers={"User-Agent": "fink-broker datasim"})
    if start and remote is not None and remote.validator:
        request.add_header("Range", f"bytes={start}-")
        request.add_header("If-Range", remote.validator)
    return request


def _total(headers: object, start: int, status: int) -> int | None:
    """The size of the whole file from a 200's Content-Length or a 206's Content-Range."""
    get = headers.get  # type: ignore[attr-defined]
    if status == 206:
        whole = str(get("Content-Range", "")).rpartition("/")[2]
        return int(whole) if whole.isdigit() else None
    length = get("Content-Length")
    return int(length) if length and str(length).isdigit() else None


def _check_space(folder: Path, needed: int | None) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"{needed / 1e9:.2f} GB still to download but {free / 1e9:.2f} GB free in {folder}"
        )


def _attempt(
    url: str, part: Path, record: Path, timeout: float, progress: ProgressFn | None
) -> bool:
    """One request: append to (or restart) ``part``; True when the file is complete."""
    remote = _read_record(record)
    start = part.stat().st_size if part.exists() and remote is not None else 0
    try:
        answer = urllib.request.urlopen(_request(url, start, remote), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and remote is not None and remote.total == start:
            return True  # the part already holds the whole file
        if err.code == 416:
            part.unlink(missing_ok=True)
            record.unlink(missing_ok=True)
            raise DownloadError(
                f"{url}: the server refused to resume; run again to restart"
            ) from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    with answer:
        status = answer.status
        if status not in (200, 206):
            raise DownloadError(f"{url}: unexpected HTTP {status}")
        if status == 206 and not str(answer.headers.get("Content-Range", "")).startswith(
            f"bytes {start}-"
        ):
            raise DownloadError(f"{url}: the server sent another range than asked ({start}-)")
        if status == 200:
            start = 0  # a whole file: the server ignored the range, or the file changed
        remote = Remote(
            total=_total(answer.headers, start, status),
            etag=answer.headers.get("ETag", "") or "",
            last_modified=answer.headers.get("Last-Modified", "") or "",
        )
        record.write_text(json.dumps(remote.__dict__))
        _check_space(part.parent, None if remote.total is None else remote.total - start)
        done = start
        with part.open("r+b" if start else "wb") as out:
            out.seek(start)
            out.truncate()
            while chunk := answer.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, remote.total)
    if remote.total is not None and done != remote.total:
        raise ConnectionError(f"the connection closed at {done} of {remote.total} bytes")
    return True


def download(
    url: str,
    dest: Path,
    *,
    attempts: int = 3,
    timeout: float = 60.0,
    progress: ProgressFn | None = None,
    pause_s: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming from ``dest.part`` if an earlier run stopped.

    Up to ``attempts`` requests in this call, each one resuming where the previous stopped.
    An interrupted download keeps its part and raises :class:`DownloadError` saying how far
    it got: the same call later resumes it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    record = dest.with_name(dest.name + ".part.json")
    reason = ""
    for attempt in range(1, max(1, attempts) + 1):
        try:
            if _attempt(url, part, record, timeout, progress):
                os.replace(part, dest)
                record.unlink(missing_ok=True)
                return dest
        except (ConnectionError, TimeoutError, HTTPException, urllib.error.URLError) as err:
            reason = str(getattr(err, "reason", err))
            have = part.stat().st_size if part.exists() else 0
            log.warning("%s: attempt %d stopped at %d bytes: %s", url, attempt, have, reason)
            if attempt < attempts:
                time.sleep(pause_s)
    have = part.stat().st_size if part.exists() else 0
    if not have:
        raise DownloadError(f"{url}: {reason} ({attempts} attempts)")
    raise DownloadError(
        f"{url}: interrupted after {have / 1e6:.1f} MB ({reason}); {part} is kept: "
        "run the same command again to resume"
    )
