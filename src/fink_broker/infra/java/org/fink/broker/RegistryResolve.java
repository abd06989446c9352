// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import org.apache.avro.Schema;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF4;

/**
 * {@code fink_registry_resolve(payload, schema_id, reader_json, registry_json)}: a Confluent
 * wire record whose schema id the packaged schemas do not know, resolved with the writer
 * schema of the registry (see {@link SchemaRegistry}) into the reader schema (see
 * {@link SchemaResolution}). Returns (payload, error); the error says why the alert goes to
 * quarantine, e.g. that the registry is down.
 */
public final class RegistryResolve implements UDF4<byte[], String, String, String, Row> {
  private static final long serialVersionUID = 1L;
  private transient SchemaResolution resolution;

  @Override
  public Row call(byte[] payload, String schemaId, String readerJson, String registryJson) {
    if (payload == null || schemaId == null || readerJson == null || registryJson == null) {
      return RowFactory.create(null, "nothing to resolve");
    }
    Schema writer;
    try {
      writer = SchemaRegistry.of(registryJson).schema(schemaId);
    } catch (SchemaRegistry.UnknownSchemaException e) {
      return RowFactory.create(null, "unknown schema " + schemaId + " (" + e.getMessage() + ")");
    } catch (java.io.IOException | RuntimeException e) {
      return RowFactory.create(null, "schema registry configuration: " + e.getMessage());
    }
    if (resolution == null) {
      resolution = new SchemaResolution();
    }
    return resolution.resolve(writer, readerJson, payload);
  }
}
