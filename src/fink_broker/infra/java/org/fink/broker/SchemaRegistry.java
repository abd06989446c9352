// SPDX-License-Identifier: Apache-2.0
package org.fink.broker;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.avro.Schema;

/**
 * Writer schemas by Confluent schema id, from a Confluent-compatible schema registry, each
 * fetched once per JVM and kept on disk.
 *
 * <p>Rubin's ids follow lsst-alert-packet's convention and the package ships those schemas;
 * an id it does not know is asked of the registry configured in
 * {@code stream2raw.schema_registry_url} ({@code GET <url>/schemas/ids/<id>}). Each answer is
 * written to {@code <cache_dir>/<id>.avsc} (atomically), so a restart, or another service on
 * the machine, needs no request. An id the registry cannot give (unknown, or the registry
 * unreachable) is remembered for {@code retry_s} seconds, so a registry outage does not cost
 * every alert of a batch a time-out.
 *
 * <p>Configuration arrives as JSON (url, username, password_env, password_file, cache_dir,
 * timeout_ms, retry_s) that holds no secret: the password is read here, on the executor, from
 * the environment variable or file it names, so it never appears in a plan, a log or the UI.
 */
final class SchemaRegistry {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Map<String, SchemaRegistry> BY_CONFIG = new ConcurrentHashMap<>();

  private final String url;
  private final String authorization;
  private final Path cacheDir;
  private final Duration timeout;
  private final long retryMillis;
  private final HttpClient http;
  private final Map<String, Schema> schemas = new HashMap<>();
  private final Map<String, Failure> failures = new HashMap<>();

  /** Why an id has no schema, and when to ask again. */
  private static final class Failure {
    final String reason;
    final long retryAt;

    Failure(String reason, long retryAt) {
      this.reason = reason;
      this.retryAt = retryAt;
    }
  }

  /** An id that neither the package nor the registry could give, with the reason. */
  static final class UnknownSchemaException extends Exception {
    private static final long serialVersionUID = 1L;

    UnknownSchemaException(String message) {
      super(message);
    }
  }

  private SchemaRegistry(JsonNode conf) throws IOException {
    String base = conf.path("url").asText("");
    url = base.endsWith("/") ? base.substring(0, base.length() - 1) : base;
    authorization = basicAuth(conf);
    String dir = conf.path("cache_dir").asText("");
    cacheDir = dir.isEmpty() ? null : Paths.get(dir);
    timeout = Duration.ofMillis(conf.path("timeout_ms").asLong(10_000));
    retryMillis = conf.path("retry_s").asLong(30) * 1000L;
    http = HttpClient.newBuilder().connectTimeout(timeout).build();
  }

  /** The registry of a configuration (one per distinct configuration and JVM). */
  static SchemaRegistry of(String configJson) throws IOException {
    SchemaRegistry found = BY_CONFIG.get(configJson);
    if (found == null) {
      found = new SchemaRegistry(JSON.readTree(configJson));
      BY_CONFIG.putIfAbsent(configJson, found);
      found = BY_CONFIG.get(configJson);
    }
    return found;
  }

  private static String basicAuth(JsonNode conf) throws IOException {
    String user = conf.path("username").asText("");
    if (user.isEmpty()) {
      return null;
    }
    String password = "";
    String file = conf.path("password_file").asText("");
    String env = conf.path("password_env").asText("");
    if (!file.isEmpty()) {
      String text = new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8);
      password = text.split("\\R", 2)[0];
    } else if (!env.isEmpty() && System.getenv(env) != null) {
      password = System.getenv(env);
    }
    String pair = user + ":" + password;
    return "Basic " + Base64.getEncoder().encodeToString(pair.getBytes(StandardCharsets.UTF_8));
  }

  /** The writer schema of {@code id}, from memory, disk or the registry. */
  synchronized Schema schema(String id) throws UnknownSchemaException {
    Schema known = schemas.get(id);
    if (known != null) {
      return known;
    }
    Failure failed = failures.get(id);
    if (failed != null && System.currentTimeMillis() < failed.retryAt) {
      throw new UnknownSchemaException(failed.reason);
    }
    try {
      Schema schema = parse(cached(id));
      schemas.put(id, schema);
      failures.remove(id);
      return schema;
    } catch (IOException | RuntimeException e) {
      String reason = "schema id " + id + " is not in lsst-alert-packet, and the registry "
          + (url.isEmpty() ? "is not configured" : "could not give it: " + e.getMessage());
      failures.put(id, new Failure(reason, System.currentTimeMillis() + retryMillis));
      throw new UnknownSchemaException(reason);
    }
  }

  private static Schema parse(String text) {
    return new Schema.Parser().setValidateDefaults(false).parse(text);
  }

  /** The schema text from the disk cache, or fetched and then cached. */
  private String cached(String id) throws IOException {
    if (!id.matches("[0-9]{1,10}")) {
      throw new IOException("not a schema id: " + id);
    }
    Path file = cacheDir == null ? null : cacheDir.resolve(id + ".avsc");
    if (file != null && Files.isRegularFile(file)) {
      return new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
    }
    if (url.isEmpty()) {
      throw new IOException("no registry");
    }
    String text = fetch(id);
    parse(text); // a schema that does not parse is not cached
    if (file != null) {
      Files.createDirectories(cacheDir);
      Path tmp = Files.createTempFile(cacheDir, id + ".", ".tmp");
      Files.write(tmp, text.getBytes(StandardCharsets.UTF_8));
      Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
    return text;
  }

  private String fetch(String id) throws IOException {
    HttpRequest.Builder request =
        HttpRequest.newBuilder(URI.create(url + "/schemas/ids/" + id))
            .timeout(timeout)
            .header("Accept", "application/vnd.schemaregistry.v1+json, application/json");
    if (authorization != null) {
      request.header("Authorization", authorization);
    }
    HttpResponse<String> answer;
    try {
      answer = http.send(request.GET().build(), HttpResponse.BodyHandlers.ofString());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", e);
    }
    if (answer.statusCode() != 200) {
      throw new IOException("HTTP " + answer.statusCode() + " for id " + id);
    }
    JsonNode body = JSON.readTree(answer.body());
    String type = body.path("schemaType").asText("AVRO");
    if (!"AVRO".equals(type)) {
      throw new IOException("schema id " + id + " is " + type + ", not Avro");
    }
    JsonNode schema = body.get("schema");
    if (schema == null || !schema.isTextual()) {
      throw new IOException("no schema in the registry's answer for id " + id);
    }
    return schema.asText();
  }
}
