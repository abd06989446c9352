"""Convert fink-science's trained models to ONNX, once, into the models cache.

Run by ``scripts/setup.sh`` in the conversion environment (``models-cache/venv``:
TensorFlow, tf-keras, tf2onnx, onnx), never at run time and never in the broker's own
environment, whose runtime is onnxruntime alone::

    models-cache/venv/bin/python -m fink_broker.science.model_conversion models-cache \
        --models .venv/lib/python3.11/site-packages/fink_science/data/models

* SuperNNova ``model.pt`` state dicts (torch): read without torch
  (:mod:`~fink_broker.science.torch_pickle`) and laid out as ONNX LSTMs
  (:mod:`~fink_broker.science.snn_graph`);
* CATS ``cats_small_nometa_serial.keras`` (a Keras 2 file): loaded by tf-keras
  (``TF_USE_LEGACY_KERAS=1``; Keras 3 cannot read it) and converted by tf2onnx;
* the Rubin SLSN forest ``SLSN_rainbow_no_MD.joblib``: loaded by the scikit-learn that
  pickled it (1.5.2) and converted by skl2onnx, float32 like scikit-learn's own trees
  (they compare ``float32(x) <= threshold``), probabilities as a plain tensor.

Each output is recorded in ``manifest.json`` with the SHA-256 of its source files and the
converter version, so a second run converts nothing and a changed wheel is converted
again. Nothing converted is ever committed: the cache is a build product of the wheel.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from fink_broker.science.model_files import (
    CATS_FILE,
    SLSN_FILE,
    SLSN_ONNX,
    SNN_MODELS,
    fink_science_models,
)

log = logging.getLogger(__name__)

#: bump when a converter changes what it writes
CONVERTER_VERSION = "1"
#: the SLSN forest's number of input features
SLSN_FEATURES = 23
MANIFEST = "manifest.json"


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256(CONVERTER_VERSION.encode())
    for path in sorted(paths):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def convert_snn(model_dir: Path, out: Path) -> None:
    """One SuperNNova model directory to an ONNX file."""
    import onnx

    from fink_broker.science import snn_graph
    from fink_broker.science.torch_pickle import load_state_dict

    settings = json.loads((model_dir / "cli_args.json").read_text())
    model = snn_graph.build(load_state_dict(model_dir / "model.pt"), settings)
    onnx.save(model, out)


def convert_cats(keras_file: Path, out: Path) -> None:
    """The CATS Keras 2 model to an ONNX file (tf-keras + tf2onnx)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf2onnx
    import tf_keras

    model = tf_keras.models.load_model(keras_file, compile=False)
    tf2onnx.convert.from_keras(model, opset=17, output_path=str(out))


def convert_slsn(joblib_file: Path, out: Path) -> None:
    """The SLSN random forest to an ONNX file (scikit-learn 1.5.2 + skl2onnx)."""
    import joblib
    import numpy as np
    from skl2onnx import to_onnx

    model = joblib.load(joblib_file)
    onnx_model = to_onnx(
        model,
        np.zeros((1, SLSN_FEATURES), dtype=np.float32),
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    out.write_bytes(onnx_model.SerializeToString())


def conversions(models: Path) -> list[tuple[str, list[Path], Callable[[Path], None]]]:
    """(output name, source files, convert to a path) of every model to convert."""
    jobs: list[tuple[str, list[Path], Callable[[Path], None]]] = []
    for name in SNN_MODELS:
        source = models / "snn_models" / name
        files = [source / f for f in ("model.pt", "cli_args.json", "data_norm.json")]
        jobs.append((f"snn/{name}.onnx", files, lambda o, s=source: convert_snn(s, o)))
    cats = models / CATS_FILE
    jobs.append(("cats/cats.onnx", [cats], lambda o: convert_cats(cats, o)))
    slsn = models / SLSN_FILE
    jobs.append((SLSN_ONNX, [slsn], lambda o: convert_slsn(slsn, o)))
    return jobs


def convert_all(cache: Path, models: Path | None = None) -> dict[str, str]:
    """Convert what is missing or stale in ``cache``; returns the manifest."""
    models = fink_science_models() if models is None else models
    cache.mkdir(parents=True, exist_ok=True)
    manifest_path = cache / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name, sources, convert in conversions(models):
        out = cache / name
        digest = _digest(sources)
        if out.exists() and manifest.get(name) == digest:
            log.info("%s is up to date", name)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".partial")
        convert(partial)
        partial.replace(out)
        manifest[name] = digest
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        log.info("converted %s (%d bytes)", name, out.stat().st_size)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path, help="the models cache (paths.models_cache)")
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        help="fink_science/data/models (default: of the fink-science installed here)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    convert_all(args.cache, args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
