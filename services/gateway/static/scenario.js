// devicestream dashboard, second part (after app.js, whose api/errorText/fmt/$ it uses): the scenario
// form (profile, count/duration, seed, fleet, faults), the requested-vs-achieved rate chart (plain
// SVG, drawn here: two polylines need no charting library), the query panel and the report link.
"use strict";

const RATE_POINTS = 120;
const rateSeries = { requested: [], achieved: [] };
window.dashboard.rate = rateSeries;

// ---- the scenario form --------------------------------------------------------------------------

const num = (id) => { const v = $(id).value.trim(); return v === "" ? undefined : Number(v); };

function showProfileParams() {
  const kind = $("s-profile").value;
  document.querySelectorAll("#scenario-form .params").forEach((el) => { el.hidden = el.dataset.kind !== kind; });
}

function profileOf(kind) {
  switch (kind) {
    case "ramp": return { kind, from_rate: num("s-from"), to_rate: num("s-to"), over_s: num("s-over") };
    case "steps": return {
      kind,
      steps: $("s-steps").value.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
        const [rate, duration_s] = s.split(/\s*x\s*/i).map(Number);
        return { rate, duration_s };
      }),
    };
    case "burst": return { kind, base_rate: num("s-base"), burst_rate: num("s-burst"), burst_s: num("s-burst-s"), period_s: num("s-period") };
    case "sine": return { kind, mean: num("s-mean"), amplitude: num("s-amplitude"), period_s: num("s-sine-period") };
    default: return null;
  }
}

function scenarioBody() {
  const kind = $("s-profile").value;
  const body = kind === "constant" ? { rate: num("s-rate") } : { profile: profileOf(kind) };
  for (const [key, id] of [["count", "s-count"], ["duration_s", "s-duration"], ["seed", "s-seed"]]) {
    const v = num(id);
    if (v !== undefined) body[key] = v;
  }
  if ($("s-fleet-on").checked) {
    body.fleet = { customers: num("s-customers"), devices_per_customer: num("s-devices"), silent_probability: num("s-silent") };
  }
  if ($("s-faults-on").checked) {
    body.faults = { invalid_ratio: num("s-invalid"), late_ratio: num("s-late"), skewed_devices_ratio: num("s-skewed"),
      resend_ratio: num("s-resend") };
  }
  return body;
}

