// devicestream dashboard: polls /status (and /merged/tail), draws small canvas charts, drives the
// generator through the gateway. No build step, no external library.
"use strict";

const POLL_MS = 1000;
const TAIL_MS = 3000;
const DEVICES_MS = 2000;
const MAX_POINTS = 120;
const KEY_STORE = "devicestream.apiKey";

const series = { produced: [], processed: [], merged: [], lag: [], freshness: [] };
const colors = { produced: "#4f8cff", processed: "#2fbf71", merged: "#b07cff", lag: "#f0b429", freshness: "#33c3d6" };
window.dashboard = { series, lastStatus: null };

const $ = (id) => document.getElementById(id);
const fmt = (v, digits = 0) =>
  v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits });

// ---- API key handling ---------------------------------------------------------------------------

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { "X-API-Key": key } : {};
}

function askForKey() {
  return new Promise((resolve) => {
    const dlg = $("key-dialog");
    const input = $("key-input");
    input.value = "";
    const done = (ok) => {
      dlg.close();
      if (ok && input.value) sessionStorage.setItem(KEY_STORE, input.value);
      resolve(ok && !!input.value);
    };
    $("key-form").onsubmit = (e) => { e.preventDefault(); done(true); };
    $("key-cancel").onclick = () => done(false);
    dlg.showModal();
    input.focus();
  });
}

let asking = null;
async function api(path, options = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const resp = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
    if (resp.status !== 401) return resp;
    sessionStorage.removeItem(KEY_STORE);
    asking = asking || askForKey().finally(() => { asking = null; });
    if (!(await asking)) return resp;
  }
  return fetch(path, options);
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    return JSON.stringify(body);
  } catch { return `HTTP ${resp.status}`; }
}

// ---- charts -------------------------------------------------------------------------------------

function push(name, value) {
  const s = series[name];
  s.push(value === null || value === undefined || Number.isNaN(value) ? null : Number(value));
  if (s.length > MAX_POINTS) s.shift();
}

function draw(canvas) {
  const name = canvas.dataset.series;
  const data = series[name];
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const vals = data.filter((v) => v !== null);
  const max = Math.max(1, ...vals) * 1.1;
  const left = 44, right = 6, top = 8, bottom = 16;
  const pw = w - left - right, ph = h - top - bottom;
  ctx.strokeStyle = "#2a3550"; ctx.fillStyle = "#8b96ad"; ctx.font = "11px system-ui"; ctx.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = top + ph * (i / 2);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
    ctx.fillText(fmt(max * (1 - i / 2), max < 10 ? 1 : 0), 2, y + 4);
  }
  ctx.fillText(`${MAX_POINTS}s`, left, h - 3);
  const last = vals.length ? vals[vals.length - 1] : null;
  ctx.textAlign = "right"; ctx.fillText(`now: ${fmt(last, 1)}`, w - right, h - 3); ctx.textAlign = "left";
  canvas.dataset.last = last === null ? "" : String(last);
  canvas.dataset.max = String(vals.length ? Math.max(...vals) : 0);
  const step = pw / (MAX_POINTS - 1);
  const x0 = left + pw - step * (data.length - 1);
  ctx.strokeStyle = colors[name]; ctx.lineWidth = 2; ctx.beginPath();
  let pen = false;
  data.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    const x = x0 + i * step, y = top + ph - (v / max) * ph;
    if (pen) ctx.lineTo(x, y); else { ctx.moveTo(x, y); pen = true; }
  });
  ctx.stroke();
  ctx.lineTo(x0 + (data.length - 1) * step, top + ph); ctx.lineTo(x0, top + ph);
  ctx.globalAlpha = 0.12; ctx.fillStyle = colors[name]; ctx.fill(); ctx.globalAlpha = 1;
}

const drawAll = () => document.querySelectorAll("canvas[data-series]").forEach(draw);

// ---- status -------------------------------------------------------------------------------------

function componentLine(name, c) {
  if (!c) return "";
  if (c.status === "down" || c.status === "degraded") return (c.reasons || []).map((r) => r.replace(/^\w+: /, "")).join("; ");
  switch (name) {
    case "kafka": return `${c.brokers} broker(s), ${c.partitions} partitions, ${fmt(c.total_events)} events`;
    case "generator": return `${c.state}${c.state === "running" ? `, ${fmt(c.rate_1s)} ev/s` : ""}`;
    case "spark": return `batch ${fmt(c.batchId)}, ${fmt(c.processedRowsPerSecond)} rows/s, ${fmt(c.age_s, 1)}s ago`;
    case "merger": return `${fmt(c.rows_merged)} rows, ${fmt(c.batches_merged)} batches`;
  }
  return "";
}

