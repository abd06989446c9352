// The Fink dashboard page: polls /api/snapshot and draws every panel.
// Plain JavaScript and Plotly (served by the dashboard itself): no build step, no network.
"use strict";

const BAND_COLOURS = {
  u: "#6a3d9a", g: "#1b9e4b", r: "#d62728", i: "#ff7f0e", z: "#8c564b", y: "#444444",
};
const STAGES = {
  total: "Kafka → science (total)",
  kafka_to_raw: "Kafka → raw archive",
  raw_to_science: "raw → science start",
  modules: "science modules",
};
const PLOT_CONFIG = { displaylogo: false, responsive: true };

const view = {
  refreshS: 2,
  refreshes: 0,
  selected: null,       // objectId whose light curve is shown
  latestKey: "",        // alert ids (and API state) of the table on screen
  curveLoadedAt: 0,
};

// --------------------------------------------------------------------------- formatting

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  }
  return node;
}

function num(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en-US", {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

function clock(epoch) {
  if (!epoch) return "–";
  return new Date(epoch * 1000).toLocaleTimeString("en-GB", { hour12: false });
}

function emptyNote(text) {
  return {
    text, xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false,
    font: { color: "#6b7380", size: 14 },
  };
}

function setNote(id, text) {
  document.getElementById(id).textContent = text || "";
}

function fillBody(table, rows, empty, columns) {
  const body = document.querySelector(`#${table} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", { class: "empty" }, el("td", { colspan: String(columns) }, empty)));
    return body;
  }
  for (const row of rows) body.append(row);
  return body;
}

function partNote(part, what) {
  if (!part) return "";
  if (part.error) {
    const when = part.updated ? ` (last good reading ${clock(part.updated)})` : "";
    return `${what}: ${part.error}${when}`;
  }
  return "";
}

// --------------------------------------------------------------------------- services

function details(row) {
  const totals = row.totals || {};
  const parts = [];
  const show = (label, counts) => {
    const entries = Object.entries(counts || {}).filter(([, n]) => n);
    if (entries.length) parts.push(`${label}: ${entries.map(([k, n]) => `${k} ${num(n)}`).join(", ")}`);
  };
  show("cut", totals.cut);
  show("quarantined", totals.quarantine_reasons);
  show("module failures", totals.module_failures);
  show("topics", totals.topics);
  show("tables", totals.tables);
  if (row.topics && row.topics.length) parts.push(`reads ${row.topics.join(", ")}`);
  if (row.ports && row.ports.length) parts.push(`port ${row.ports.join(", ")}`);
  if (row.last_restart) {
    parts.push(`last restart ${clock(row.last_restart.time)}: ${row.last_restart.reason}`);
  }
  if (row.unreadable) parts.push(`${row.unreadable} unreadable metrics lines (${row.first_unreadable})`);
  return parts.join(" · ");
}

function renderServices(part) {
  setNote("services-note", partNote(part, "services"));
  const data = part && part.data;
  if (!data) return;
  const rows = data.rows.map((row) => {
    const rates = row.rates || {};
    const last = row.last_batch;
    const lastText = last ? `${clock(last.time)}, ${duration(last.age_s)} ago` : "none";
    const lastTitle = last
      ? `batch ${last.batch_id} of ${last.survey}: ${num(last.rows_in)} in, ${num(last.rows_out)} out, ${num(last.duration_s, 2)} s`
      : "";
    return el(
      "tr", { dataset: { service: row.name } },
      el("td", { class: "name" }, row.name),
      el("td", { class: row.up ? "state state-up" : "state state-down" }, row.up ? (row.in_pipeline ? "up (pipeline)" : "up") : "down"),
      el("td", { class: "pid" }, row.up ? String(row.pid) : "–"),
      el("td", { class: "uptime" }, row.up ? duration(row.uptime_s) : "–"),
      el("td", { class: "cpu" }, row.up ? num(row.cpu_percent, 1) : "–"),
      el("td", { class: "rss" }, row.up ? num(row.rss_mib) : "–"),
      el("td", { class: "restarts" }, num(row.restarts)),
      el("td", { class: "last-batch text", title: lastTitle }, lastText),
      el("td", { class: "batches" }, num(row.batches)),
      el("td", { class: "in-rate" }, row.rates ? num(rates.in_per_s, 1) : "–"),
      el("td", { class: "out-rate" }, row.rates ? num(rates.out_per_s, 1) : "–"),
      el("td", { class: "quarantine-rate" }, row.rates ? num(rates.quarantined_per_s, 1) : "–"),
      el("td", { class: "total-in" }, row.totals ? num(row.totals.rows_in) : "–"),
      el("td", { class: "total-out" }, row.totals ? num(row.totals.rows_out) : "–"),
      el("td", { class: "details" }, details(row)),
    );
  });
  fillBody("services", rows, "no service has run yet", 15);
  renderReasons(data.rows);
  renderRates(data);
}

function renderReasons(services) {
  const rows = [];
  for (const row of services) {
    const totals = row.totals || {};
    const perS = (row.rates && row.rates.cut_per_s) || {};
    const add = (what, counts, rates) => {
      for (const [name, total] of Object.entries(counts || {})) {
        if (!total) continue;   // a cut or topic that never removed or received an alert
        rows.push(el(
          "tr", { dataset: { service: row.name, what } },
          el("td", {}, row.name), el("td", { class: "text" }, what),
          el("td", { class: "text" }, name),
          el("td", {}, rates && name in rates ? num(rates[name], 2) : "–"),
          el("td", {}, num(total)),
        ));
      }
    };
    add("cut", totals.cut, perS);
    add("quarantined", totals.quarantine_reasons, null);
    add("module failure", totals.module_failures, null);
    add("published", totals.topics, null);
    add("archived", totals.tables, null);
  }
  fillBody("reasons", rows, "nothing cut, quarantined or published yet", 5);
}

function renderRates(data) {
  document.getElementById("rates-window").textContent =
    `alerts/s over ${num(data.window_s)} s, every ${num(data.bucket_s)} s; solid in, dotted out`;
  const traces = [];
  for (const [name, series] of Object.entries(data.series || {})) {
    const x = series.time.map((t) => new Date(t * 1000));
    traces.push({ x, y: series.in_per_s, name: `${name} in`, mode: "lines", line: { width: 2 } });
    traces.push({
      x, y: series.out_per_s, name: `${name} out`, mode: "lines", line: { width: 1.5, dash: "dot" },
    });
  }
  Plotly.react("rates-plot", traces, {
    margin: { l: 50, r: 10, t: 10, b: 40 },
    annotations: traces.length ? [] : [emptyNote("no micro-batch in the history shown")],
    yaxis: { title: { text: "alerts/s" }, rangemode: "tozero" },
    legend: { orientation: "h", y: -0.2 },
    uirevision: "rates",
  }, PLOT_CONFIG);
}

// --------------------------------------------------------------------------- Kafka

function renderKafka(part) {
  const note = partNote(part, "Kafka");
  const data = part && part.data;
  const input = data ? data.input : null;
  const output = data ? data.output : null;
  setNote("lag-note", note || (input && input.note) || "");
  setNote("topics-note", note || (output && output.note) || "");
  if (input) {
    const rows = input.topics.map((t) => el(
      "tr", { dataset: { topic: t.topic || "" } },
      el("td", {}, t.survey), el("td", { class: "text" }, t.topic || "–"),
      el("td", {}, num(t.partitions)), el("td", {}, num(t.end)),
      el("td", {}, num(t.position)), el("td", { class: "lag" }, num(t.lag)),
      el("td", { class: "text" },
        t.batch === undefined ? t.note : `${t.batch} ${t.committed ? "committed" : "running"}${t.note ? " · " + t.note : ""}`),
    ));
    fillBody("lag", rows, "no input topic read yet", 7);
  }
  if (output) {
    const rows = output.topics.map((t) => el(
      "tr", { dataset: { topic: t.topic } },
      el("td", {}, t.topic), el("td", {}, num(t.partitions)),
      el("td", { class: "published" }, num(t.published)), el("td", {}, num(t.held)),
    ));
    fillBody("topics", rows, "no output topic yet", 4);
  }
}

// --------------------------------------------------------------------------- latency

function renderLatency(part, broker) {
  const data = part && part.data;
  setNote("latency-note", partNote(part, "science archive") || (data && data.note) || "");
  if (!data) return;
  const rows = [];
  const bars = { p50: { x: [], y: [] }, p95: { x: [], y: [] }, p99: { x: [], y: [] } };
  let span = "";
  for (const [survey, latency] of Object.entries(data.latency)) {
    span = `newest ${num(latency.alerts)} alerts (at most ${num(broker.latency_alerts)}), processed ${clock(latency.from)}–${clock(latency.to)}`;
    for (const [stage, label] of Object.entries(STAGES)) {
      const p = latency.stages[stage];
      rows.push(el(
        "tr", { dataset: { survey, stage } },
        el("td", {}, survey), el("td", { class: "text" }, label), el("td", {}, num(p.n)),
        el("td", { class: "p50" }, num(p.p50, 2)), el("td", { class: "p95" }, num(p.p95, 2)),
        el("td", { class: "p99" }, num(p.p99, 2)), el("td", {}, num(p.max, 2)),
      ));
      for (const key of ["p50", "p95", "p99"]) {
        bars[key].x.push(`${survey}: ${label}`);
        bars[key].y.push(p[key]);
      }
    }
  }
  document.getElementById("latency-window").textContent = span;
  fillBody("latency", rows, "no science alert yet", 7);
  Plotly.react("latency-plot", Object.entries(bars).map(([name, b]) => ({
    type: "bar", name, x: b.x, y: b.y,
  })), {
    barmode: "group",
    annotations: rows.length ? [] : [emptyNote("no science alert yet")],
    xaxis: { visible: rows.length > 0 },
    margin: { l: 50, r: 10, t: 10, b: 90 },
    yaxis: { title: { text: "seconds" }, rangemode: "tozero", visible: rows.length > 0 },
    legend: { orientation: "h", y: 1.1 },
    uirevision: "latency",
  }, PLOT_CONFIG);
}

// --------------------------------------------------------------------------- latest alerts

function cutoutCell(alertId, kind, apiOk) {
  const cell = el("td", { class: `cutout cutout-${kind.toLowerCase()}` });
  if (!apiOk) {
    cell.append(el("span", { class: "no-cutout" }, "needs the API"));
    return cell;
  }
  const url = `/api/cutout?alertId=${encodeURIComponent(alertId)}&kind=${kind}`;
  const img = el("img", { alt: `${kind} cutout of ${alertId}`, src: url, loading: "lazy" });
  img.addEventListener("error", async () => {
    let text = "no cutout";
    try {
      const answer = await fetch(url);
      text = (await answer.json()).detail || text;
    } catch (err) { /* keep the short text */ }
    img.replaceWith(el("span", { class: "no-cutout", title: text }, "no cutout"));
  });
  cell.append(img);
  return cell;
}

function renderLatest(part, api) {
  const data = part && part.data;
  const apiOk = Boolean(api && api.ok);
  setNote("api-note", apiOk ? "" : `Cutouts and light curves come from the REST API: ${api ? api.message : "not checked yet"}. Start it with \`fink start hbase\`, \`fink start archive\` and \`fink start api\`.`);
  if (!data) return;
  const latest = data.latest || [];
  const key = JSON.stringify([apiOk, latest.map((a) => a.alertId)]);
  if (key === view.latestKey) return;   // the same alerts: keep the loaded images
  view.latestKey = key;
  const rows = latest.map((a) => {
    const row = el(
      "tr", { dataset: { alertId: a.alertId, objectId: a.objectId, survey: a.survey } },
      el("td", {}, clock(a.processing_end)), el("td", {}, a.survey),
      el("td", { class: "object text" }, a.objectId ?? "–"), el("td", { class: "alert" }, a.alertId),
      el("td", { class: "text" }, a.finkclass ?? "–"), el("td", {}, num(a.mjd, 5)),
      el("td", {}, a.band ?? "–"),
      el("td", {}, a.mag === null ? "–" : `${num(a.mag, 2)} ± ${num(a.magerr, 2)}`),
      el("td", {}, num(a.flux, 0)), el("td", {}, num(a.ra, 5)), el("td", {}, num(a.dec, 5)),
      cutoutCell(a.alertId, "Science", apiOk),
      cutoutCell(a.alertId, "Template", apiOk),
      cutoutCell(a.alertId, "Difference", apiOk),
    );
    if (a.objectId) row.addEventListener("click", () => select(a.objectId));
    if (view.selected && a.objectId === view.selected) row.classList.add("selected");
    return row;
  });
  fillBody("latest", rows, "no science alert yet", 14);
  const first = latest.find((a) => a.objectId);
  if (!view.selected && apiOk && first) select(first.objectId);
}

// --------------------------------------------------------------------------- light curve

function select(objectId) {
  view.selected = objectId;
  for (const row of document.querySelectorAll("#latest tbody tr")) {
    row.classList.toggle("selected", row.dataset.objectId === objectId);
  }
  loadCurve();
}

async function loadCurve() {
  const objectId = view.selected;
  if (!objectId) return;
  view.curveLoadedAt = Date.now();
  document.getElementById("lightcurve-object").textContent = objectId;
  let answer;
  try {
    answer = await fetch(`/api/lightcurve?objectId=${encodeURIComponent(objectId)}`);
  } catch (err) {
    setNote("lightcurve-note", `the dashboard did not answer: ${err}`);
    return;
  }
  const body = await answer.json();
  if (!answer.ok) {
    setNote("lightcurve-note", `Light curves come from the REST API: ${body.detail}`);
    return;
  }
  if (objectId !== view.selected) return;   // another object was selected meanwhile
  drawCurve(objectId, body.points);
}

function drawCurve(objectId, points) {
  const valid = points.filter((p) => (p["d:tag"] ?? "valid") === "valid");
  const limits = points.filter((p) => p["d:tag"] === "upperlim" && p["d:maglim"] !== null);
  const inMag = valid.some((p) => p["d:mag"] !== null && p["d:mag"] !== undefined);
  setNote("lightcurve-note", points.length ? "" : `the archive has no alert of ${objectId} yet`);
  const traces = [];
  const bands = [...new Set(points.map((p) => p["d:band"]).filter(Boolean))].sort();
  for (const band of bands) {
    const colour = BAND_COLOURS[band] || "#333";
    const mine = valid.filter((p) => p["d:band"] === band);
    traces.push({
      name: `${band} ${inMag ? "mag" : "flux"}`,
      mode: "markers",
      marker: { color: colour, size: 8 },
      x: mine.map((p) => p["d:mjd"]),
      y: mine.map((p) => (inMag ? p["d:mag"] : p["d:flux"])),
      error_y: {
        type: "data", visible: true, color: colour,
        array: mine.map((p) => (inMag ? p["d:magerr"] : p["d:fluxerr"])),
      },
    });
    const ups = limits.filter((p) => p["d:band"] === band);
    if (inMag && ups.length) {
      traces.push({
        name: `${band} upper limit`, mode: "markers",
        marker: { color: colour, symbol: "triangle-down-open", size: 8 },
        x: ups.map((p) => p["d:mjd"]), y: ups.map((p) => p["d:maglim"]),
      });
    }
  }
  Plotly.react("lightcurve-plot", traces, {
    margin: { l: 60, r: 10, t: 10, b: 40 },
    xaxis: { title: { text: "MJD" }, tickformat: ".1f" },
    yaxis: inMag ? { title: { text: "magnitude" }, autorange: "reversed" } : { title: { text: "flux (nJy)" } },
    legend: { orientation: "h", y: -0.2 },
  }, PLOT_CONFIG);
  document.getElementById("lightcurve-plot").dataset.points = String(valid.length);
}

// --------------------------------------------------------------------------- loop

function renderHeader(snapshot) {
  const broker = snapshot.broker;
  document.getElementById("version").textContent = `broker ${broker.version}`;
  document.getElementById("where").textContent =
    `data ${broker.root} · state ${broker.state_dir} · rates over ${num(broker.rate_window_s)} s`;
  const live = document.getElementById("live");
  live.className = "pill pill-live";
  live.textContent = `live · ${clock(broker.now)}`;
}

async function tick() {
  try {
    const answer = await fetch("/api/snapshot", { cache: "no-store" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    const snapshot = await answer.json();
    view.refreshS = snapshot.broker.refresh_s || view.refreshS;
    renderHeader(snapshot);
    renderServices(snapshot.services);
    renderKafka(snapshot.kafka);
    renderLatency(snapshot.science, snapshot.broker);
    const api = snapshot.api && snapshot.api.data;
    renderLatest(snapshot.science, api);
    if (view.selected && api && api.ok && Date.now() - view.curveLoadedAt > 10000) loadCurve();
    view.refreshes += 1;
    document.body.dataset.refreshes = String(view.refreshes);
  } catch (err) {
    const live = document.getElementById("live");
    live.className = "pill pill-stale";
    live.textContent = `no answer from the dashboard: ${err.message}`;
  } finally {
    setTimeout(tick, view.refreshS * 1000);
  }
}

Plotly.newPlot("lightcurve-plot", [], {
  margin: { l: 60, r: 10, t: 10, b: 40 },
  xaxis: { visible: false }, yaxis: { visible: false },
  annotations: [emptyNote("select an alert of the table above")],
}, PLOT_CONFIG);
tick();
