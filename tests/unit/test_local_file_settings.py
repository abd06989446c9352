"""Spark settings for local files, per deployment: no forked processes, plain Parquet reads."""

from __future__ import annotations

from pathlib import Path

from fink_broker.config import load_settings
from fink_broker.engine.session import FILE_SYSTEM_CHECKPOINTS, local_file_settings

JAR = Path("/cache/fink-jvm/fink-jvm-0123.jar")


def settings_for(master: str, root: str):
    return load_settings(None, env={}, overrides={"spark.master": master, "paths.root": root})


def test_laptop_gets_nio_files_and_file_system_logs():
    out = local_file_settings(settings_for("local[2]", "/data/fink"), JAR)
    assert out == {
        "spark.driver.extraClassPath": str(JAR),
        "spark.hadoop.fs.file.impl": "org.fink.broker.NioLocalFileSystem",
        "spark.sql.streaming.checkpointFileManagerClass": FILE_SYSTEM_CHECKPOINTS,
        "spark.hadoop.parquet.hadoop.vectored.io.enabled": "false",
    }
    uri = local_file_settings(settings_for("local[2]", "file:///data/fink"), JAR)
    assert uri == out


def test_cluster_executors_keep_hadoop_s_local_file_system():
    """Executors of a cluster may not have Fink's jar at the driver's path."""
    out = local_file_settings(settings_for("spark://head:7077", "/shared/fink"), JAR)
    assert out == {
        "spark.sql.streaming.checkpointFileManagerClass": FILE_SYSTEM_CHECKPOINTS,
        "spark.hadoop.parquet.hadoop.vectored.io.enabled": "false",
    }


def test_cluster_file_systems_keep_spark_s_checkpoint_manager():
    """HDFS's FileContext rename is atomic and forks nothing: Spark's default stays, and so
    do the connectors' own vectored Parquet reads."""
    for root in ("hdfs://nn:8020/fink", "s3a://bucket/fink"):
        out = local_file_settings(settings_for("spark://head:7077", root), JAR)
        assert out == {}
    assert "spark.sql.streaming.checkpointFileManagerClass" not in local_file_settings(
        settings_for("local[2]", "hdfs://nn:8020/fink"), JAR
    )


def test_no_fink_jar_no_nio_file_system():
    out = local_file_settings(settings_for("local[2]", "/data/fink"), None)
    assert "spark.hadoop.fs.file.impl" not in out
