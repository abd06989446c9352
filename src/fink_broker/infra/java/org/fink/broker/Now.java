// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.time.Instant;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF0;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;

/**
 * {@code fink_now()}: the time at which a row is processed, read on the executor.
 *
 * <p>Spark's {@code current_timestamp()} is folded into a literal when a micro-batch is
 * planned, and a timestamp literal is written into the generated Java code, so every
 * micro-batch compiled its projections anew (~0.1 s with Janino, then cold JIT) instead of
 * reusing them. This function is nondeterministic, hence never folded: the code is the same
 * for every batch, and each alert gets the time it was actually processed.
 */
public final class Now implements UDF0<Instant> {
  private static final long serialVersionUID = 1L;
  public static final String NAME = "fink_now";

  @Override
  public Instant call() {
    return Instant.now();
  }

  /** Registers {@code fink_now()} in the session, as a nondeterministic function. */
  public static void register(SparkSession spark) {
    UserDefinedFunction now = functions.udf(new Now(), DataTypes.TimestampType).asNondeterministic();
    spark.udf().register(NAME, now);
  }
}
