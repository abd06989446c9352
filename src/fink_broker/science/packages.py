"""Where an installed package lives, found without importing it.

fink-science's modules import pyspark when imported, and the model-conversion environment
has neither pyspark nor pandas: data files are found through the import system's spec.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(package: str) -> Path | None:
    """The directory of an installed package, or None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
