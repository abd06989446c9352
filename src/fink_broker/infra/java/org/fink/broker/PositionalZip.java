// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

import org.apache.spark.Partition;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.function.FlatMapFunction2;
import org.apache.spark.rdd.CoalescedRDDPartition;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.JoinedRow;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.optimizer.ReplaceExpressions$;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.Project;
import org.apache.spark.sql.execution.CoalesceExec;
import org.apache.spark.sql.execution.ColumnarToRowExec;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.WholeStageCodegenExec;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.vectorized.ColumnarBatch;
import org.apache.spark.util.LongAccumulator;

import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag$;

/**
 * Joins the science modules' values to their alerts by position, in the scan that reads the
 * alerts for the write.
 *
 * <p>raw2science reads a micro-batch's files twice: the whole alerts (cutouts included) for the
 * archive, and the modules' few inputs for the Python UDF, so that the whole alerts never queue
 * in the UDF's row buffer. Joining the values back by the alerts' Kafka coordinates cost a
 * Spark job of its own (the broadcast) and a hash join: about a third of what the modules added
 * to a bounded run of 20,000 Rubin alerts on 2 cores. Both reads scan the same files in the same
 * splits, and the modules return one row per input row, so the values of partition {@code i}
 * are those of the alerts of partition {@code i} that pass the quality cuts, in the same order.
 * The zip walks both in step, in one job, and checks each pairing on the Kafka coordinates: a
 * misaligned pair fails the task loudly instead of writing an alert with another's values.
 *
 * <p>The alerts that fail a cut are dropped here, after being counted (per cut, and in and
 * kept) into accumulators: an {@code observe} above the zip would make Spark copy every whole
 * alert once more, and one below it, inside an RDD, would never report.
 */
public final class PositionalZip {
  private PositionalZip() {}

  /** The zipped alerts and, once they are written, the counts of the cuts. */
  public static final class Zipped {
    private final Dataset<Row> frame;
    private final LongAccumulator[] counters;
    private final boolean columnar;

    Zipped(Dataset<Row> frame, LongAccumulator[] counters, boolean columnar) {
      this.frame = frame;
      this.counters = counters;
      this.columnar = columnar;
    }

    /** The alerts that pass every cut, with the values' columns after their own. */
    public Dataset<Row> frame() {
      return frame;
    }

    /**
     * Rows in, rows kept, then the rows each cut removed (a null flag counts for neither),
     * summed over the tasks that succeeded: read them after the frame is written, once.
     */
    public long[] counts() {
      long[] out = new long[counters.length];
      for (int i = 0; i < counters.length; i++) {
        out[i] = counters[i].value();
      }
      return out;
    }

    /** Whether the alerts are read from the scan's column batches without a row copy. */
    public boolean columnar() {
      return columnar;
    }
  }

  /**
   * Zips {@code values} to {@code alerts}.
   *
   * @param alerts the alerts: one read of the files, possibly coalesced
   * @param flags {@code alerts.select(...)} of one boolean per cut (true: passes it), then one
   *     that says whether the alert passes every cut
   * @param values the modules' values of the alerts that pass every cut, from a read of the same
   *     files with the same coalescing, in scan order, ending with {@code keys.length} columns
   *     equal to the alerts' {@code keys}
   * @param keys the names of the alerts' columns that identify an alert (Kafka coordinates)
   */
  public static Zipped zip(
      Dataset<Row> alerts, Dataset<Row> flags, Dataset<Row> values, String[] keys) {
    org.apache.spark.sql.classic.Dataset<Row> left =
        (org.apache.spark.sql.classic.Dataset<Row>) alerts;
    SparkPlan plan = left.queryExecution().executedPlan();
    List<Attribute> output = CollectionConverters.asJava(plan.output());

    int[] leftKeys = new int[keys.length];
    for (int k = 0; k < keys.length; k++) {
      leftKeys[k] = ordinal(output, keys[k]);
    }
    StructType valueSchema = values.schema();
    int width = valueSchema.fields().length - keys.length;
    DataType[] keyTypes = new DataType[keys.length];
    for (int k = 0; k < keys.length; k++) {
      keyTypes[k] = output.get(leftKeys[k]).dataType();
      if (width < 0 || !keyTypes[k].sameType(valueSchema.fields()[width + k].dataType())) {
        throw new IllegalArgumentException(
            "values must end with the alert keys " + Arrays.toString(keys) + ": " + valueSchema);
      }
    }

    RDD<?> rows = columnarRows(plan);
    boolean columnar = rows != null;
    if (!columnar) {
      rows = plan.execute();
    }
    RDD<InternalRow> valueRows =
        ((org.apache.spark.sql.classic.Dataset<Row>) values).queryExecution().toRdd();
    checkAligned(rows, valueRows);

    List<Expression> flagExprs = flagExpressions(flags, left);
    LongAccumulator[] counters = new LongAccumulator[flagExprs.size() + 1];
    for (int i = 0; i < counters.length; i++) {
      counters[i] = left.sparkSession().sparkContext().longAccumulator();
    }
    Walk walk =
        new Walk(
            columnar,
            CollectionConverters.asScala(flagExprs).toList(),
            plan.output(),
            leftKeys,
            keyTypes,
            width,
            counters);
    @SuppressWarnings("unchecked")
    JavaRDD<Object> leftJava =
        new JavaRDD<>((RDD<Object>) rows, ClassTag$.MODULE$.apply(Object.class));
    JavaRDD<InternalRow> rightJava =
        new JavaRDD<>(valueRows, ClassTag$.MODULE$.apply(InternalRow.class));
    RDD<InternalRow> zipped = leftJava.zipPartitions(rightJava, walk).rdd();

    List<StructField> fields = new ArrayList<>(Arrays.asList(alerts.schema().fields()));
    fields.addAll(Arrays.asList(valueSchema.fields()).subList(0, width));
    StructType schema = new StructType(fields.toArray(new StructField[0]));
    Dataset<Row> frame = left.sparkSession().internalCreateDataFrame(zipped, schema, false);
    return new Zipped(frame, counters, columnar);
  }

