// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;

/**
 * Unwraps a Kafka message that holds an Avro object container file (how ZTF publishes alerts)
 * into the schemaless bytes of each of its records, which Spark's {@code from_avro} decodes on
 * the JVM.
 *
 * <p>{@code fink_avro_container(value, max_bytes)} returns a row (payloads, schema_key, error):
 * the records of every block in order (ZTF sends one, but a container may hold several, and
 * each is an alert), and the CRC-64-AVRO parsing fingerprint of the embedded writer schema, as
 * 16 hex digits, so the caller can route each message to the reader of its schema version.
 * Any problem (not a container, truncated header or block, bad sync marker, unknown codec, a
 * block that would inflate beyond {@code max_bytes}, a record that overruns its block) is
 * reported in {@code error} with null payloads: the stream never fails on bad input, and no
 * memory beyond {@code max_bytes} is taken for a message before it is refused.
 */
public final class AvroContainerFrame implements UDF2<byte[], Integer, Row> {
  private static final long serialVersionUID = 1L;
  private static final byte[] MAGIC = {'O', 'b', 'j', 1};
  private static final byte[] SCHEMA_KEY = "avro.schema".getBytes(StandardCharsets.UTF_8);
  private static final byte[] CODEC_KEY = "avro.codec".getBytes(StandardCharsets.UTF_8);

  /**
   * The schema bytes last seen by this instance (one per task thread) and what they parse to:
   * comparing 23 kB of bytes is ~20x cheaper than decoding them to a String and hashing it.
   */
  private transient volatile WriterSchemas.Seen last;

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
      if (len < 0 || len > buf.length - pos) {
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
  public Row call(byte[] value, Integer maxBytes) {
    TaskSqlConf.pin(); // from_avro decodes these payloads next, in the same task
    if (value == null) {
      return RowFactory.create(null, null, "null message value");
    }
    try {
      Header h = header(value);
      WriterSchemas.Seen writer = writerOf(value, h);
      return RowFactory.create(records(value, h, writer, maxBytes), writer.fingerprint, null);
    } catch (IllegalArgumentException | DataFormatException | IOException e) {
      return RowFactory.create(null, null, "avro container: " + e.getMessage());
    } catch (RuntimeException | StackOverflowError e) {
      return RowFactory.create(null, null, "avro container: " + e);
    }
  }

  /** What the container header says, and where its first block starts. */
  static final class Header {
    final int schemaStart;
    final int schemaEnd;
    final String codec;
    final byte[] sync;
    final int blocksStart;

    Header(int schemaStart, int schemaEnd, String codec, byte[] sync, int blocksStart) {
      this.schemaStart = schemaStart;
      this.schemaEnd = schemaEnd;
      this.codec = codec;
      this.sync = sync;
      this.blocksStart = blocksStart;
    }

    /** The writer schema as the container holds it (JSON text). */
    String schemaText(byte[] value) {
      return new String(value, schemaStart, schemaEnd - schemaStart, StandardCharsets.UTF_8);
    }
  }

  private WriterSchemas.Seen writerOf(byte[] value, Header h) {
    WriterSchemas.Seen seen = last;
    if (seen != null && seen.sameBytes(value, h.schemaStart, h.schemaEnd)) {
      return seen;
    }
    seen = WriterSchemas.parse(Arrays.copyOfRange(value, h.schemaStart, h.schemaEnd));
    last = seen;
    return seen;
  }

  /** Parses the container header (magic, metadata, sync marker). */
  static Header header(byte[] value) {
    if (value.length < 4 || !Arrays.equals(value, 0, 4, MAGIC, 0, 4)) {
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
    return new Header(schemaStart, schemaEnd, codec, sync, c.pos + 16);
  }

  /**
   * The bytes of every record of every block, each block inflated within what is left of
   * {@code maxBytes} for the whole message.
   */
  static List<byte[]> records(byte[] value, Header h, WriterSchemas.Seen writer, int maxBytes)
      throws DataFormatException, IOException {
    if (!"null".equals(h.codec) && !"deflate".equals(h.codec)) {
      throw new IllegalArgumentException("unsupported codec " + h.codec);
    }
    List<byte[]> out = new ArrayList<>(1);
    Cursor c = new Cursor(value, h.blocksStart);
    long budget = maxBytes;
    while (c.pos < value.length) {
      long count = c.readLong();
      if (count < 1) {
        throw new IllegalArgumentException("block of " + count + " records");
      }
      int blockStart = c.skipBytes();
      int blockEnd = c.pos;
      if (c.pos + 16 > value.length || !Arrays.equals(value, c.pos, c.pos + 16, h.sync, 0, 16)) {
        throw new IllegalArgumentException("truncated block (sync marker missing)");
      }
      c.pos += 16;
      byte[] block =
          "deflate".equals(h.codec)
              ? inflate(value, blockStart, blockEnd, budget, maxBytes)
              : Arrays.copyOfRange(value, blockStart, blockEnd);
      if (block.length > budget) {
        throw new IllegalArgumentException(tooLarge(maxBytes));
      }
      budget -= block.length;
      split(block, count, writer.schema, out);
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("container holds no record");
    }
    return out;
  }

  private static String tooLarge(int maxBytes) {
    return "decoded alert larger than " + maxBytes + " bytes (stream2raw.max_decoded_mb)";
  }

  /** Appends the records of one block: the block itself when it holds one record. */
  private static void split(byte[] block, long count, Schema writer, List<byte[]> out)
      throws IOException {
    if (count == 1) {
      out.add(block);
      return;
    }
    if (count > block.length) { // every record of an alert schema takes at least a byte
      throw new IllegalArgumentException(count + " records cannot fit in " + block.length + " bytes");
    }
    BinaryDecoder decoder = DecoderFactory.get().binaryDecoder(block, null);
    int start = 0;
    for (long i = 0; i < count; i++) {
      GenericDatumReader.skip(writer, decoder);
      int end = block.length - decoder.inputStream().available();
      if (end <= start || end > block.length) {
        throw new IllegalArgumentException("record " + i + " overruns its block");
      }
      out.add(Arrays.copyOfRange(block, start, end));
      start = end;
    }
    if (start != block.length) {
      throw new IllegalArgumentException((block.length - start) + " bytes after the last record");
    }
  }

  /** Inflates a raw deflate block, refusing it as soon as it exceeds {@code budget}. */
  private static byte[] inflate(byte[] value, int from, int to, long budget, int maxBytes)
      throws DataFormatException {
    Inflater inflater = new Inflater(true);
    try {
      inflater.setInput(value, from, to - from);
      int initial = (int) Math.min(budget, Math.max(4L * (to - from), 1024));
      ByteArrayOutputStream out = new ByteArrayOutputStream(initial);
      byte[] buf = new byte[65536];
      long total = 0;
      while (!inflater.finished()) {
        int n = inflater.inflate(buf, 0, (int) Math.min(buf.length, budget - total + 1));
        if (n == 0 && (inflater.needsInput() || inflater.needsDictionary())) {
          throw new DataFormatException("truncated deflate block");
        }
        total += n;
        if (total > budget) {
          throw new IllegalArgumentException(tooLarge(maxBytes));
        }
        out.write(buf, 0, n);
      }
      return out.toByteArray();
    } finally {
      inflater.end();
    }
  }
}
