// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.execution.SQLExecution;
import org.apache.spark.sql.execution.datasources.parquet.ParquetFileFormat;
import org.apache.spark.sql.execution.streaming.sinks.FileStreamSink;
import org.apache.spark.sql.execution.streaming.sinks.FileStreamSinkLog;
import org.apache.spark.sql.execution.streaming.sinks.SinkFileStatus;

/**
 * Lets one {@code foreachBatch} micro-batch write to several Parquet folders exactly once.
 *
 * <p>Each folder is driven by Spark's own streaming file sink, which records the micro-batch
 * ids it has committed in {@code <folder>/_spark_metadata}. A batch replayed after a crash
 * (same id, same Kafka offsets, from the query's write-ahead log) is skipped by a folder that
 * already committed it, so a restart neither loses nor duplicates alerts, and readers that
 * go through {@code _spark_metadata} never see files of an uncommitted batch. This is what
 * {@code writeStream.format("parquet")} does for a single folder; stream2raw needs two (the
 * raw archive and the quarantine) fed from one decode.
 */
public final class ExactlyOnceParquet {
  private ExactlyOnceParquet() {}

  /**
   * Whether the Parquet folder {@code path} has already committed micro-batch {@code batchId}
   * (its sink would skip a write of that batch). A caller that learns something from the
   * write itself (row counts observed during it) must know when no write will happen.
   */
  public static boolean committed(SparkSession spark, String path, long batchId)
      throws java.io.IOException {
    Path base = new Path(path);
    FileSystem fs = base.getFileSystem(spark.sessionState().newHadoopConf());
    if (!fs.exists(new Path(base, FileStreamSink.metadataDir()))) {
      return false;
    }
    scala.Option<Object> latest = sinkLog(spark, fs, base).getLatestBatchId();
    return latest.isDefined() && (Long) latest.get() >= batchId;
  }

  /**
   * Commits micro-batch {@code batchId} of the folder {@code path} with no file, unless it
   * committed already: what the sink records for an empty batch, without the Spark job that
   * would write nothing (~0.25 s per micro-batch on 2 cores). The log needs every batch id:
   * its compaction batches merge the entries of the ten before them.
   */
  public static void commitEmpty(SparkSession spark, String path, long batchId)
      throws java.io.IOException {
    Path base = new Path(path);
    FileSystem fs = base.getFileSystem(spark.sessionState().newHadoopConf());
    FileStreamSinkLog log = sinkLog(spark, fs, base);
    scala.Option<Object> latest = log.getLatestBatchId();
    if (!latest.isDefined() || (Long) latest.get() < batchId) {
      log.add(batchId, new SinkFileStatus[0]);
    }
  }

  private static FileStreamSinkLog sinkLog(SparkSession spark, FileSystem fs, Path base) {
    Path logPath = FileStreamSink.getMetadataLogPath(fs, base, spark.sessionState().conf());
    return new FileStreamSinkLog(
        FileStreamSinkLog.VERSION(),
        spark,
        logPath.toString(),
        FileStreamSinkLog.$lessinit$greater$default$4());
  }

  /**
   * Writes {@code data} as batch {@code batchId} of the Parquet folder {@code path}.
   *
   * <p>{@code writeOptions} holds (key, value) pairs, flattened, for the file writer and its
   * Hadoop configuration, such as Parquet's per-column {@code parquet.enable.dictionary#col}.
   */
  public static void addBatch(
      SparkSession spark,
      String path,
      String[] partitionColumns,
      long batchId,
      Dataset<Row> data,
      String[] writeOptions) {
    if (writeOptions.length % 2 != 0) {
      throw new IllegalArgumentException("writeOptions must hold (key, value) pairs");
    }
    // A new sink per call (cheap: it opens the commit log) rather than a cache: the log's
    // state must come from the folder as it is now, even if an operator removed it.
    Map<String, String> options = new HashMap<>();
    for (int i = 0; i < writeOptions.length; i += 2) {
      options.put(writeOptions[i], writeOptions[i + 1]);
    }
    options.put("path", path);
    FileStreamSink sink =
        new FileStreamSink(
            spark,
            path,
            new ParquetFileFormat(),
            scala.jdk.javaapi.CollectionConverters.asScala(Arrays.asList(partitionColumns)).toList(),
            scala.collection.immutable.Map.from(
                scala.jdk.javaapi.CollectionConverters.asScala(options)));
    // The sink writes the plan directly, inside the micro-batch's own SQL execution; as an
    // execution of its own, the write reports its observed metrics (Dataset.observe) to
    // their Observation, so one pass can write the alerts and count them.
    org.apache.spark.sql.execution.QueryExecution qe =
        ((org.apache.spark.sql.classic.Dataset<Row>) data).queryExecution();
    SQLExecution.withNewExecutionId(
        qe,
        scala.Option.apply("fink parquet batch " + batchId + " " + path),
        () -> {
          sink.addBatch(batchId, data);
          return scala.runtime.BoxedUnit.UNIT;
        });
  }
}
