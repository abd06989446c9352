#!/usr/bin/env bash
# Convert fink-science's trained models to ONNX once, into models-cache/ (idempotent: the
# manifest keys each output on the SHA-256 of its sources, so a second run converts
# nothing). The conversion runs in its own venv (models-cache/venv: TensorFlow, tf-keras,
# tf2onnx), because the broker's runtime is onnxruntime alone.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${FINK_PATHS_MODELS_CACHE:-models-cache}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
MODELS=$(.venv/bin/python -c "from fink_broker.science.model_files import fink_science_models; print(fink_science_models())")
STAMP="$CACHE/venv/.requirements"
if ! cmp -s scripts/models/requirements.txt "$STAMP" 2>/dev/null; then
  echo "== creating the model-conversion venv ($CACHE/venv)"
  rm -rf "$CACHE/venv"
  "$PYTHON" -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q -r scripts/models/requirements.txt
  cp scripts/models/requirements.txt "$STAMP"
fi
echo "== converting fink-science models to ONNX ($CACHE)"
LOG="$CACHE/conversion.log"
if ! TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH=src "$CACHE/venv/bin/python" \
    -m fink_broker.science.model_conversion "$CACHE" --models "$MODELS" >"$LOG" 2>&1; then
  cat "$LOG"
  exit 1
fi
grep "fink_broker.science.model_conversion\|__main__" "$LOG" || true
