// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.util.Arrays;
import java.util.Collections;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF1;

/**
 * Unwraps a Kafka message in Confluent wire format (how Rubin publishes alerts): magic byte
 * 0, a 4-byte big-endian schema id, then the schemaless Avro record that Spark's
 * {@code from_avro} decodes.
 *
 * <p>Returns a row (payloads, schema_id, error) like {@link AvroContainerFrame}: the one record
 * of the message, the schema id as an unsigned decimal string, or null payloads and the
 * reason the message goes to quarantine. Bad input never throws.
 */
public final class ConfluentFrame implements UDF1<byte[], Row> {
  private static final long serialVersionUID = 1L;
  private static final int HEADER = 5;

  @Override
  public Row call(byte[] value) {
    TaskSqlConf.pin(); // from_avro decodes this payload next, in the same task
    if (value == null) {
      return RowFactory.create(null, null, "null message value");
    }
    if (value.length < HEADER + 1) {
      return RowFactory.create(null, null, "message shorter than the Confluent header");
    }
    if (value[0] != 0) {
      return RowFactory.create(null, null, "bad magic byte (not Confluent wire format)");
    }
    int id =
        ((value[1] & 0xff) << 24)
            | ((value[2] & 0xff) << 16)
            | ((value[3] & 0xff) << 8)
            | (value[4] & 0xff);
    byte[] payload = Arrays.copyOfRange(value, HEADER, value.length);
    return RowFactory.create(
        Collections.singletonList(payload), Integer.toUnsignedString(id), null);
  }
}
