"""Check a tarball of alert files, then unpack it into one folder, or leave nothing.

The archive is read twice. The check reads it whole: every member must be a regular file
or a folder whose name stays inside the destination (no absolute path, no ``..``, no link,
no device), every alert file an Avro object container (``Obj\\x01``), and the gzip stream
must end with its checksum; a truncated or corrupt tarball fails here, before anything is
written, as is one whose reading stops early at a damaged header with data left after it.
The unpack then writes the alert files, flat, into a hidden folder beside the
destination and renames it into place only once every file is there: a failure at any
point removes that folder, so the destination either holds the whole night or nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fink_broker.errors import FinkError

#: the first bytes of every Avro object container file
AVRO_MAGIC = b"Obj\x01"
ALERT_SUFFIX = ".avro"


class ArchiveError(FinkError):
    """The tarball is corrupt or unsafe; the message names the member at fault."""


@dataclass
class Contents:
    """What a checked tarball holds."""

    alerts: dict[str, str] = field(default_factory=dict)  # member name -> file name
    bytes: int = 0
    ignored: list[str] = field(default_factory=list)


def _safe_name(member: tarfile.TarInfo) -> PurePosixPath:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")):
        raise ArchiveError(f"refused: {member.name!r} is an absolute path")
    if ".." in name.parts:
        raise ArchiveError(f"refused: {member.name!r} escapes the destination folder")
    if member.issym() or member.islnk():
        raise ArchiveError(f"refused: {member.name!r} is a link (to {member.linkname!r})")
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(f"refused: {member.name!r} is not a regular file")
    return name


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise ArchiveError(f"{path.name} is not a readable tarball: {err}") from None


def _check_end(archive: tarfile.TarFile, members: int) -> None:
    """After the last member only the tar's zero padding may follow, up to the end of the
    (gzip) stream, whose checksum is then verified. tarfile stops quietly at a damaged
    header, which would otherwise pass for the end of a shorter archive."""
    stream = archive.fileobj
    assert stream is not None
    while chunk := stream.read(1 << 20):
        if chunk.count(0) != len(chunk):
            raise ArchiveError(
                f"corrupt: unreadable data after the first {members} alert files (a damaged "
                "member header)"
            )


def check(path: Path) -> Contents:
    """Read the whole tarball and list its alert files; raise :class:`ArchiveError` if any
    member is unsafe or the archive is corrupt."""
    contents = Contents()
    seen: dict[str, str] = {}
    try:
        with _open(path) as archive:
            for member in archive:
                name = _safe_name(member)
                if member.isdir():
                    continue
                if name.suffix != ALERT_SUFFIX:
                    contents.ignored.append(member.name)
                    continue
                if name.name in seen:
                    raise ArchiveError(
                        f"refused: {member.name!r} and {seen[name.name]!r} unpack to one file"
                    )
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file
                with handle:
                    if handle.read(len(AVRO_MAGIC)) != AVRO_MAGIC:
                        raise ArchiveError(f"{member.name!r} is not an Avro container file")
                    while handle.read(1 << 20):  # read it all: the gzip checksum is at the end
                        pass
                seen[name.name] = member.name
                contents.alerts[member.name] = name.name
                contents.bytes += member.size
            _check_end(archive, len(seen))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise ArchiveError(f"{path.name} is corrupt: {err}") from None
    if not contents.alerts:
        raise ArchiveError(f"{path.name} holds no alert file ({len(contents.ignored)} others)")
    return contents


def unpack(path: Path, contents: Contents, dest: Path) -> Path:
    """Write the checked alert files into ``dest`` (which must not exist), all or none."""
    if dest.exists():
        raise ArchiveError(f"{dest} exists")
    free = shutil.disk_usage(dest.parent).free
    if contents.bytes > free:
        raise ArchiveError(
            f"{contents.bytes / 1e9:.2f} GB to unpack but {free / 1e9:.2f} GB free in {dest.parent}"
        )
    staging = dest.with_name(f".{dest.name}.unpacking-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        written = 0
        with _open(path) as archive:
            for member in archive:
                target = contents.alerts.get(member.name)
                if target is None or not member.isfile():
                    continue
                handle = archive.extractfile(member)
                assert handle is not None
                with handle, open(staging / target, "xb") as out:
                    shutil.copyfileobj(handle, out, 1 << 20)
                written += 1
        if written != len(contents.alerts):
            raise ArchiveError(f"{written} of {len(contents.alerts)} alert files unpacked")
        os.rename(staging, dest)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArchiveError(f"unpacking {path.name} failed, nothing kept: {err}") from None
    except BaseException:  # Ctrl-C included: the destination holds all or nothing
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def remove_quietly(*paths: Path) -> None:
    """Remove files or folders that may not exist (what a failed run leaves)."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
