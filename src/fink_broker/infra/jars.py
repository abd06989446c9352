"""Resolve the JVM jars Fink needs locally, once, into a cache directory.

Five things live under ``settings.paths.jar_cache`` (a relative path resolves against the
current directory):

- ``kafka-broker/``: the Apache Kafka broker and its logging backend (``maven/kafka-broker.xml``);
- ``spark-connectors/``: the Spark Kafka source/sink and spark-avro, restricted to the jars the
  pyspark wheel does not already ship (``maven/spark-connectors.xml``);
- ``hbase/``: the standalone HBase (master, region server, ZooKeeper) and its Thrift gateway
  (``maven/hbase.xml``);
- ``hadoop-hdfs/``: the HDFS NameNode and DataNode of ``fink cluster start``, of the Hadoop
  version of pyspark's own client (``maven/hadoop-hdfs.xml``);
- ``fink-jvm/fink-jvm-<hash>.jar``: Fink's own Java functions (``infra/java``), compiled
  against the pyspark jars.

Maven runs only when a folder's stamp (the sha256 of its POM) is missing or stale, and javac
only when the Java sources or the pyspark version change, so once the cache is warm nothing is
downloaded or compiled and a Spark session or a broker starts offline. CI pre-warms the cache
with ``python -m fink_broker.infra.jars``, which also builds the one non-JVM entry of the
cache, ``schema-registry/`` (the local schema registry, a Rust crate: ``infra/crates.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fink_broker.config import ConfigError, Settings, load_settings
from fink_broker.errors import FinkError

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
MAVEN_DIR = _HERE / "maven"
JAVA_DIR = _HERE / "java"
CONF_DIR = _HERE / "conf"

#: the Maven manifests, by cache folder name
MAVEN_FOLDERS = ("kafka-broker", "spark-connectors", "hbase", "hadoop-hdfs")
#: Java release the Fink functions are compiled for (Spark 4 needs Java 17+)
JAVA_RELEASE = "17"
#: name of the file, inside a resolved folder, that records the sha256 of its POM
STAMP = ".pom.sha256"
#: Maven gets this long before we give up (a cold resolve takes about a minute)
MAVEN_TIMEOUT_S = 1800


class JvmToolError(FinkError):
    """A JDK or Maven executable that Fink needs is not installed."""


class JarResolutionError(FinkError):
    """Maven or javac ran but did not produce the expected jars."""


@dataclass(frozen=True)
class JarSet:
    """The jars of one resolved cache."""

    #: Spark connector jars plus Fink's own JVM functions, for ``spark.jars``
    spark_jars: list[Path]
    #: classpath of the local Kafka broker (``java -cp``)
    kafka_classpath: list[Path]
    #: Fink's own JVM classes (also in ``spark_jars``), None without Java sources
    fink_jvm: Path | None = None


def jar_cache_dir(settings: Settings) -> Path:
    """Absolute path of the jar cache (relative settings resolve against the cwd)."""
    return Path(settings.paths.jar_cache).expanduser().resolve()


def spark_log4j_conf() -> Path:
    """The packaged log4j2 configuration for the Spark JVM (root WARN, known noise at ERROR)."""
    return CONF_DIR / "spark-log4j2.properties"


def kafka_log4j_conf() -> Path:
    """The packaged log4j2 configuration of the local Kafka broker (rolling server.log)."""
    return CONF_DIR / "kafka-log4j2.properties"


def find_jvm_tool(name: str) -> str:
    """Path of ``java``, ``javac``, ``jar`` or ``mvn``, or a JvmToolError that says what to install.

    ``$JAVA_HOME/bin`` wins over ``PATH`` for the JDK tools, as with Maven and Spark, so the
    broker, the compiler and Spark agree on one JDK when several are installed.
    """
    if name != "mvn" and os.environ.get("JAVA_HOME"):
        candidate = Path(os.environ["JAVA_HOME"]) / "bin" / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    if name == "mvn":
        hint = "Apache Maven 3.6+ (e.g. `apt-get install maven`)"
    else:
        hint = "a JDK 17+ (e.g. `apt-get install openjdk-17-jdk-headless`, or set JAVA_HOME)"
    raise JvmToolError(
        f"`{name}` was not found on PATH: Fink needs {hint} to resolve and build its local "
        "JVM components (Kafka broker, Spark connectors)."
    )


def pyspark_jars_dir() -> Path:
    """The ``jars`` folder of the installed pyspark wheel, found without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise JarResolutionError("pyspark is not installed in this environment")
    return Path(spec.origin).parent / "jars"


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def cache_lock(cache: Path, name: str = ".lock") -> Iterator[None]:
    """Serialise resolution between processes (two test sessions, CLI + CI) on one cache.

    ``name`` is the lock file: a build that can take long (cargo's) takes its own, so it
    does not hold up a Kafka or HBase start that only reads its jars.
    """
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / name, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def folder_lock(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise work on ``folder`` between processes, through its ``.lock`` file."""
    return cache_lock(folder)


def _jars_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jar"))


def output_tail(text: str, lines: int = 30) -> str:
    """The last ``lines`` of a build tool's output, for an error message."""
    return "\n".join(text.strip().splitlines()[-lines:])


def _maven_folder(cache: Path, name: str, progress: Callable[[str], None]) -> list[Path]:
    """Jars of ``maven/<name>.xml`` in ``<cache>/<name>/``, running Maven if the stamp is stale."""
    pom = MAVEN_DIR / f"{name}.xml"
    digest = _sha256_file(pom)
    target = cache / name
    stamp = target / STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        jars = _jars_in(target)
        if jars:
            return jars
    mvn = find_jvm_tool("mvn")
    progress(f"resolving {name} jars with Maven into {target} (first run: up to a minute)")
    started = time.monotonic()
    # Maven works in a scratch copy: the package folder may be read-only (site-packages),
    # and the folder only replaces the old one once complete, stamp included.
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{name}-") as tmp:
        work = Path(tmp)
        shutil.copyfile(pom, work / "pom.xml")
        out = work / "jars"
        cmd = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={out}",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(
            cmd, cwd=work, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            raise JarResolutionError(
                f"Maven could not resolve {pom.name} (exit {result.returncode}); is Maven Central "
                f"reachable?\n{output_tail(result.stdout + result.stderr)}"
            )
        if not _jars_in(out):
            raise JarResolutionError(f"Maven resolved no jars for {pom.name}")
        (out / STAMP).write_text(digest + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
    jars = _jars_in(target)
    log.info(
        "resolved %d jars for %s in %.1f s into %s",
        len(jars),
        name,
        time.monotonic() - started,
        target,
    )
    return jars


def java_sources() -> list[Path]:
    """Fink's Java sources (``infra/java/**/*.java``), in a stable order."""
    return sorted(JAVA_DIR.rglob("*.java"))


def _source_hash(sources: list[Path]) -> str:
    """Hash of what the jar depends on: sources, their paths, pyspark version, Java release."""
    h = hashlib.sha256()
    h.update(f"pyspark={importlib.metadata.version('pyspark')};release={JAVA_RELEASE}\0".encode())
    for src in sources:
        h.update(str(src.relative_to(JAVA_DIR)).encode() + b"\0")
        h.update(src.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _fink_jvm_jar(cache: Path, progress: Callable[[str], None]) -> Path | None:
    """Compile ``infra/java`` into ``<cache>/fink-jvm/fink-jvm-<hash>.jar`` unless it exists."""
    sources = java_sources()
    if not sources:
        return None
    folder = cache / "fink-jvm"
    jar_path = folder / f"fink-jvm-{_source_hash(sources)}.jar"
    if jar_path.is_file():
        return jar_path
    javac, jar_tool = find_jvm_tool("javac"), find_jvm_tool("jar")
    spark_jars = pyspark_jars_dir()
    progress(f"compiling {len(sources)} Java sources into {jar_path}")
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        classes = Path(tmp) / "classes"
        steps = [
            [javac, "-nowarn", "--release", JAVA_RELEASE, "-encoding", "UTF-8"]
            + ["-cp", f"{spark_jars}/*", "-d", str(classes)]
            + [str(s) for s in sources],
            [jar_tool, "cf", str(Path(tmp) / "fink-jvm.jar"), "-C", str(classes), "."],
        ]
        for cmd in steps:
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise JarResolutionError(
                    f"{Path(cmd[0]).name} failed (exit {result.returncode}) while building "
                    f"{jar_path.name}:\n{output_tail(result.stdout + result.stderr)}"
                )
        os.replace(Path(tmp) / "fink-jvm.jar", jar_path)
    # Jars of older sources are never used again (a running JVM keeps its open copy).
    for old in folder.glob("fink-jvm-*.jar"):
        if old != jar_path:
            old.unlink(missing_ok=True)
    log.info("built %s in %.1f s", jar_path, time.monotonic() - started)
    return jar_path


def kafka_classpath(settings: Settings, *, log: Callable[[str], None] = log.info) -> list[Path]:
    """Jars of the local Kafka broker only: starting Kafka needs neither javac nor pyspark."""
    cache = jar_cache_dir(settings)
    with cache_lock(cache):
        return _maven_folder(cache, "kafka-broker", log)


def hbase_classpath(settings: Settings, *, log: Callable[[str], None] = log.info) -> list[Path]:
    """Jars of the local standalone HBase and its Thrift gateway (``maven/hbase.xml``)."""
    cache = jar_cache_dir(settings)
    with cache_lock(cache):
        return _maven_folder(cache, "hbase", log)


def hdfs_classpath(settings: Settings, *, log: Callable[[str], None] = log.info) -> list[Path]:
    """Jars of the local HDFS NameNode and DataNode (``maven/hadoop-hdfs.xml``)."""
    cache = jar_cache_dir(settings)
    with folder_lock(cache):
        return _maven_folder(cache, "hadoop-hdfs", log)


def hadoop_daemon_command(
    *,
    conf_dir: Path,
    jars: list[Path],
    heap: str,
    options: Sequence[str],
    log4j: Path,
    log_property: str,
    log_file: Path,
    main: Sequence[str],
) -> list[str]:
    """The command line of a JVM of the Hadoop family (HBase, the HDFS daemons).

    ``conf_dir`` comes first on the class path, where they read their site files; each jar
    folder is one wildcard (java expands it), which keeps argv, ``ps`` and the PID file
    readable. Their logging is reload4j's, configured by ``log4j``, which writes to the
    file named by the system property ``log_property``.
    """
    folders = dict.fromkeys(j.parent for j in jars)
    classpath = ":".join([str(conf_dir), *(f"{folder}/*" for folder in folders)])
    return [
        find_jvm_tool("java"),
        f"-Xmx{heap}",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        *options,
        f"-Dlog4j.configuration={log4j.as_uri()}",
        f"-D{log_property}={log_file}",
        "-cp",
        classpath,
        *main,
    ]


def hdfs_log4j_conf() -> Path:
    """The packaged log4j (reload4j) configuration of the local HDFS daemons."""
    return CONF_DIR / "hdfs-log4j.properties"


def hbase_log4j_conf() -> Path:
    """The packaged log4j (reload4j) configuration of the local HBase JVMs."""
    return CONF_DIR / "hbase-log4j.properties"


def resolve_jars(settings: Settings, *, log: Callable[[str], None] = log.info) -> JarSet:
    """Resolve (or reuse) every cached jar and return the Spark and Kafka classpaths.

    ``log`` receives one line before each slow step (Maven, javac), so a CLI can tell the user
    why the first run pauses; once the cache is warm it is not called at all.
    """
    cache = jar_cache_dir(settings)
    with cache_lock(cache):
        kafka = _maven_folder(cache, "kafka-broker", log)
        connectors = _maven_folder(cache, "spark-connectors", log)
        fink_jvm = _fink_jvm_jar(cache, log)
    spark = connectors + ([fink_jvm] if fink_jvm is not None else [])
    return JarSet(spark_jars=spark, kafka_classpath=kafka, fink_jvm=fink_jvm)


def main(argv: list[str] | None = None) -> int:
    """``python -m fink_broker.infra.jars [-c conf]``: warm the jar cache and list it.

    The cache also holds the schema registry binary (:mod:`fink_broker.infra.crates`), so
    this one command prepares every local server offline.
    """
    parser = argparse.ArgumentParser(
        prog="python -m fink_broker.infra.jars",
        description="Resolve Fink's JVM jars (Maven, javac) into the jar cache and list them.",
    )
    parser.add_argument("-c", "--config", help="Fink TOML config file (default: $FINK_CONFIG)")
    parser.add_argument(
        "--no-registry",
        action="store_true",
        help="skip the local schema registry (a runtime image, without cargo, needs none)",
    )
    args = parser.parse_args(argv)
    # the schema registry, a Rust binary that shares the cache (crates imports this module)
    from fink_broker.infra.crates import CargoError, registry_binary

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        started = time.monotonic()
        progress = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
        jars = resolve_jars(settings, log=progress)
        hbase = hbase_classpath(settings, log=progress)
        registry = None if args.no_registry else registry_binary(settings, log=progress)
        hdfs = hdfs_classpath(settings, log=progress)
    except (ConfigError, JvmToolError, JarResolutionError, CargoError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"jar cache: {jar_cache_dir(settings)} (ready in {time.monotonic() - started:.1f} s)")
    print(f"spark jars ({len(jars.spark_jars)}):")
    for jar in jars.spark_jars:
        print(f"  {jar}")
    print(f"kafka broker classpath ({len(jars.kafka_classpath)} jars):")
    for jar in jars.kafka_classpath:
        print(f"  {jar.name}")
    print(f"hbase classpath ({len(hbase)} jars): {hbase[0].parent if hbase else '-'}")
    print(f"schema registry: {registry or 'not built (--no-registry)'}")
    print(f"hdfs classpath ({len(hdfs)} jars): {hdfs[0].parent if hdfs else '-'}")
    print(f"spark log4j2 configuration: {spark_log4j_conf()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