  private static int ordinal(List<Attribute> output, String name) {
    for (int i = 0; i < output.size(); i++) {
      if (output.get(i).name().equals(name)) {
        return i;
      }
    }
    throw new IllegalArgumentException("no alert column " + name + " in " + output);
  }

  /**
   * The scan's column batches when the alerts' plan is a columnar file scan turned into rows
   * (possibly coalesced), else null. Read as batches, the alerts reach the write with one copy
   * into Spark's row format, as in a plan without the zip; the plan's own rows would cost
   * another (its {@code ColumnarToRow} makes rows, and the zip's output is made into rows again).
   */
  private static RDD<?> columnarRows(SparkPlan plan) {
    int coalesce = -1;
    SparkPlan node = plan;
    if (node instanceof CoalesceExec) {
      coalesce = ((CoalesceExec) node).numPartitions();
      node = ((CoalesceExec) node).child();
    }
    if (node instanceof WholeStageCodegenExec) {
      node = ((WholeStageCodegenExec) node).child();
    }
    if (!(node instanceof ColumnarToRowExec)) {
      return null;
    }
    SparkPlan scan = ((ColumnarToRowExec) node).child();
    if (!scan.supportsColumnar() || !scan.output().equals(plan.output())) {
      return null;
    }
    RDD<ColumnarBatch> batches = scan.executeColumnar();
    // the same coalescing as CoalesceExec's, so the values' read, coalesced by Spark, matches
    return coalesce > 0
        ? batches.coalesce(coalesce, false, scala.Option.empty(), null)
        : batches;
  }

  /** Both sides must hold the same partitions, made of the same scan splits when coalesced. */
  private static void checkAligned(RDD<?> alerts, RDD<?> values) {
    Partition[] a = alerts.partitions();
    Partition[] v = values.partitions();
    if (a.length != v.length) {
      throw new IllegalArgumentException(
          "alerts in " + a.length + " partitions, their values in " + v.length);
    }
    for (int i = 0; i < a.length; i++) {
      if (a[i] instanceof CoalescedRDDPartition && v[i] instanceof CoalescedRDDPartition) {
        int[] splitsA = ((CoalescedRDDPartition) a[i]).parentsIndices();
        int[] splitsV = ((CoalescedRDDPartition) v[i]).parentsIndices();
        if (!Arrays.equals(splitsA, splitsV)) {
          throw new IllegalStateException(
              "partition " + i + " coalesces splits " + Arrays.toString(splitsA)
                  + " of the alerts, " + Arrays.toString(splitsV) + " of their values");
        }
      }
    }
  }

  /** The flag expressions of {@code flags}, a projection of {@code alerts}, ready to evaluate. */
  private static List<Expression> flagExpressions(
      Dataset<Row> flags, org.apache.spark.sql.classic.Dataset<Row> alerts) {
    LogicalPlan analyzed =
        ((org.apache.spark.sql.classic.Dataset<Row>) flags).queryExecution().analyzed();
    // functions that the optimizer replaces (nvl, ...) cannot be evaluated as analyzed
    LogicalPlan replaced = ReplaceExpressions$.MODULE$.apply(analyzed);
    if (!(replaced instanceof Project)
        || !((Project) replaced).child().sameResult(alerts.queryExecution().analyzed())) {
      throw new IllegalArgumentException("flags must be a select over the alerts: " + analyzed);
    }
    List<Expression> out = new ArrayList<>();
    for (NamedExpression named :
        CollectionConverters.asJava(((Project) replaced).projectList())) {
      Expression e = (Expression) named;
      if (!e.dataType().sameType(org.apache.spark.sql.types.DataTypes.BooleanType)) {
        throw new IllegalArgumentException("flag " + named.name() + " is not a boolean");
      }
      if (!e.deterministic()) {
        // the values' read evaluates the cuts again: both must keep the same rows
        throw new IllegalArgumentException("flag " + named.name() + " is not deterministic");
      }
      out.add(e);
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("flags must end with the one of every cut");
    }
    return out;
  }

