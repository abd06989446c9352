// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF1;

/**
 * Unwraps a Kafka message that holds one Avro object container file (how ZTF publishes alerts)
 * into the schemaless record bytes that Spark's {@code from_avro} decodes on the JVM.
 *
 * <p>Returns a row (payload, schema_key, error). The fingerprint is the CRC-64-AVRO
 * parsing fingerprint of the embedded writer schema, as 16 hex digits, so the caller can route
 * each message to the reader of its schema version and quarantine unknown ones. Any framing
 * problem (not a container, truncated header or block, bad sync marker, unknown codec) is
 * reported in {@code error} with a null payload: the stream never fails on bad input.
 */
public final class AvroContainerFrame implements UDF1<byte[], Row> {
  private static final long serialVersionUID = 1L;
  private static final byte[] MAGIC = {'O', 'b', 'j', 1};
  private static final byte[] SCHEMA_KEY = "avro.schema".getBytes(StandardCharsets.UTF_8);
  private static final byte[] CODEC_KEY = "avro.codec".getBytes(StandardCharsets.UTF_8);
  /** Parsing a 23 kB schema costs ~0.2 ms; the same text arrives with every message. */
  private static final ConcurrentHashMap<String, String> FINGERPRINTS = new ConcurrentHashMap<>();

  /**
   * The schema bytes last seen by this instance (one per task thread) and their fingerprint:
   * comparing 23 kB of bytes is ~20x cheaper than decoding them to a String and hashing it.
   */
  private transient volatile SeenSchema last;

  /** An immutable pair, swapped as one reference so that threads never mix two schemas. */
  private static final class SeenSchema {
    final byte[] bytes;
    final String fingerprint;

    SeenSchema(byte[] bytes, String fingerprint) {
      this.bytes = bytes;
      this.fingerprint = fingerprint;
    }
  }

  private static final class Cursor {
    final byte[] buf;
    int pos;

    Cursor(byte[] buf, int pos) {
      this.buf = buf;
      this.pos = pos;
    }

    long readLong() {
      long n = 0;
      int shift = 0;
      while (true) {
        if (pos >= buf.length) {
          throw new IllegalArgumentException("truncated varint at byte " + pos);
        }
        int b = buf[pos++] & 0xff;
        n |= (long) (b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
          break;
        }
        shift += 7;
        if (shift > 63) {
          throw new IllegalArgumentException("varint too long at byte " + pos);
        }
      }
      return (n >>> 1) ^ -(n & 1);
    }

    /** Skips a length-prefixed field and returns its start; its end is {@link #pos}. */
    int skipBytes() {
      long len = readLong();
      if (len < 0 || pos + len > buf.length) {
        throw new IllegalArgumentException("truncated field: needs " + len + " bytes at " + pos);
      }
      int start = pos;
      pos += (int) len;
      return start;
    }

    boolean fieldEquals(int start, byte[] expected) {
      return Arrays.equals(buf, start, pos, expected, 0, expected.length);
    }
  }

  @Override
  public Row call(byte[] value) {
    TaskSqlConf.pin(); // from_avro decodes this payload next, in the same task
    if (value == null) {
      return RowFactory.create(null, null, "null message value");
    }
    try {
      Unwrapped u = unwrap(value);
      return RowFactory.create(u.payload, fingerprint(value, u), null);
    } catch (IllegalArgumentException | DataFormatException e) {
      return RowFactory.create(null, null, "avro container: " + e.getMessage());
    } catch (RuntimeException e) {
      return RowFactory.create(null, null, "avro container: " + e);
    }
  }

  /** The record bytes and where the writer schema sits in the message. */
  static final class Unwrapped {
    final byte[] payload;
    final int schemaStart;
    final int schemaEnd;

    Unwrapped(byte[] payload, int schemaStart, int schemaEnd) {
      this.payload = payload;
      this.schemaStart = schemaStart;
      this.schemaEnd = schemaEnd;
    }
  }

  private String fingerprint(byte[] value, Unwrapped u) {
    SeenSchema seen = last;
    if (seen != null
        && Arrays.equals(seen.bytes, 0, seen.bytes.length, value, u.schemaStart, u.schemaEnd)) {
      return seen.fingerprint;
    }
    byte[] schema = Arrays.copyOfRange(value, u.schemaStart, u.schemaEnd);
    String fp = fingerprintOf(new String(schema, StandardCharsets.UTF_8));
    last = new SeenSchema(schema, fp);
    return fp;
  }

  private static String fingerprintOf(String schemaText) {
    return FINGERPRINTS.computeIfAbsent(
        schemaText,
        text -> {
          Schema schema = new Schema.Parser().setValidateDefaults(false).parse(text);
          return String.format("%016x", Long.reverseBytes(SchemaNormalization.parsingFingerprint64(schema)));
        });
  }

  /** Parses the container header and returns the (inflated) bytes of its first record. */
  static Unwrapped unwrap(byte[] value) throws DataFormatException {
    if (value.length < 4 || !Arrays.equals(Arrays.copyOfRange(value, 0, 4), MAGIC)) {
      throw new IllegalArgumentException("not an Avro object container (bad magic)");
    }
    Cursor c = new Cursor(value, 4);
    int schemaStart = -1;
    int schemaEnd = -1;
    String codec = "null";
    while (true) {
      long count = c.readLong();
      if (count == 0) {
        break;
      }
      if (count < 0) {
        count = -count;
        c.readLong(); // block size in bytes, not needed
      }
      for (long i = 0; i < count; i++) {
        int keyStart = c.skipBytes();
        boolean isSchema = c.fieldEquals(keyStart, SCHEMA_KEY);
        boolean isCodec = c.fieldEquals(keyStart, CODEC_KEY);
        int valueStart = c.skipBytes();
        if (isSchema) {
          schemaStart = valueStart;
          schemaEnd = c.pos;
        } else if (isCodec) {
          codec = new String(value, valueStart, c.pos - valueStart, StandardCharsets.UTF_8);
        }
      }
    }
    if (schemaStart < 0) {
      throw new IllegalArgumentException("no avro.schema in the header");
    }
    if (c.pos + 16 > value.length) {
      throw new IllegalArgumentException("truncated before the sync marker");
    }
    byte[] sync = Arrays.copyOfRange(value, c.pos, c.pos + 16);
    c.pos += 16;
    long records = c.readLong();
    if (records < 1) {
      throw new IllegalArgumentException("container holds no record");
    }
    int blockStart = c.skipBytes();
    byte[] block = Arrays.copyOfRange(value, blockStart, c.pos);
    if (c.pos + 16 > value.length
        || !Arrays.equals(Arrays.copyOfRange(value, c.pos, c.pos + 16), sync)) {
      throw new IllegalArgumentException("truncated block (sync marker missing)");
    }
    switch (codec) {
      case "null":
        return new Unwrapped(block, schemaStart, schemaEnd);
      case "deflate":
        return new Unwrapped(inflate(block), schemaStart, schemaEnd);
      default:
        throw new IllegalArgumentException("unsupported codec " + codec);
    }
  }

  private static byte[] inflate(byte[] block) throws DataFormatException {
    Inflater inflater = new Inflater(true);
    inflater.setInput(block);
    ByteArrayOutputStream out = new ByteArrayOutputStream(block.length * 4);
    byte[] buf = new byte[65536];
    while (!inflater.finished()) {
      int n = inflater.inflate(buf);
      if (n == 0 && (inflater.needsInput() || inflater.needsDictionary())) {
        throw new DataFormatException("truncated deflate block");
      }
      out.write(buf, 0, n);
    }
    inflater.end();
    return out.toByteArray();
  }
}
