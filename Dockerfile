# The Fink broker in one image, set up by the same scripts/setup.sh as a checkout
# (`--runtime`: the broker without the test tools). It is not built in CI, which has no
# Docker engine: tests/unit/test_docker_setup.py lints this file with hadolint and checks
# that its steps are the README's set-up. docker-compose.yml runs Kafka, HBase and the
# services from it.
FROM debian:bookworm-slim

# Python 3.11 (Debian 12's) with venv; setup.sh installs Java 17 and Maven itself.
# Versions are Debian's of the day: pinned ones would vanish from the mirror.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/fink
COPY . .
# the JVM jars are copied into jvm-cache/: Maven's own repository is not needed at run time
RUN bash scripts/setup.sh --runtime \
    && rm -rf /var/lib/apt/lists/* /root/.cache/pip /root/.m2 \
    && useradd --create-home --uid 1000 fink \
    && mkdir -p /data \
    && chown fink /data

ENV PATH=/opt/fink/.venv/bin:$PATH \
    FINK_PATHS_ROOT=/data/fink \
    FINK_PATHS_STATE_DIR=/data/state \
    FINK_PATHS_JAR_CACHE=/opt/fink/jvm-cache \
    FINK_API_HOST=0.0.0.0 \
    FINK_DASHBOARD_HOST=0.0.0.0

USER 1000
WORKDIR /data
VOLUME ["/data"]
# the REST API, the dashboard, the local Kafka broker (their default ports)
EXPOSE 8000 8050 9092
ENTRYPOINT ["fink"]
CMD ["--help"]
