"""What a driver sends its executors on a cluster: the Python environment and the files.

In local mode the executors are threads of the driver's JVM and run the driver's Python.
With any other master they are processes elsewhere that must not depend on the driver's
disk: they receive Fink's jars through ``spark.jars`` (``engine.session``), the packed
Python environment through ``spark.archives`` (``infra.python_env``), unpacked as
``./fink_python`` in each executor's working folder and run as its Python workers'
interpreter, and the operator's catalogues (``fink catalogs add``) through ``spark.files``,
which Spark copies into the same folder, where ``xmatch_local`` reads them
(``science.local_catalogues``). The built-in catalogues come inside their packages, with
the environment.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fink_broker.config import Settings, is_local_master
from fink_broker.infra.python_env import ARCHIVE_ALIAS, EXECUTOR_PYTHON, packed_environment
from fink_broker.science.local_catalogues import shipped_files

log = logging.getLogger(__name__)


def executor_python(settings: Settings) -> str | None:
    """The interpreter the executors' Python workers run: the shipped one on a cluster that
    ships it, else None (the driver's own in local mode, the workers' PYSPARK_PYTHON)."""
    if is_local_master(settings.spark.master) or not settings.spark.ship_python:
        return None
    return EXECUTOR_PYTHON


def shipped_settings(settings: Settings, archive: str | Path | None = None) -> dict[str, str]:
    """Spark properties that send the executors their code and files; empty in local mode.

    ``archive`` is the packed environment (by default ``spark.python_archive``, or this
    environment packed once into the jar cache).

    >>> shipped_settings(Settings())
    {}
    """
    if is_local_master(settings.spark.master):
        return {}
    out: dict[str, str] = {}
    if settings.spark.ship_python:
        archive = archive or settings.spark.python_archive or packed_environment(settings)
        out["spark.archives"] = f"{archive}#{ARCHIVE_ALIAS}"
    files = shipped_files(settings)
    if files:
        out["spark.files"] = ",".join(str(f) for f in files)
    return out