function renderStatus(doc) {
  window.dashboard.lastStatus = doc;
  const badge = $("overall");
  badge.className = `badge ${doc.overall}`;
  badge.textContent = doc.overall;
  badge.dataset.status = doc.overall;
  $("updated").textContent = `updated ${new Date(doc.checked_at * 1000).toLocaleTimeString()}`;
  $("reasons").replaceChildren(...doc.reasons.map((r) => Object.assign(document.createElement("li"), { textContent: r })));
  for (const name of ["kafka", "generator", "spark", "merger"]) {
    const c = doc.components[name];
    const el = $(`c-${name}`);
    el.className = `component ${c.status}`;
    el.dataset.status = c.status;
    el.querySelector("small").textContent = componentLine(name, c);
  }
  const g = doc.components.generator, s = doc.components.spark, a = doc.accounting;
  push("produced", g.reachable ? g.rate_1s ?? 0 : null);
  push("processed", s.present ? s.processedRowsPerSecond ?? 0 : null);
  push("merged", a.rows_merged);
  push("lag", doc.lag.kafka_offsets_behind);
  push("freshness", doc.lag.end_to_end_s);
  drawAll();
  const facts = g.reachable
    ? [["state", g.state], ["run", g.run ? g.run.id : "–"], ["rate asked", g.run ? fmt(g.run.params.rate, 2) : "–"],
       ["sent", fmt(g.sent)], ["acknowledged", fmt(g.acknowledged)], ["delivery errors", fmt(g.delivery_errors)]]
    : [["state", "unreachable"]];
  $("gen-facts").replaceChildren(...facts.flatMap(([k, v]) => [
    Object.assign(document.createElement("dt"), { textContent: k }),
    Object.assign(document.createElement("dd"), { textContent: v }),
  ]));
  const rows = [["Events in Kafka", a.events_in_kafka], ["Generator acknowledged (run)", a.generator_acknowledged],
    ["Spark input rows", a.spark_input_rows], ["Spark rows written", a.spark_rows_out], ["Spark rejects", a.spark_rejects],
    ["Rows merged", a.rows_merged]];
  const tr = rows.map(([k, v]) => {
    const r = document.createElement("tr");
    r.append(Object.assign(document.createElement("td"), { textContent: k }), Object.assign(document.createElement("td"), { textContent: fmt(v) }));
    return r;
  });
  const note = document.createElement("tr");
  const td = Object.assign(document.createElement("td"), { colSpan: 2, className: "muted" });
  td.textContent = a.drained ? (a.consistent ? "drained: all stages agree" : `drained: ${a.notes.join("; ")}`) : "in flight";
  note.append(td);
  $("accounting").replaceChildren(...tr, note);
}

async function pollStatus() {
  try {
    const resp = await api("/status");
    if (resp.status === 200 || resp.status === 503) renderStatus(await resp.json());
    else { $("overall").textContent = `status: HTTP ${resp.status}`; $("overall").className = "badge unknown"; }
  } catch (e) {
    $("overall").textContent = "gateway unreachable";
    $("overall").className = "badge down";
  } finally {
    setTimeout(pollStatus, POLL_MS);
  }
}

async function pollTail() {
  try {
    const resp = await api("/merged/tail?n=10");
    if (resp.ok) {
      const t = await resp.json();
      const head = document.createElement("tr");
      head.append(...t.columns.map((c) => Object.assign(document.createElement("th"), { textContent: c })));
      $("tail-head").replaceChildren(head);
      $("tail-body").replaceChildren(...t.rows.slice().reverse().map((row) => {
        const r = document.createElement("tr");
        r.append(...row.map((v) => Object.assign(document.createElement("td"), { textContent: v })));
        return r;
      }));
      $("tail-info").textContent = t.available ? `merged.csv is ${fmt(t.file_size)} bytes` : "nothing merged yet";
    } else {
      $("tail-info").textContent = await errorText(resp);
    }
  } catch { /* next round */ } finally {
    setTimeout(pollTail, TAIL_MS);
  }
}

// ---- devices ------------------------------------------------------------------------------------

const pct = (v) => (v === null || v === undefined ? "–" : `${fmt(v * 100, 1)}%`);

function shareCell(v) {
  const td = document.createElement("td");
  const bar = Object.assign(document.createElement("span"), { className: "share" });
  const fill = document.createElement("i");
  fill.style.width = `${Math.round((v || 0) * 100)}%`;
  bar.append(fill);
  td.append(bar, document.createTextNode(pct(v)));
  return td;
}

