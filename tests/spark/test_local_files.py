"""Local files written by Spark: permissions through java.nio, logs through FileSystem."""

from __future__ import annotations

import os
import stat

import pytest

from fink_broker.engine.session import FILE_SYSTEM_CHECKPOINTS


def local_fs(spark):
    """Hadoop's file system for ``file://`` in the shared session."""
    jvm = spark.sparkContext._jvm
    conf = spark._jsparkSession.sessionState().newHadoopConf()
    return jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), conf), jvm


def test_local_file_system_is_fink_s(spark):
    fs, _ = local_fs(spark)
    assert fs.getClass().getName() == "org.fink.broker.NioLocalFileSystem"
    assert spark.conf.get("spark.sql.streaming.checkpointFileManagerClass") == (
        FILE_SYSTEM_CHECKPOINTS
    )


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755, 0o704, 0o000])
def test_set_permission_sets_the_mode(spark, tmp_path, mode):
    fs, jvm = local_fs(spark)
    target = tmp_path / "file"
    target.write_bytes(b"x")
    fs.setPermission(
        jvm.org.apache.hadoop.fs.Path(str(target)),
        jvm.org.apache.hadoop.fs.permission.FsPermission(mode),
    )
    assert stat.S_IMODE(os.stat(target).st_mode) == mode


def test_created_files_get_the_umask_mode(spark, tmp_path):
    """A Hadoop create applies the umask (022 by default) to 0666, as Hadoop's own does;
    its checksum file too."""
    fs, jvm = local_fs(spark)
    target = tmp_path / "created"
    out = fs.create(jvm.org.apache.hadoop.fs.Path(str(target)), True)
    out.write(b"abc")
    out.close()
    umask = int(fs.getConf().get("fs.permissions.umask-mode", "022"), 8)
    assert target.read_bytes() == b"abc"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~umask
    crc = tmp_path / ".created.crc"
    assert crc.exists()
    assert stat.S_IMODE(os.stat(crc).st_mode) == 0o666 & ~umask
