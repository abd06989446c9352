// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

/**
 * The writer schemas that containers carry, parsed once each: a bounded, least recently used
 * cache keyed by the schema's text.
 *
 * <p>Parsing ZTF's 23 kB schema costs ~0.2 ms, and the same text arrives with every message.
 * The cache is bounded because the text comes from the stream: a producer that sends a new
 * schema with every message must not grow the executor's heap.
 */
final class WriterSchemas {
  /** Distinct writer schemas kept parsed per JVM. */
  static final int CAPACITY = 64;

  private static final Map<String, Seen> CACHE =
      Collections.synchronizedMap(
          new LinkedHashMap<String, Seen>(16, 0.75f, true) {
            private static final long serialVersionUID = 1L;

            @Override
            protected boolean removeEldestEntry(Map.Entry<String, Seen> eldest) {
              return size() > CAPACITY;
            }
          });

  private WriterSchemas() {}

  /** A writer schema as its bytes, its parsed form and its CRC-64-AVRO fingerprint. */
  static final class Seen {
    final byte[] bytes;
    final Schema schema;
    final String fingerprint;

    Seen(byte[] bytes, Schema schema, String fingerprint) {
      this.bytes = bytes;
      this.schema = schema;
      this.fingerprint = fingerprint;
    }

    boolean sameBytes(byte[] value, int from, int to) {
      return Arrays.equals(bytes, 0, bytes.length, value, from, to);
    }
  }

  /** The parsed schema of these bytes (JSON text), from the cache when it holds them. */
  static Seen parse(byte[] bytes) {
    String text = new String(bytes, StandardCharsets.UTF_8);
    Seen seen = CACHE.get(text);
    if (seen == null) {
      Schema schema = new Schema.Parser().setValidateDefaults(false).parse(text);
      seen = new Seen(bytes, schema, fingerprint(schema));
      CACHE.put(text, seen);
    }
    return seen;
  }

  /** The CRC-64-AVRO parsing fingerprint as fastavro writes it: 16 hex digits, little end first. */
  static String fingerprint(Schema schema) {
    return String.format(
        "%016x", Long.reverseBytes(SchemaNormalization.parsingFingerprint64(schema)));
  }
}
