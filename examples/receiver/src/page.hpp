// GET /: one self-contained page (no external assets) that shows the latest alarms and each device's state,
// refreshed from /api/... every 2 s. An alarm is one row however often it was reported: its re-reports (after a
// restart of the gateway or of its driver) update the row, "re-reported ×N, last at …".
#pragma once

#include <string_view>

namespace firelink::receiver {

inline constexpr std::string_view page_html = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>firelink-receiver</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
  th { background: #f4f4f4; }
  .critical { color: #b00020; font-weight: bold; }
  .major { color: #c25e00; }
  .active { background: #fff0f0; }
  .muted { color: #888; }
  #status { color: #888; }
  code { font-size: .95em; }
</style>
</head>
<body>
<h1>firelink-receiver</h1>
<div id="status">loading…</div>
<h2>Latest alarms and pre-alarms</h2>
<table><thead><tr><th>received</th><th>gateway</th><th>device</th><th>kind</th><th>code</th><th>severity</th><th>message</th><th>site</th><th>reports</th></tr></thead>
<tbody id="alarms"><tr><td colspan="9" class="muted">none yet</td></tr></tbody></table>
<h2>Devices</h2>
<table><thead><tr><th>gateway</th><th>device</th><th>class</th><th>last event</th><th>active conditions</th><th>last seen</th><th>events</th></tr></thead>
<tbody id="devices"><tr><td colspan="7" class="muted">none yet</td></tr></tbody></table>
<h2>Commands</h2>
<table><thead><tr><th>id</th><th>gateway</th><th>device</th><th>name</th><th>status</th><th>result</th></tr></thead>
<tbody id="commands"><tr><td colspan="6" class="muted">none yet</td></tr></tbody></table>
<script>
"use strict";
function esc(v) {
  return String(v === undefined || v === null ? "" : v).replace(/[&<>"']/g,
    c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function when(ms) { return ms === undefined || ms === null ? "" : new Date(ms).toLocaleString(); }
function site(s) { return s ? Object.values(s).map(esc).join(" / ") : ""; }
function rereported(n, last_ms) {
  return "re-reported \u00d7" + esc(n) + (last_ms === undefined ? "" : ", last at " + esc(when(last_ms)));
}
function rows(id, items, cols, render) {
  const body = document.getElementById(id);
  body.innerHTML = items.length ? items.map(render).join("")
                                : '<tr><td colspan="' + cols + '" class="muted">none yet</td></tr>';
}
async function get(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
async function refresh() {
  try {
    const [alarms, devices, commands, stats] = await Promise.all([
      get("/api/events?kind=alarm,pre_alarm&rereports=fold&limit=50"), get("/api/devices"),
      get("/api/commands?limit=20"), get("/api/stats")]);
    // A re-reported alarm shows what its latest report says (it may have raised the severity).
    rows("alarms", alarms, 9, e => { const now = e.rereports ? e.rereports.last : e;
      return '<tr><td>' + esc(when(e.stored_ms)) + '</td><td>' + esc(e.gateway) +
      '</td><td>' + esc(e.device) + '</td><td>' + esc(e.kind) + '</td><td><code>' + esc(e.code) +
      '</code></td><td class="' + esc(now.severity) + '">' + esc(now.severity) + '</td><td>' +
      esc(now.event && now.event.message) + '</td><td>' + site(e.site) + '</td><td>' +
      (e.rereports ? rereported(e.rereports.count, e.rereports.last.stored_ms) : "") + '</td></tr>'; });
    rows("devices", devices, 7, d => '<tr class="' + (d.active.length ? "active" : "") + '"><td>' +
      esc(d.gateway) + '</td><td>' + esc(d.device) + '</td><td>' + esc(d["class"]) + '</td><td>' +
      esc(d.last_event.kind) + ' <code>' + esc(d.last_event.code) + '</code></td><td>' +
      (d.active.map(a => '<span class="' + esc(a.severity) + '">' + esc(a.kind) + ' <code>' + esc(a.code) +
        '</code></span>' + (a.rereports ? ' <span class="muted">' + rereported(a.rereports) + '</span>' : ""))
        .join("<br>") || '<span class="muted">none</span>') + '</td><td>' +
      esc(when(d.last_seen_ms)) + '</td><td>' + esc(d.events) + '</td></tr>');
    rows("commands", commands, 6, c => '<tr><td>' + esc(c.id) + '</td><td>' + esc(c.gateway) + '</td><td>' +
      esc(c.device) + '</td><td>' + esc(c.name) + '</td><td>' + esc(c.status) + '</td><td>' +
      esc(c.result ? c.result.message || c.result.code : "") + '</td></tr>');
    const t = stats.total;
    document.getElementById("status").textContent = t.in_store + " events stored, " + t.duplicates +
      " duplicates, " + t.rejects + " rejected, " + t.batches + " batches · updated " +
      new Date().toLocaleTimeString();
  } catch (err) {
    document.getElementById("status").textContent = "cannot refresh: " + err.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)html";

}  // namespace firelink::receiver
