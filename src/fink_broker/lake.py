"""Layout of the Parquet data lake below the configured root (local path or Hadoop URI).

One place decides where each service reads and writes, so a service never builds paths by
hand and a cluster only changes ``paths.root`` (e.g. ``hdfs://namenode:8020/fink``).

Each survey has its own folders (``raw/ztf/night=…``, ``raw/rubin/night=…``): one Parquet
folder holds one schema, and one root can serve both surveys.

>>> lake = Lake("/data/fink", "ztf")
>>> lake.raw, lake.checkpoint("stream2raw")
('/data/fink/raw/ztf', '/data/fink/checkpoints/ztf/stream2raw')
>>> Lake("s3a://bucket/fink/", "rubin").quarantine
's3a://bucket/fink/quarantine/rubin'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: folders that `fink init` creates under a local root
FOLDERS = ("raw", "science", "checkpoints", "quarantine", "logs")


def is_local(root: str) -> bool:
    """True for plain paths and file:// URIs, False for hdfs://, s3a:// and other schemes."""
    return "://" not in root or root.startswith("file://")


@dataclass(frozen=True)
class Lake:
    """Paths of one survey's archives, checkpoints and quarantine below ``root``."""

    root: str
    survey: str

    def _join(self, *parts: str) -> str:
        root = self.root.rstrip("/")
        if is_local(root) and not root.startswith("file://"):
            root = str(Path(root).absolute())
        return "/".join([root, *parts])

    @property
    def raw(self) -> str:
        """Decoded alerts as the survey sent them, partitioned by ``night=YYYYMMDD``."""
        return self._join("raw", self.survey)

    @property
    def science(self) -> str:
        """Alerts that passed the quality cuts, with Fink's added values."""
        return self._join("science", self.survey)

    @property
    def quarantine(self) -> str:
        """Messages that could not be decoded, with their bytes, offsets and the error."""
        return self._join("quarantine", self.survey)

    def checkpoint(self, service: str) -> str:
        """Checkpoint folder of one service's streaming query."""
        return self._join("checkpoints", self.survey, service)

    def local_folders(self) -> list[Path]:
        """The folders to create for a local root (empty for a Hadoop URI)."""
        if not is_local(self.root):
            return []
        base = Path(self.root.removeprefix("file://"))
        return [base / name for name in FOLDERS]
