// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.lang.reflect.Method;

import org.apache.spark.TaskContext;
import org.apache.spark.util.TaskCompletionListener;
import org.apache.spark.sql.internal.ReadOnlySQLConf;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.internal.SQLConf$;

/**
 * One SQL configuration per Spark task, instead of one per {@code SQLConf.get} call.
 *
 * <p>Inside a task, Spark 4.2's {@code SQLConf.get} builds a new {@link ReadOnlySQLConf} from
 * the task's properties on every call unless the thread has one set, and 4.2 calls it for
 * every field of every nested row that {@code from_avro} builds (through
 * {@code SpecificInternalRow} and {@code TypeOps}): 12-18% of stream2raw's executor time
 * (JFR, 60,000 ZTF alerts), plus one read of {@code spark.sql.types.framework.enabled} per
 * field (~1 us each: task properties, defaults, parsing). {@link #pin()} sets, for the rest
 * of the current task, the conf that {@code SQLConf.get} would have built (the task's
 * properties do not change while it runs) with that one setting read once, and removes it
 * when the task completes, so the executor thread is left as it was.
 *
 * <p>Spark keeps that thread-local private; it is reached by reflection once. Should a Spark
 * version rename it, {@link #pin()} does nothing and decoding is only slower.
 */
final class TaskSqlConf extends ReadOnlySQLConf {
  private static final long serialVersionUID = 1L;
  private static final ThreadLocal<SQLConf> EXISTING = lookup();

  /** Read once: Spark asks for it for every field of every nested row. */
  private final boolean typesFramework;

  private TaskSqlConf(TaskContext task) {
    super(task);
    typesFramework = super.typesFrameworkEnabled();
  }

  @Override
  public boolean typesFrameworkEnabled() {
    return typesFramework;
  }

  @SuppressWarnings("unchecked")
  private static ThreadLocal<SQLConf> lookup() {
    try {
      Method existing = SQLConf$.class.getDeclaredMethod("existingConf");
      existing.setAccessible(true);
      return (ThreadLocal<SQLConf>) existing.invoke(SQLConf$.MODULE$);
    } catch (ReflectiveOperationException | RuntimeException e) {
      return null;
    }
  }

  /** Pins the current task's SQL conf to this thread until the task completes. */
  static void pin() {
    if (EXISTING == null || EXISTING.get() != null) {
      return;
    }
    TaskContext task = TaskContext.get();
    if (task == null) {
      return;
    }
    EXISTING.set(new TaskSqlConf(task));
    task.addTaskCompletionListener((TaskCompletionListener) done -> EXISTING.remove());
  }
}