  /** The per-partition walk; serialisable, so Spark ships it to the tasks. */
  private static final class Walk
      implements FlatMapFunction2<Iterator<Object>, Iterator<InternalRow>, InternalRow>,
          Serializable {
    private static final long serialVersionUID = 1L;

    private final boolean columnar;
    private final scala.collection.immutable.Seq<Expression> flags;
    private final scala.collection.immutable.Seq<Attribute> input;
    private final int[] keys;
    private final DataType[] keyTypes;
    private final int width;
    private final LongAccumulator[] counters;

    Walk(
        boolean columnar,
        scala.collection.immutable.Seq<Expression> flags,
        scala.collection.immutable.Seq<Attribute> input,
        int[] keys,
        DataType[] keyTypes,
        int width,
        LongAccumulator[] counters) {
      this.columnar = columnar;
      this.flags = flags;
      this.input = input;
      this.keys = keys;
      this.keyTypes = keyTypes;
      this.width = width;
      this.counters = counters;
    }

    @Override
    public Iterator<InternalRow> call(Iterator<Object> alerts, Iterator<InternalRow> values) {
      Iterator<InternalRow> rows = columnar ? new BatchRows(alerts) : castRows(alerts);
      return new Step(this, rows, values);
    }

    @SuppressWarnings("unchecked")
    private static Iterator<InternalRow> castRows(Iterator<Object> rows) {
      return (Iterator<InternalRow>) (Iterator<?>) rows;
    }
  }

  /** The rows of a partition's column batches; each row is a view, valid until the next. */
  private static final class BatchRows implements Iterator<InternalRow> {
    private final Iterator<Object> batches;
    private Iterator<InternalRow> current = Collections.emptyIterator();

    BatchRows(Iterator<Object> batches) {
      this.batches = batches;
    }

    @Override
    public boolean hasNext() {
      while (!current.hasNext() && batches.hasNext()) {
        current = ((ColumnarBatch) batches.next()).rowIterator();
      }
      return current.hasNext();
    }

    @Override
    public InternalRow next() {
      if (!hasNext()) {
        throw new NoSuchElementException();
      }
      return current.next();
    }
  }

  /**
   * Alerts that pass every cut, each joined to the next values row. Both sides advance only
   * when the consumer asks for the next row: Spark reuses the row objects of both.
   */
  private static final class Step implements Iterator<InternalRow> {
    private final Walk walk;
    private final Iterator<InternalRow> alerts;
    private final Iterator<InternalRow> values;
    private final UnsafeProjection flags;
    private final JoinedRow joined = new JoinedRow();
    private final long[] counts;
    private final int cuts;
    private boolean ready;
    private boolean done;
    private InternalRow out;

    Step(Walk walk, Iterator<InternalRow> alerts, Iterator<InternalRow> values) {
      this.walk = walk;
      this.alerts = alerts;
      this.values = values;
      this.flags = UnsafeProjection.create(walk.flags, walk.input);
      this.cuts = walk.flags.size() - 1;
      this.counts = new long[walk.counters.length];
    }

    @Override
    public boolean hasNext() {
      if (!ready) {
        advance();
      }
      return out != null;
    }

    @Override
    public InternalRow next() {
      if (!hasNext()) {
        throw new NoSuchElementException();
      }
      ready = false;
      return out;
    }

    private void advance() {
      ready = true;
      out = null;
      if (done) {
        return;
      }
      while (alerts.hasNext()) {
        InternalRow alert = alerts.next();
        InternalRow flag = flags.apply(alert);
        counts[0]++;
        for (int c = 0; c < cuts; c++) {
          if (!flag.isNullAt(c) && !flag.getBoolean(c)) {
            counts[2 + c]++;
          }
        }
        if (flag.isNullAt(cuts) || !flag.getBoolean(cuts)) {
          continue;
        }
        counts[1]++;
        if (!values.hasNext()) {
          throw new IllegalStateException("an alert that passes the cuts has no values row");
        }
        InternalRow value = values.next();
        for (int k = 0; k < walk.keys.length; k++) {
          Object mine = alert.get(walk.keys[k], walk.keyTypes[k]);
          Object theirs = value.get(walk.width + k, walk.keyTypes[k]);
          if (mine == null || !mine.equals(theirs)) {
            throw new IllegalStateException(
                "values of alert key " + mine + " met values of " + theirs + ": misaligned");
          }
        }
        out = joined.apply(alert, value);
        return;
      }
      done = true;
      if (values.hasNext()) {
        throw new IllegalStateException("values rows left over after the last alert");
      }
      for (int i = 0; i < counts.length; i++) {
        walk.counters[i].add(counts[i]);
      }
    }
  }
}