async function startScenario(e) {
  e.preventDefault();
  const msg = $("scenario-msg");
  msg.className = "msg"; msg.textContent = "…";
  const body = scenarioBody();
  window.dashboard.lastScenario = body;
  try {
    const resp = await api("/generator/start", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (resp.ok) {
      const run = await resp.json();
      msg.textContent = `start: ${run.state} (run ${run.id})`;
      showReportLink(run.id);
    } else {
      msg.className = "msg error";
      msg.textContent = `${resp.status}: ${await errorText(resp)}`;
    }
  } catch (err) {
    msg.className = "msg error"; msg.textContent = `gateway unreachable: ${err}`;
  }
}

// ---- the report link ----------------------------------------------------------------------------

function showReportLink(runId) {
  const a = $("report-link");
  if (!runId) return;
  a.href = `/report?run=${encodeURIComponent(runId)}`;
  a.querySelector("span").textContent = runId;
  a.hidden = false;
}

// ---- requested vs achieved ----------------------------------------------------------------------

function pushRate(name, v) {
  const s = rateSeries[name];
  s.push(v === null || v === undefined ? null : Number(v));
  if (s.length > RATE_POINTS) s.shift();
}

function svgEl(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function drawRate() {
  const svg = $("chart-rate");
  const W = 800, H = 160, left = 50, top = 8, bottom = 18;
  const all = [...rateSeries.requested, ...rateSeries.achieved].filter((v) => v !== null);
  const max = Math.max(1, ...all) * 1.1;
  const x = (i, n) => left + (W - left - 4) * (RATE_POINTS - n + i) / (RATE_POINTS - 1);
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const children = [];
  for (let i = 0; i <= 2; i++) {
    const gy = top + (H - top - bottom) * i / 2;
    children.push(svgEl("line", { x1: left, x2: W, y1: gy, y2: gy, class: "grid" }));
    const t = svgEl("text", { x: 2, y: gy + 4 }); t.textContent = fmt(max * (1 - i / 2)); children.push(t);
  }
  for (const name of ["requested", "achieved"]) {
    const s = rateSeries[name];
    const pts = s.map((v, i) => (v === null ? null : `${x(i, s.length).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
    children.push(svgEl("polyline", { points: pts.join(" "), class: name }));
  }
  const label = svgEl("text", { x: left, y: H - 3 }); label.textContent = `${RATE_POINTS}s`; children.push(label);
  svg.replaceChildren(...children);
  svg.dataset.points = String(rateSeries.achieved.filter((v) => v !== null).length);
  svg.dataset.maxRequested = String(Math.max(0, ...rateSeries.requested.filter((v) => v !== null)));
  svg.dataset.maxAchieved = String(Math.max(0, ...rateSeries.achieved.filter((v) => v !== null)));
}

let lastChecked = null;
function followStatus() {
  const doc = window.dashboard.lastStatus;
  if (doc && doc.checked_at !== lastChecked) {
    lastChecked = doc.checked_at;
    const g = doc.components.generator;
    const running = g.reachable && g.state === "running";
    pushRate("requested", g.reachable ? (running ? g.rate_requested ?? 0 : 0) : null);
    pushRate("achieved", g.reachable ? g.rate_1s ?? 0 : null);
    drawRate();
    if (g.reachable && g.run) showReportLink(g.run.id);
  }
}

// ---- the query panel ----------------------------------------------------------------------------

const list = (id) => $(id).value.split(",").map((s) => s.trim());

function queryParams(limit) {
  const q = new URLSearchParams();
  for (const [key, id] of [["deviceId", "q-devices"], ["customerId", "q-customers"]]) {
    list(id).filter(Boolean).forEach((v) => q.append(key, v));
  }
  if ($("q-statuses").value.trim()) list("q-statuses").forEach((v) => q.append("status", v === "none" ? "" : v));
  for (const [key, id] of [["since", "q-since"], ["until", "q-until"]]) if ($(id).value.trim()) q.set(key, $(id).value.trim());
  const cols = list("q-columns").filter(Boolean);
  if (cols.length) q.set("columns", cols.join(","));
  if (limit !== undefined) q.set("limit", String(limit));
  return q;
}

function queryUrl(format, limit) {
  const q = queryParams(limit).toString();
  return `/merged.${format}${q ? `?${q}` : ""}`;
}

function parseCsv(text) {
  const rows = []; let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n") { row.push(field.replace(/\r$/, "")); rows.push(row); row = []; field = ""; }
    else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

function updateQueryLink() {
  const limit = num("q-limit");
  const url = queryUrl($("q-format").value, limit);
  const a = $("query-link");
  a.href = url; a.textContent = url;
  a.setAttribute("download", `merged.${$("q-format").value}`);
}

async function showQueryRows(e) {
  e.preventDefault();
  updateQueryLink();
  const limit = num("q-limit");
  const preview = queryUrl("csv", limit === undefined ? 20 : Math.min(limit, 20));
  $("query-info").textContent = "…";
  try {
    const resp = await api(preview);
    if (!resp.ok) { $("query-info").textContent = `${resp.status}: ${await errorText(resp)}`; return; }
    const rows = parseCsv(await resp.text());
    const [head, ...body] = rows;
    const tr = document.createElement("tr");
    tr.append(...(head || []).map((c) => Object.assign(document.createElement("th"), { textContent: c })));
    $("query-head").replaceChildren(tr);
    $("query-body").replaceChildren(...body.map((r) => {
      const x = document.createElement("tr");
      x.append(...r.map((v) => Object.assign(document.createElement("td"), { textContent: v })));
      return x;
    }));
    $("query-info").textContent = `first ${body.length} row(s) of ${preview}`;
  } catch (err) {
    $("query-info").textContent = `gateway unreachable: ${err}`;
  }
}

$("s-profile").addEventListener("change", showProfileParams);
$("scenario-form").addEventListener("submit", startScenario);
$("query-form").addEventListener("submit", showQueryRows);
$("query-form").addEventListener("input", updateQueryLink);
showProfileParams();
updateQueryLink();
drawRate();
setInterval(followStatus, 500);
