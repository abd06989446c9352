// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.execution.streaming.sinks.FileStreamSink;
import org.apache.spark.sql.execution.streaming.sinks.FileStreamSinkLog;

/**
 * What a streaming query's checkpoint and its Parquet sink each say they have committed, read
 * through Hadoop's file system (local disk, HDFS or S3 alike), so that a service can refuse to
 * start when the two disagree instead of skipping batches the sink believes it holds.
 */
public final class SinkState {
  private SinkState() {}

  private static FileSystem fs(SparkSession spark, Path path) throws IOException {
    return path.getFileSystem(spark.sessionState().newHadoopConf());
  }

  /** The latest micro-batch id the Parquet folder {@code path} committed, or -1. */
  public static long latestSinkBatch(SparkSession spark, String path) throws IOException {
    Path base = new Path(path);
    FileSystem fs = fs(spark, base);
    if (!fs.exists(new Path(base, FileStreamSink.metadataDir()))) {
      return -1L;
    }
    Path logPath = FileStreamSink.getMetadataLogPath(fs, base, spark.sessionState().conf());
    FileStreamSinkLog log =
        new FileStreamSinkLog(
            FileStreamSinkLog.VERSION(),
            spark,
            logPath.toString(),
            FileStreamSinkLog.$lessinit$greater$default$4());
    scala.Option<Object> latest = log.getLatestBatchId();
    return latest.isDefined() ? (Long) latest.get() : -1L;
  }

  /**
   * The latest micro-batch id the query's checkpoint {@code path} planned, or -1: the largest
   * numbered file of its {@code offsets} log, written before a batch runs (the layout every
   * Spark version writes; the log's own class moved between packages across versions). A sink
   * can never hold a batch its query did not plan.
   */
  public static long latestCheckpointBatch(SparkSession spark, String path) throws IOException {
    Path commits = new Path(path, "offsets");
    FileSystem fs = fs(spark, commits);
    long latest = -1L;
    if (!fs.exists(commits)) {
      return latest;
    }
    for (FileStatus status : fs.listStatus(commits)) {
      String name = status.getPath().getName();
      if (status.isFile() && name.matches("[0-9]+")) {
        latest = Math.max(latest, Long.parseLong(name));
      }
    }
    return latest;
  }

  /** Names of the partition folders ({@code night=20240101}) directly below {@code path}. */
  public static String[] partitions(SparkSession spark, String path) throws IOException {
    Path base = new Path(path);
    FileSystem fs = fs(spark, base);
    List<String> out = new ArrayList<>();
    if (fs.exists(base)) {
      for (FileStatus status : fs.listStatus(base)) {
        String name = status.getPath().getName();
        if (status.isDirectory() && name.contains("=")) {
          out.add(name);
        }
      }
    }
    return out.toArray(new String[0]);
  }

  /** The text of the file {@code path}, or null when it does not exist. */
  public static String readText(SparkSession spark, String path) throws IOException {
    Path file = new Path(path);
    FileSystem fs = fs(spark, file);
    if (!fs.exists(file)) {
      return null;
    }
    try (InputStream in = fs.open(file)) {
      ByteArrayOutputStream buffer = new ByteArrayOutputStream();
      in.transferTo(buffer);
      return buffer.toString(StandardCharsets.UTF_8);
    }
  }

  /** Writes {@code text} to {@code path}, replacing it; parent folders are created. */
  public static void writeText(SparkSession spark, String path, String text) throws IOException {
    Path file = new Path(path);
    try (OutputStream out = fs(spark, file).create(file, true)) {
      out.write(text.getBytes(StandardCharsets.UTF_8));
    }
  }

  /** Renames {@code path} to {@code target} if it exists; false when there was nothing. */
  public static boolean moveAside(SparkSession spark, String path, String target)
      throws IOException {
    Path from = new Path(path);
    FileSystem fs = fs(spark, from);
    if (!fs.exists(from)) {
      return false;
    }
    if (!fs.rename(from, new Path(target))) {
      throw new IOException("could not rename " + path + " to " + target);
    }
    return true;
  }
}