function deviceRow(d) {
  const r = document.createElement("tr");
  const rec = d.recent, tot = d.total;
  r.id = `dev-${d.deviceId}`;
  r.dataset.device = d.deviceId;
  r.dataset.recentMean = rec.temperature_mean ?? "";
  r.dataset.recentErrorShare = rec.error_share ?? "";
  r.dataset.rows = tot.rows;
  const cell = (text) => Object.assign(document.createElement("td"), { textContent: text });
  const temps = rec.rows ? `${fmt(rec.temperature_min)} / ${fmt(rec.temperature_mean, 1)} / ${fmt(rec.temperature_max)}` : "–";
  r.append(
    cell(d.deviceId),
    cell(tot.last_seen ? new Date(tot.last_seen).toLocaleTimeString() : "–"),
    cell(fmt(rec.rows)),
    cell(temps),
    shareCell(rec.error_share),
    cell(fmt(tot.rows)),
    cell(pct(tot.error_share)),
  );
  return r;
}

// /devices pages (sorted by deviceId): the table shows one page; `devicesAfter` is where it starts.
const DEVICES_PAGE = 100;
let devicesAfter = null;

async function pollDevices() {
  try {
    const query = new URLSearchParams({ limit: DEVICES_PAGE });
    if (devicesAfter !== null) query.set("after", devicesAfter);
    const resp = await api(`/devices?${query}`);
    if (resp.ok) {
      const doc = await resp.json();
      window.dashboard.devices = doc;
      $("devices-body").replaceChildren(...doc.devices.map(deviceRow));
      const behind = doc.committed_size - doc.covered_size;
      const apart = [];
      if (doc.devices_kept > doc.devices.length) apart.push(`${fmt(doc.devices.length)} of ${fmt(doc.devices_kept)} devices shown`);
      if (doc.devices_dropped) apart.push(`${fmt(doc.devices_dropped)} least recent dropped`);
      if (doc.rows_out_of_range) apart.push(`${fmt(doc.rows_out_of_range)} rows with an eventTime out of range`);
      if (behind > 0) apart.push(`catching up: ${fmt(behind)} bytes behind`);
      $("devices-info").textContent = doc.devices.length
        ? `recent: the last ${fmt(doc.window_s)} s up to ${new Date(doc.window_end).toLocaleTimeString()}` +
          (apart.length ? ` (${apart.join("; ")})` : "")
        : "no device seen yet";
      $("devices-next").hidden = doc.next_after === null;
      $("devices-next").dataset.after = doc.next_after ?? "";
      $("devices-first").hidden = devicesAfter === null;
    } else {
      $("devices-info").textContent = await errorText(resp);
    }
  } catch { /* next round */ } finally {
    clearTimeout(pollDevices.timer);
    pollDevices.timer = setTimeout(pollDevices, DEVICES_MS);
  }
}

// ---- controls -----------------------------------------------------------------------------------

async function command(method, path, body) {
  const msg = $("control-msg");
  msg.className = "msg"; msg.textContent = "…";
  try {
    const resp = await api(path, {
      method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (resp.ok) {
      const doc = await resp.json();
      msg.textContent = `${path.split("/").pop()}: ${doc.state || "ok"}${doc.id ? ` (run ${doc.id})` : ""}`;
    } else {
      msg.className = "msg error";
      msg.textContent = `${resp.status}: ${await errorText(resp)}`;
    }
  } catch (e) {
    msg.className = "msg error";
    msg.textContent = `gateway unreachable: ${e}`;
  }
}

function rate() { return Number($("rate").value); }

$("control").addEventListener("submit", (e) => { e.preventDefault(); command("POST", "/generator/start", { rate: rate() }); });
$("set-rate").addEventListener("click", () => command("PUT", "/generator/rate", { rate: rate() }));
$("stop").addEventListener("click", () => command("POST", "/generator/stop"));
$("download").addEventListener("click", async (e) => {
  // with protected reads a plain link cannot carry the key: fetch it and hand the browser a blob
  if (!sessionStorage.getItem(KEY_STORE)) return;
  e.preventDefault();
  const resp = await api("/merged.csv");
  if (!resp.ok) return;
  const url = URL.createObjectURL(await resp.blob());
  Object.assign(document.createElement("a"), { href: url, download: "merged.csv" }).click();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
});
$("devices-next").addEventListener("click", (e) => { devicesAfter = e.target.dataset.after || null; pollDevices(); });
$("devices-first").addEventListener("click", () => { devicesAfter = null; pollDevices(); });
window.addEventListener("resize", drawAll);

pollStatus();
pollTail();
pollDevices();
