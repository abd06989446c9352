#!/usr/bin/env bash
# Rebuild tests/fixtures/fink_science_reference.json: fink-science 7.4.0's own functions
# with the original models, in a side venv (.venv-reference, ~8 GB: torch from PyPI is a
# CUDA build with its NVIDIA libraries; TensorFlow for CATS; pandas 1.5). Not part of CI:
# run it by hand when a model, fink-science or the test data change (about 10 min the
# first time, 2 min after).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv-reference/bin/python ]; then
  "$PYTHON" -m venv .venv-reference
  echo '*' > .venv-reference/.gitignore
fi
.venv-reference/bin/pip install -q -r scripts/reference/requirements.txt
.venv-reference/bin/pip install -q --no-deps -r scripts/reference/requirements-nodeps.txt
TF_CPP_MIN_LOG_LEVEL=3 .venv-reference/bin/python scripts/reference/make_fixture.py
