// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF3;

/**
 * {@code fink_container_resolve(value, payload, reader_json)}: one record of a container whose
 * writer schema the plan does not know, re-encoded in the reader schema (see
 * {@link SchemaResolution}). The writer schema is the container's own (ZTF alerts carry it):
 * schema on read, so a version the broker never shipped still flows. Returns (payload, error).
 */
public final class ContainerResolve implements UDF3<byte[], byte[], String, Row> {
  private static final long serialVersionUID = 1L;
  private transient SchemaResolution resolution;
  private transient volatile WriterSchemas.Seen last;

  @Override
  public Row call(byte[] value, byte[] payload, String readerJson) {
    if (value == null || payload == null || readerJson == null) {
      return RowFactory.create(null, "nothing to resolve");
    }
    if (resolution == null) {
      resolution = new SchemaResolution();
    }
    WriterSchemas.Seen writer;
    try {
      AvroContainerFrame.Header h = AvroContainerFrame.header(value);
      writer = last;
      if (writer == null || !writer.sameBytes(value, h.schemaStart, h.schemaEnd)) {
        writer =
            WriterSchemas.parse(java.util.Arrays.copyOfRange(value, h.schemaStart, h.schemaEnd));
        last = writer;
      }
    } catch (RuntimeException | StackOverflowError e) {
      return RowFactory.create(null, "writer schema: " + e.getMessage());
    }
    return resolution.resolve(writer.schema, readerJson, payload);
  }
}
