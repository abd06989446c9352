"""One night of the ZTF public alert archive: download, check, unpack (`fink datasim`)."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fink_broker.config import ConfigError, Settings
from fink_broker.datasim.fetch import DownloadError, Progress, download
from fink_broker.datasim.unpack import ArchiveError, check, remove_quietly, unpack
from fink_broker.surveys.names import ZTF_NAME

log = logging.getLogger(__name__)

_NIGHT = re.compile(r"^\d{8}$")
#: the hidden folder of the folder that holds tarballs being (or kept after) downloading
DOWNLOADS = ".downloads"


@dataclass
class NightFiles:
    """What a download left: the night's folder and what it holds."""

    folder: Path
    alerts: int
    bytes: int
    already: bool = False


def download_night(
    settings: Settings,
    night: str,
    *,
    force: bool = False,
    keep_archive: bool = False,
    out: TextIO | None = None,
) -> NightFiles:
    """Download, check and unpack one night; see the module docstring.

    A corrupt or unsafe archive is removed with whatever was unpacked, and raises
    :class:`ArchiveError`; an interrupted download keeps its part for the next call and
    raises :class:`DownloadError`.
    """
    if not _NIGHT.match(night):
        raise ConfigError(f"night {night!r}: expected YYYYMMDD")
    if "{night}" not in settings.datasim.archive_url:
        raise ConfigError(f"datasim.archive_url {settings.datasim.archive_url!r} has no {{night}}")
    url = settings.datasim.archive_url.format(night=night)
    root = Path(settings.datasim.folder)
    dest = root / night
    if dest.is_dir() and any(dest.iterdir()) and not force:
        files = list(dest.glob("*.avro"))
        return NightFiles(dest, len(files), sum(f.stat().st_size for f in files), already=True)
    downloads = root / DOWNLOADS
    tarball = downloads / (url.rstrip("/").rsplit("/", 1)[-1] or f"{night}.tar.gz")
    downloads.mkdir(parents=True, exist_ok=True)
    if not tarball.exists():
        try:
            download(
                url,
                tarball,
                attempts=settings.datasim.attempts,
                timeout=settings.datasim.timeout_s,
                progress=Progress(f"night {night}", out),
            )
        except DownloadError:
            _remove_if_empty(downloads)  # an interrupted download keeps its part there
            raise
    try:
        contents = check(tarball)
        if dest.exists():  # --force: the old copy goes only once the new one is sound
            remove_quietly(dest)
        unpack(tarball, contents, dest)
    except ArchiveError:
        remove_quietly(tarball)  # a resume would only append to the same bad bytes
        _remove_if_empty(downloads)
        raise
    if not keep_archive:
        remove_quietly(tarball)
        _remove_if_empty(downloads)
    return NightFiles(dest, len(contents.alerts), contents.bytes)


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``fink datasim download`` and its options; returns the ``download`` parser."""
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    get = actions.add_parser(
        "download",
        help="download a night of public ZTF alerts and unpack it for the simulator",
        description=(
            "Download the ZTF public alert archive's tarball of one night (resuming an "
            "interrupted download), check it whole, and unpack its Avro alert files into "
            "<folder>/<night>/ for `fink simulator --datasim`."
        ),
    )
    get.add_argument("--night", required=True, help="UTC night, YYYYMMDD")
    get.add_argument("--folder", help="where nights are unpacked (datasim.folder)")
    get.add_argument("--url", help="URL template with {night} (datasim.archive_url)")
    get.add_argument("--attempts", type=int, help="requests per run (datasim.attempts)")
    get.add_argument("--force", action="store_true", help="replace a night already unpacked")
    get.add_argument(
        "--keep-archive", action="store_true", help=f"keep the tarball in <folder>/{DOWNLOADS}"
    )
    return get


def run_from_args(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Run ``fink datasim download``; 1 with the reason when it fails."""
    out = out or sys.stdout
    for option, key in (("folder", "folder"), ("url", "archive_url"), ("attempts", "attempts")):
        value = getattr(args, option, None)
        if value is not None:
            setattr(settings.datasim, key, value)
    try:
        night = download_night(
            settings, args.night, force=args.force, keep_archive=args.keep_archive
        )
    except (DownloadError, ArchiveError) as err:
        print(f"fink datasim: {err}", file=sys.stderr)
        return 1
    state = "already there" if night.already else "unpacked"
    replay = f"fink simulator --survey {ZTF_NAME} --datasim {night.folder}"
    out.write(
        f"night {args.night}: {night.alerts} alerts ({night.bytes / 1e6:.1f} MB) {state} in "
        f"{night.folder}\nreplay them: {replay}\n"
    )
    return 0
