// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;

import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system ({@code file://}), setting permissions through {@code java.nio}
 * instead of a {@code chmod} process.
 *
 * <p>Without Hadoop's native library, which neither PySpark nor Maven Central ships, Hadoop
 * forks {@code chmod} for every file it creates on a local disk: each Parquet file, each
 * checkpoint and commit-log entry. In the live laptop pipeline (three streaming queries at
 * 250 alerts/s) the Spark JVM started 34 processes a second (JFR {@code jdk.ProcessStart}),
 * each a spawn, a reaper thread and a wait on the micro-batch's critical path. The
 * permission set is the same; only a sticky bit, which {@code java.nio} cannot set, still
 * goes through Hadoop's own way, as does a file system without POSIX attributes.
 */
public final class NioLocalFileSystem extends LocalFileSystem {
  public NioLocalFileSystem() {
    super(new NioRawLocalFileSystem());
  }

  /** The raw (checksum-less) layer under {@link NioLocalFileSystem}. */
  static final class NioRawLocalFileSystem extends RawLocalFileSystem {
    @Override
    public void setPermission(Path path, FsPermission permission) throws IOException {
      if (permission.getStickyBit()) {
        super.setPermission(path, permission);
        return;
      }
      try {
        Files.setPosixFilePermissions(
            pathToFile(path).toPath(), PosixFilePermissions.fromString(permission.toString()));
      } catch (UnsupportedOperationException notPosix) {
        super.setPermission(path, permission);
      }
    }
  }
}
