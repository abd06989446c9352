// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import org.apache.avro.AvroTypeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

/**
 * A record written with a schema the plan does not know, re-encoded in the archive's reader
 * schema by Avro's own resolving decoder, for Spark's {@code from_avro} to read.
 *
 * <p>The plan decodes every writer schema it knows (the packaged ones) with one
 * {@code from_avro} each, resolving into the reader schema as it reads. A schema it cannot
 * know in advance (a container's own schema of a version Fink never shipped, a schema from the
 * registry) takes this path instead: read with {@code GenericDatumReader(writer, reader)},
 * written again with the reader schema. It decodes twice, but only the records of such
 * schemas pay it. One instance serves one task thread, so its caches need no lock.
 */
public final class SchemaResolution {
  private String readerText;
  private Schema reader;
  private GenericDatumWriter<Object> writer;
  /** datum readers by writer schema (the parsed schemas are shared, so identity is enough) */
  private final Map<Schema, GenericDatumReader<Object>> readers = new IdentityHashMap<>();
  private BinaryDecoder decoder;
  private BinaryEncoder encoder;
  private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(1 << 16);

  /** The row (payload, error): the record in the reader schema, or why it cannot be. */
  Row resolve(Schema writerSchema, String readerJson, byte[] payload) {
    try {
      return RowFactory.create(reencode(writerSchema, readerJson, payload), null);
    } catch (AvroTypeException e) {
      return RowFactory.create(null, "schema resolution: " + e.getMessage() + where(writerSchema));
    } catch (IOException | RuntimeException e) {
      return RowFactory.create(null, "schema resolution: " + e.getMessage());
    } catch (StackOverflowError e) {
      return RowFactory.create(null, "schema resolution: record nested too deeply");
    }
  }

  /** Which reader fields the writer cannot resolve into, as Avro's compatibility check says. */
  private String where(Schema writerSchema) {
    List<String> fields = new ArrayList<>();
    for (SchemaCompatibility.Incompatibility i :
        SchemaCompatibility.checkReaderWriterCompatibility(reader, writerSchema)
            .getResult()
            .getIncompatibilities()) {
      fields.add(fieldPath(reader, i.getLocation()) + " (" + i.getType() + ")");
      if (fields.size() == 3) {
        break;
      }
    }
    return fields.isEmpty() ? "" : " at " + String.join(", ", fields);
  }

  /** The dotted field names along a compatibility location such as /fields/3/type/fields/1. */
  public static String fieldPath(Schema schema, String location) {
    StringBuilder path = new StringBuilder();
    Schema node = schema;
    String[] parts = location.split("/");
    for (int i = 0; i < parts.length; i++) {
      if ("fields".equals(parts[i]) && i + 1 < parts.length && node != null) {
        Schema record = node;
        while (record != null && record.getType() != Schema.Type.RECORD) {
          record = step(record);
        }
        if (record == null) {
          break;
        }
        Schema.Field f = record.getFields().get(Integer.parseInt(parts[++i]));
        path.append(path.length() == 0 ? "" : ".").append(f.name());
        node = f.schema();
      }
    }
    return path.length() == 0 ? location : path.toString();
  }

  /** From a union, array or map to the type it holds (the first record of a union). */
  private static Schema step(Schema node) {
    switch (node.getType()) {
      case UNION:
        for (Schema branch : node.getTypes()) {
          if (branch.getType() != Schema.Type.NULL) {
            return branch;
          }
        }
        return null;
      case ARRAY:
        return node.getElementType();
      case MAP:
        return node.getValueType();
      default:
        return null;
    }
  }

  private byte[] reencode(Schema writerSchema, String readerJson, byte[] payload)
      throws IOException {
    if (reader == null || !readerJson.equals(readerText)) {
      reader = new Schema.Parser().setValidateDefaults(false).parse(readerJson);
      readerText = readerJson;
      writer = new GenericDatumWriter<>(reader);
      readers.clear();
    }
    if (readers.size() > WriterSchemas.CAPACITY) {
      readers.clear();
    }
    GenericDatumReader<Object> datumReader =
        readers.computeIfAbsent(writerSchema, w -> new GenericDatumReader<>(w, reader));
    decoder = DecoderFactory.get().binaryDecoder(payload, decoder);
    Object record = datumReader.read(null, decoder);
    if (!decoder.isEnd()) {
      throw new IOException("bytes left after the record");
    }
    buffer.reset();
    encoder = EncoderFactory.get().binaryEncoder(buffer, encoder);
    writer.write(record, encoder);
    encoder.flush();
    return buffer.toByteArray();
  }
}
