"""Where the trained models live, and one onnxruntime session per model and process.

The models are fink-science 7.4.0's own files (its wheel is installed for them); those
onnxruntime cannot read directly are converted once by ``scripts/setup.sh`` into the
models cache (``paths.models_cache``, ``$FINK_PATHS_MODELS_CACHE``; see
:mod:`~fink_broker.science.model_conversion`). A Spark Python worker serves many Arrow
batches, so each model is loaded once per worker process (:func:`session`), not per batch,
and each session uses one thread: Spark already runs one worker per core.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from fink_broker.science.packages import package_dir

log = logging.getLogger(__name__)

#: environment variable naming the models cache (the config's ``paths.models_cache``)
CACHE_ENV = "FINK_PATHS_MODELS_CACHE"
#: default cache, relative to the working directory (as ``paths.jar_cache``)
DEFAULT_CACHE = "models-cache"
#: SuperNNova models converted (directories under ``snn_models/`` of the wheel)
SNN_MODELS: tuple[str, ...] = (
    "snn_snia_vs_nonia",
    "snn_sn_vs_all",
    "elasticc_binary_broad/SN_vs_other",
)
#: the CATS model file, relative to the wheel's models directory
CATS_FILE = "cats_models/cats_small_nometa_serial.keras"
#: the Rubin SLSN random forest (scikit-learn 1.5.2 joblib), relative to the models directory
SLSN_FILE = "SLSN_rainbow_no_MD.joblib"
#: its converted ONNX file, in the models cache
SLSN_ONNX = "slsn/slsn_rainbow_no_md.onnx"
#: the anomaly-detection forests (ONNX files inside zip archives), relative to it
ANOMALY_DIR = "anomaly_detection"
SETUP_HINT = "run `bash scripts/setup.sh`, which converts fink-science's models once"


class ModelUnavailable(RuntimeError):
    """A model file (or its converted ONNX) is not installed."""


def fink_science_models() -> Path:
    """``fink_science/data/models`` of the installed wheel."""
    root = package_dir("fink_science")
    if root is None:
        raise ModelUnavailable(
            "fink-science is not installed: pip install --no-deps fink-science==7.4.0"
        )
    return root / "data" / "models"


def models_cache() -> Path:
    """The models cache directory (converted ONNX files)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).absolute()


def converted(name: str) -> Path:
    """A converted model in the cache, e.g. ``snn/snn_snia_vs_nonia.onnx``."""
    path = models_cache() / name
    if not path.exists():
        raise ModelUnavailable(f"converted model {path} is missing: {SETUP_HINT}")
    return path


_SESSIONS: dict[tuple[str, float], Any] = {}
_LOCK = threading.Lock()


def session(path: Path, member: str | None = None) -> Any:
    """The onnxruntime session of ``path``, created once per process (and file version).

    ``member`` names an ONNX file inside the zip archive ``path``: the wheel ships the
    anomaly forests zipped, and reading the member's bytes spares unpacking them anywhere.
    """
    import onnxruntime

    key = (f"{path}!{member}" if member else str(path), path.stat().st_mtime)
    with _LOCK:
        hit = _SESSIONS.get(key)
        if hit is None:
            start = time.perf_counter()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            # the anomaly forests declare a 1-d output and give [n, 1]: warned on every run
            options.log_severity_level = 3
            if member is None:
                model: str | bytes = str(path)
            else:
                with zipfile.ZipFile(path) as archive:
                    model = archive.read(member)
            hit = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            _SESSIONS[key] = hit
            log.info("model %s loaded in %.2f s", key[0], time.perf_counter() - start)
    return hit


def loaded_models() -> list[str]:
    """Paths of the models this process has loaded (benchmarks check one copy each)."""
    with _LOCK:
        return sorted(k[0] for k in _SESSIONS)
