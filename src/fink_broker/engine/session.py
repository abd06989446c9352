"""One SparkSession per process, configured from the settings tree.

Tests and the laptop mode run several queries in one session (the JVM costs ~450 MiB and
5 s to start); production runs one service per ``fink start``. The Kafka/Avro connector
jars and Fink's own JVM functions come from the Maven-resolved jar cache, never from a
download at run time. With a cluster master the same jars reach the executors through
``spark.jars``, and the Python environment and catalogues through ``engine.shipped``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from py4j.java_gateway import JavaClass
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fink_broker.config import Settings, is_local_master
from fink_broker.engine.shipped import executor_python, shipped_settings
from fink_broker.infra.jars import resolve_jars, spark_log4j_conf
from fink_broker.lake import is_local
from fink_broker.science.model_files import CACHE_ENV as MODELS_ENV

log = logging.getLogger(__name__)

#: what a framing function returns: the Avro body of each record of the message, the key of
#: its writer schema (CRC-64-AVRO fingerprint or registry id) and why the message goes to
#: quarantine, if it does
FRAME_TYPE = T.StructType(
    [
        T.StructField("payloads", T.ArrayType(T.BinaryType())),
        T.StructField("schema_key", T.StringType()),
        T.StructField("error", T.StringType()),
    ]
)
#: what a resolving function returns: the record re-encoded in the reader schema, or why not
RESOLVED_TYPE = T.StructType(
    [T.StructField("payload", T.BinaryType()), T.StructField("error", T.StringType())]
)
#: Spark SQL name -> (Java class, return type) of Fink's JVM functions (infra/java)
JVM_FUNCTIONS = {
    "fink_avro_container": ("org.fink.broker.AvroContainerFrame", FRAME_TYPE),
    "fink_confluent_frame": ("org.fink.broker.ConfluentFrame", FRAME_TYPE),
    "fink_container_resolve": ("org.fink.broker.ContainerResolve", RESOLVED_TYPE),
    "fink_registry_resolve": ("org.fink.broker.RegistryResolve", RESOLVED_TYPE),
}
#: Java classes that register their nondeterministic functions themselves (PySpark's
#: registerJavaFunction only makes deterministic ones, which Spark may fold into constants)
JVM_SELF_REGISTERING = ("org.fink.broker.Now",)

#: file formats left on Spark's DataSource V1 path: its default list less ``kafka``
V1_SOURCES = "avro,csv,json,orc,parquet,text"

#: SQL executions whose plan and graph the driver keeps for the (disabled) UI's SQL tab
RETAINED_EXECUTIONS = 25

#: characters of a plan's description (the SQL tab, event logs, errors): beyond it, cut
MAX_PLAN_STRING = 256 * 1024

#: values that must never appear in Spark's logs or UI (SASL JAAS strings carry passwords)
REDACTION_REGEX = r"(?i)password\s*=\s*\"[^\"]*\"|secret|token"


def get_session(settings: Settings, app_name: str = "fink") -> SparkSession:
    """Return the process's SparkSession, creating it from ``settings`` if needed."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    jars = resolve_jars(settings)
    local = is_local_master(settings.spark.master)
    shipped_python = executor_python(settings)
    if shipped_python is not None:
        # the executors' Python workers run the environment the driver ships them; the
        # driver itself runs no Python worker with a cluster master
        os.environ["PYSPARK_PYTHON"] = shipped_python
    else:
        # Workers must run this interpreter (the venv), not whatever python3 is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # the science modules read the converted models from here, in the Python workers
    models = str(Path(settings.paths.models_cache).expanduser().absolute())
    os.environ[MODELS_ENV] = models
    log4j = f"-Dlog4j2.configurationFile=file:{spark_log4j_conf()}"
    java_options = f"{log4j} {avro_limits(settings)} {settings.spark.java_options}".strip()
    # a cluster's executors have no file at the driver's path: they log as their workers'
    # Spark configuration says (conf/log4j2.properties, on their class path)
    executor_options = (
        java_options if local else f"{avro_limits(settings)} {settings.spark.java_options}".strip()
    )
    builder = (
        SparkSession.builder.master(settings.spark.master)
        .appName(app_name)
        .config("spark.jars", ",".join(str(j) for j in jars.spark_jars))
        .config("spark.driver.memory", settings.spark.driver_memory)
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.executor.extraJavaOptions", executor_options)
        .config("spark.sql.shuffle.partitions", str(settings.spark.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config(f"spark.executorEnv.{MODELS_ENV}", models)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # only module/filter inputs travel to Python (no cutouts). Per Arrow batch the workers
        # pay a fixed pandas cost: 2500-row batches halved raw2science's Python CPU per alert
        # against 500 (0.15 -> 0.08 ms, warm, 20,000 ZTF alerts). The rows waiting for their
        # UDF results are queued by Spark (memory, then disk), cutouts included.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2500")
        .config("spark.sql.redaction.string.regex", REDACTION_REGEX)
        .config("spark.sql.streaming.stopTimeout", "60s")
        # cutouts are gzipped FITS: compressing the cached micro-batch only burns CPU
        .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
        # a partitioned write sorts its rows by partition (night) unless it may keep a few
        # files open at once: a micro-batch spans one or two nights, and sorting copies
        # every 50-150 kB alert once more
        .config("spark.sql.maxConcurrentOutputFileWriters", "4")
        # Kafka through DataSource V2 (Spark's default keeps it on V1): a V1 write runs its
        # plan in an inner execution that reports no observed metrics, so distribution could
        # not count its messages during the write (Observation.get would never return)
        .config("spark.sql.sources.useV1SourceList", V1_SOURCES)
        # whole-stage code generation for alert-wide plans too: Spark's default (100 fields,
        # nested ones counted) leaves every survey alert plan interpreted stage by stage, and
        # each task then generates the Java source of its projections again (the compiled
        # class is cached, its source is not): 10% of the JVM's time in the live pipeline.
        # Plans whose generated methods are still too large fall back on their own.
        .config("spark.sql.codegen.maxFields", "100000")
        # Parquet reads of whole alerts (raw2science, distribution, archive): Spark's 4096-row
        # column batches of 40-150 kB alerts are 0.2-0.6 GB per column set, reallocated per
        # file on the heap and far beyond the CPU caches. 256 rows off the heap: a read of
        # 20,000 ZTF alerts took 1.5 s instead of 2.8 s, and GC threads 0.4 CPU-s, not 2.1
        .config("spark.sql.parquet.columnarReaderBatchSize", "256")
        .config("spark.sql.columnVector.offheap.enabled", "true")
        # Each Spark execution describes its plan for the UI's SQL tab, UI or not. Spark's
        # "formatted" default lists every attribute of every operator of the alert-wide
        # plans: 16% of the streaming queries' driver CPU in the live pipeline (JFR), on
        # each micro-batch's critical path. Live ZTF latency at 250/s: p50 3.0 s, not 4.6 s
        .config("spark.sql.ui.explainMode", "simple")
        # and at most this long: stream2raw's plan holds one from_avro per accepted schema
        # version, each with its writer and reader schemas as text (Rubin: 15 versions, 1.3 MB
        # of JSON), and adaptive execution describes the plan again at each stage (the
        # heap ran out on a plan string of a few hundred MB in the test suite)
        .config("spark.sql.maxPlanStringLength", str(MAX_PLAN_STRING))
        # the driver keeps each finished execution's plan description and plan graph, UI or
        # not, 1,000 by default: a Rubin alert-wide plan holds ~7 MB of them, so a 2 GB driver
        # ran out of heap after ~230 executions (the test suite's shared session; a live
        # service runs one execution or more per micro-batch). 25 keep ~0.2 GB at most
        .config("spark.sql.ui.retainedExecutions", str(RETAINED_EXECUTIONS))
        # the archives in zstd rather than Spark's snappy: Rubin's cutouts are uncompressed
        # FITS. 20,000 Rubin alerts rewritten on local[2]: 645 MB instead of 1.3 GB, written in
        # about the same time (6.9-7.7 s against 7.4-7.8 s, two runs), read back faster (2.5 s
        # against 3.3 s); stream2raw drains at the same rate (1,612 against 1,687 alerts/s)
        .config("spark.sql.parquet.compression.codec", "zstd")
        # night=20200101 stays the string it was written as, not an integer
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    )
    extra = dict(settings.spark.extra)
    for key, value in local_file_settings(settings, jars.fink_jvm).items():
        if key == "spark.driver.extraClassPath" and key in extra:
            # the operator's class path too: without Fink's jar the JVM would not start
            value = f"{value}{os.pathsep}{extra.pop(key)}"
        builder = builder.config(key, value)
    for key, value in shipped_settings(settings).items():
        if key in extra:  # the operator's archives and files travel too
            value = f"{value},{extra.pop(key)}"
        builder = builder.config(key, value)
    for key, value in extra.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    register_jvm_functions(spark)
    log.info("Spark %s session on %s", spark.version, settings.spark.master)
    return spark


def recover_session() -> str | None:
    """Make the next :func:`get_session` start a working session after a failure; say how.

    A restarted query can only run on a live SparkContext, and two failures leave PySpark
    holding a dead one: the context was stopped (the application killed by its master, a
    fatal error in the driver), so every call answers ``RpcEnv already stopped``; or the JVM
    itself is gone (killed, out of memory), so every call is ``Connection refused``. The
    first is stopped on the Python side, and the same JVM makes a new context; for the
    second, PySpark's class-level gateway is forgotten, so the next session launches a new
    JVM. ``None`` when the session is healthy (or there is none): nothing to do.
    """
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    if sc is None:
        return None
    try:
        stopped = sc._jsc is None or sc._jsc.sc().isStopped()
    except Exception:  # the JVM does not answer: Py4JNetworkError, ConnectionRefusedError
        with SparkContext._lock:
            SparkContext._active_spark_context = None
            SparkContext._gateway = None
            SparkContext._jvm = None
        SparkSession._instantiatedSession = None
        SparkSession._activeSession = None
        return "the Spark JVM is gone: a new one is started"
    if not stopped:
        return None
    try:
        sc.stop()
    except Exception as err:  # a half-stopped context: forget it anyway
        log.debug("stopping the dead SparkContext: %s", err)
        with SparkContext._lock:
            SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None
    return "the SparkContext was stopped: a new one is created"


#: most items in one Avro array or map block: an alert's histories hold hundreds, and a
#: malformed body that claims billions would make the decoder allocate them at once
AVRO_MAX_COLLECTION_ITEMS = 1_000_000


def avro_limits(settings: Settings) -> str:
    """JVM options that bound what Avro's decoder allocates for one value.

    Avro reads a length or a count, then allocates it (``SystemLimitException`` checks it
    first when these are set); without a bound, a 5 MB message of random bytes can ask for
    gigabytes. Strings and bytes are bounded by ``stream2raw.max_decoded_mb``, as the whole
    decoded alert is.
    """
    max_bytes = settings.stream2raw.max_decoded_mb * 2**20
    return " ".join(
        (
            f"-Dorg.apache.avro.limits.bytes.maxLength={max_bytes}",
            f"-Dorg.apache.avro.limits.string.maxLength={max_bytes}",
            f"-Dorg.apache.avro.limits.collectionItems.maxLength={AVRO_MAX_COLLECTION_ITEMS}",
        )
    )


#: Spark's checkpoint and commit logs through Hadoop's FileSystem API (see local_file_settings)
FILE_SYSTEM_CHECKPOINTS = (
    "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
)


def local_file_settings(settings: Settings, fink_jvm: Path | None) -> dict[str, str]:
    """Spark settings for a local data root and local mode: no forked processes, plain reads.

    Without Hadoop's native library, its local file system forks ``chmod`` for each file it
    creates, and its ``FileContext`` API, which Spark's checkpoint and commit logs use by
    default, forks ``readlink`` twice per rename. The live pipeline's Spark JVM started 34
    processes a second (JFR, three services at 250 ZTF alerts/s): four per log entry, and
    each micro-batch writes three to five entries (offsets, commit, file source and sink
    logs).

    In local mode, ``NioLocalFileSystem`` (infra/java) sets permissions through
    ``java.nio``; Spark submit opens the local file system before it loads ``spark.jars``,
    so Fink's jar goes on the driver's own class path too. A cluster's executors, which may
    not have that jar at a fixed path, keep Hadoop's class. On a local data root, the logs
    go through Spark's ``FileSystem``-based manager, whose rename is a plain file rename; a
    cluster file system (HDFS, S3A) keeps Spark's default.

    Parquet reads local files plainly, not as Hadoop "vectored" reads: the local file
    system serves those through an ``AsynchronousFileChannel`` whose pool threads never
    end, and the JDK copies each read through a direct buffer of the range's size (a whole
    row group, ~127 MB for Rubin) that each of those threads then keeps. raw2science ran
    out of direct memory in its third round over 20,000 Rubin alerts, and its task waited
    300 s on the lost read before the query failed (``tests/spark/test_direct_memory.py``).
    HDFS and S3A connectors have vectored reads of their own, which stay on.
    """
    out: dict[str, str] = {}
    if fink_jvm is not None and is_local_master(settings.spark.master):
        out["spark.driver.extraClassPath"] = str(fink_jvm)
        out["spark.hadoop.fs.file.impl"] = "org.fink.broker.NioLocalFileSystem"
    if is_local(settings.paths.root):
        out["spark.sql.streaming.checkpointFileManagerClass"] = FILE_SYSTEM_CHECKPOINTS
        out["spark.hadoop.parquet.hadoop.vectored.io.enabled"] = "false"
    return out


def jvm_class(spark: SparkSession, name: str) -> JavaClass:
    """The Java class ``name`` (fully qualified) of the session's JVM.

    Through ``spark._jvm.org.fink.broker.X``, Py4J first tries ``org``, ``org.fink`` and
    ``org.fink.broker`` as classes, and each failed lookup searches every jar of the class
    path: 5% of the streaming queries' driver CPU in the live pipeline (JFR), paid by each
    call of each micro-batch. A class named whole is one lookup.
    """
    return JavaClass(name, spark.sparkContext._gateway._gateway_client)


def java_strings(spark: SparkSession, values: Sequence[str]) -> object:
    """A Java String[] for a Py4J call, made in two calls whatever its length.

    Py4J sets an array's elements one round trip each: the ~450 strings of a survey's
    per-column writer options took 127 ms per write, on each micro-batch's critical path.
    The values travel as one newline-joined string, split on the JVM (2 ms).
    """
    if not values:
        return spark.sparkContext._gateway.new_array(jvm_class(spark, "java.lang.String"), 0)
    if any("\n" in value for value in values):
        raise ValueError(f"a newline in a value for the JVM: {values}")
    return jvm_class(spark, "java.util.regex.Pattern").compile("\n").split("\n".join(values), -1)


def register_jvm_functions(spark: SparkSession) -> None:
    """Make Fink's Java functions callable from Spark SQL in this session."""
    for name, (java_class, return_type) in JVM_FUNCTIONS.items():
        spark.udf.registerJavaFunction(name, java_class, return_type)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    for java_class in JVM_SELF_REGISTERING:
        jvm.__getattr__(java_class).register(spark._jsparkSession)


def now() -> Column:
    """The time each row is processed (``fink_now()``, see ``infra/java/.../Now.java``).

    Use it instead of ``current_timestamp()``, whose value becomes a literal of each
    micro-batch's generated code and so defeats Spark's cache of compiled code.
    """
    return F.call_function("fink_now")
