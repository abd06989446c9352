#!/usr/bin/env bash
# The test suite: lint, then every tier (unit, spark, integration with a real local Kafka,
# e2e through the `fink` command). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
exec .venv/bin/python -m pytest "$@"
