#!/usr/bin/env bash
# The test suite: `fink_test` (lint, then every tier: unit, spark, integration with a real
# local Kafka and HBase, e2e through the `fink` command; coverage at the end).
# Options and extra arguments go to fink_test (`--without-integration`, `-h`) and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/fink_test ] || bash scripts/setup.sh
exec .venv/bin/fink_test "$@"
