"""The benchmarks' scratch folders: a local Kafka log and Parquet archives of 20,000 alerts
weigh 3-5 GB per run, so a folder left behind by each run fills a laptop's disk within a
day of measurements (and a full disk then stops the local Kafka broker mid-replay)."""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
from pathlib import Path


def add_keep_option(parser: argparse.ArgumentParser) -> None:
    """``--keep``: leave the scratch folder (Kafka log, archives, Spark logs) for a look."""
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (its path is printed)"
    )


def scratch_folder(prefix: str, keep: bool) -> Path:
    """A new temporary folder, removed when the process exits unless ``keep``.

    Removal at exit, after the benchmark's own clean-up (Kafka and HBase stopped, Spark
    session closed), so no service still writes into it.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if keep:
        print(f"scratch folder (kept): {folder}")
    else:
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def scratch_paths(folder: Path, repo: Path) -> dict[str, str]:
    """Settings overrides that keep a benchmark's data lake and run state in its scratch
    folder, and take the JVM jars from the repository's cache."""
    return {
        "paths.root": str(folder / "lake"),
        "paths.state_dir": str(folder / "state"),
        "paths.jar_cache": str(repo / "jvm-cache"),
    }
