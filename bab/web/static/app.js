// BAB web console: the page's own script (no library, no external resource). It reads the JSON API and
// listens to the event stream (/api/events); the plots are SVG drawn by the server.
"use strict";

const state = { roles: [], token: null, writeToken: null, gwMeter: null, adMeter: null, sim: false };
const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
    "'": "&#39;" }[c]));
}

function authHeaders() {
  const t = state.token || state.writeToken;
  return t ? { Authorization: "Bearer " + t } : {};
}

async function api(path, body) {
  const opts = { headers: authHeaders() };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ error: "not JSON (HTTP " + r.status + ")" }));
  if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
  return data;
}

function show(el, text, error) {
  el.textContent = text;
  el.classList.toggle("error", !!error);
}

function values(readings) {
  return (readings || []).slice(0, 3).map((r) => esc(r.obis.replace("*255", "")) + " = " + esc(r.value) + " " +
    esc(r.unit)).join("<br>");
}

function age(t) {
  if (!t) return "never";
  const s = Math.max(0, Date.now() / 1000 - t);
  return s < 90 ? s.toFixed(0) + " s ago" : (s / 60).toFixed(0) + " min ago";
}

function yn(v) { return v ? '<span class="yes">yes</span>' : '<span class="no">no</span>'; }

// --- software gateway -------------------------------------------------------------------------------

async function loadParticipants() {
  const data = await api("/api/gateway/participants");
  const body = $("bus").tBodies[0];
  body.innerHTML = "";
  for (const p of data.participants) {
    const tr = body.insertRow();
    tr.dataset.meter = p.id;
    tr.className = (p.state === "dropped" ? "dropped " : "") + (p.id === state.gwMeter ? "selected" : "");
    const errs = p.counters.link_errors + p.counters.reads_failed + p.counters.presence_missed;
    tr.innerHTML = `<td>${esc(p.id)}</td><td>${p.address === null ? "" : "0x" + p.address.toString(16)}</td>` +
      `<td>${esc(p.state)}</td><td>${yn(p.paired)}</td><td>${yn(p.tls_up)}</td><td class="values">` +
      `${values(p.readings)}</td><td>${age(p.last_read)}</td><td>${errs}</td>`;
    tr.onclick = () => selectGw(p.id);
  }
  $("bus-empty").hidden = data.participants.length > 0;
  if (!state.gwMeter && data.participants.length === 1) selectGw(data.participants[0].id);
  else if (state.gwMeter) loadGwDetail();
}

function selectGw(id) {
  state.gwMeter = id;
  for (const tr of $("bus").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.meter === id);
  $("gw-detail").hidden = false;
  $("gw-meter").textContent = id;
  loadGwDetail(true);
}

async function loadGwDetail(force) {
  const id = state.gwMeter;
  if (!id) return;
  const d = await api("/api/gateway/participants/" + encodeURIComponent(id));
  const body = $("gw-objects").tBodies[0];
  body.innerHTML = "";
  for (const r of d.readings) {
    const tr = body.insertRow();
    tr.dataset.obis = r.obis;
    tr.innerHTML = `<td>${esc(r.obis)}</td><td class="value">${esc(r.value)}</td><td>${esc(r.unit)}</td>` +
      `<td>${esc((r.status || []).join(", "))}</td>`;
  }
  for (const [obis, v] of Object.entries(d.identification)) {
    const tr = body.insertRow();
    tr.dataset.obis = obis;
    tr.innerHTML = `<td>${esc(obis)}</td><td class="value">${esc(v)}</td><td></td><td></td>`;
  }
  const c = $("gw-counters").tBodies[0];
  c.innerHTML = "";
  const rows = Object.entries(d.counters).concat([["last error", d.last_error || ""],
    ["attentions", d.attentions.join(", ")]]);
  for (const [k, v] of rows) c.insertRow().innerHTML = `<th>${esc(k.replace(/_/g, " "))}</th><td>${esc(v)}</td>`;
  if (!force && Date.now() - (state.plotsAt || 0) < 2000) return;  // plots: at most every 2 s
  state.plotsAt = Date.now();
  const q = "?t=" + Date.now() + (state.token ? "&token=" + encodeURIComponent(state.token) : "");
  const base = "/api/gateway/participants/" + encodeURIComponent(id) + "/plots/";
  for (const p of ["energy", "slots", "latency"]) $("plot-" + p).src = base + p + ".svg" + q;
  $("plot-profile-gw").src = base + "profile.svg" + q;
}

async function gwAction(kind) {
  const id = state.gwMeter;
  const out = $("gw-result");
  const path = "/api/gateway/participants/" + encodeURIComponent(id) + "/" + kind;
  let body = {};
  if (kind === "profile") body.channel = $("read-channel").value;
  if (kind === "read") {
    body.channel = $("read-channel").value;
    const objs = $("read-objects").value.split(",").map((s) => s.trim()).filter((s) => s);
    if (objs.length) body.objects = objs;
  } else if (kind === "pair") {
    body.master_key = $("master-key").value.trim();
    $("master-key").value = "";
  }
  show(out, kind + " " + id + " ...");
  try {
    const r = await api(path, body);
    if (kind === "read") {
      const lines = r.readings.map((x) => `${x.obis} = ${x.value} ${x.unit}`)
        .concat(Object.entries(r.identification).map(([o, v]) => `${o} = ${v}`));
      show(out, (r.ok ? "read over " + r.channel + ":\n" : "read failed: " + (r.error || r.attentions.join(", ")) +
        "\n") + lines.join("\n"), !r.ok);
    } else if (kind === "profile") {
      const last = r.periods[r.periods.length - 1];
      show(out, "load profile over " + r.channel + ": " + r.periods.length + " period(s)" +
        (last ? ", last " + new Date(last.time * 1000).toLocaleString() + ": " +
          Object.entries(last.values).map(([o, v]) => `${o} = ${v.value} ${v.unit}`).join(", ") : "") +
        (r.ok ? "" : "; " + (r.error || r.attentions.join(", "))), !r.ok);
    } else {
      show(out, kind + ": " + (r.ok ? "done" : "failed: " + (r.reason || r.detail)) + "; paired: " + r.paired, !r.ok);
    }
    loadParticipants();
    loadGwDetail(true);
  } catch (e) {
    show(out, kind + ": " + e.message, true);
  }
}

async function loadLink() {
  const l = await api("/api/gateway/link");
  const g = l.gateway, rx = l.receiver;
  $("link").textContent = `bus: ${g.broadcasts} allocations, ${g.checks} presence checks, ${g.timeouts} timeouts, ` +
    `${g.retransmissions} retransmissions, bad frames ${(rx.bad_hcs || 0) + (rx.bad_fcs || 0)} ` +
    `(HCS ${rx.bad_hcs || 0}, FCS ${rx.bad_fcs || 0}); events dropped for slow clients: ${l.events.dropped}`;
}

// --- adapter (bab run) --------------------------------------------------------------------------------

function renderStatus(st) {
  const body = $("meters").tBodies[0];
  body.innerHTML = "";
  for (const m of st.meters || []) {
    const tr = body.insertRow();
    tr.dataset.meter = m.id;
    tr.className = m.id === state.adMeter ? "selected" : "";
    const e = m.errors || {};
    const errs = Object.values(e).reduce((a, b) => a + (b || 0), 0);
    tr.innerHTML = `<td>${esc(m.id)}</td><td>${esc(m.lmn.state)}</td><td>${m.lmn.address === null ? "" : "0x" +
      m.lmn.address.toString(16)}</td><td>${yn(m.lmn.paired)}</td><td>${yn(m.lmn.tls_up)}</td>` +
      `<td>${esc(m.driver.type)} (${esc(m.driver.health)})</td><td class="values">${values(m.readings)}</td>` +
      `<td>${errs}</td>`;
    tr.onclick = () => selectAd(m.id);
  }
  if (!state.adMeter && (st.meters || []).length === 1) selectAd(st.meters[0].id);
}

async function loadStatus() { renderStatus(await api("/api/adapter/status")); }

function selectAd(id) {
  state.adMeter = id;
  for (const tr of $("meters").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.meter === id);
  $("ad-detail").hidden = false;
  $("ad-meter").textContent = id;
  loadAdDetail();
}

async function loadAdDetail() {
  const id = state.adMeter;
  const d = await api("/api/adapter/meters/" + encodeURIComponent(id));
  const body = $("ad-objects").tBodies[0];
  body.innerHTML = "";
  for (const o of d.objects) {
    const tr = body.insertRow();
    tr.dataset.obis = o.obis;
    tr.innerHTML = `<td>${esc(o.obis)}</td><td>0x${o.class.toString(16)}</td><td>${esc(o.description)}</td>` +
      `<td class="value">${esc(o.value ?? "")}</td><td>${esc(o.unit ?? "")}</td>`;
  }
  $("sim").hidden = !d.sim;
  $("no-sim").hidden = d.sim;
  if (d.sim) {
    api("/api/adapter/sim?meter=" + encodeURIComponent(id))
      .then((r) => { $("sim-state").textContent = JSON.stringify(r.result, null, 1); })
      .catch((e) => { $("sim-state").textContent = e.message; });
  }
  const q = "?t=" + Date.now() + (state.token ? "&token=" + encodeURIComponent(state.token) : "");
  $("plot-profile").src = "/api/adapter/meters/" + encodeURIComponent(id) + "/profile.svg" + q;
}

async function simAction(command, body) {
  const out = $("sim-result");
  try {
    const r = await api("/api/adapter/sim/" + command, Object.assign({ meter: state.adMeter }, body));
    show(out, command + ": " + JSON.stringify(r.result));
  } catch (e) {
    show(out, command + ": " + e.message, true);
  }
}

function bitValue() {
  const v = $("sim-bit").value.trim();
  return /^\d+$/.test(v) ? Number(v) : v;
}

// --- live events ----------------------------------------------------------------------------------------

let refreshTimer = null;
function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    if (state.roles.includes("gateway")) { loadParticipants().catch(() => {}); loadLink().catch(() => {}); }
  }, 50);
}

function logEvent(e) {
  if (e.kind === "status") return;
  const li = document.createElement("li");
  const d = e.data || {};
  const who = d.meter ? d.meter + " " : "";
  const rest = Object.entries(d).filter(([k]) => k !== "meter" && k !== "readings" && k !== "identification")
    .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ");
  li.dataset.kind = e.kind;
  li.textContent = new Date(e.time * 1000).toLocaleTimeString() + " " + e.kind + " " + who + rest;
  const list = $("events");
  list.insertBefore(li, list.firstChild);
  while (list.children.length > 100) list.removeChild(list.lastChild);
}

function listen() {
  const src = new EventSource("/api/events?since=0" + (state.token ? "&token=" + encodeURIComponent(state.token) : ""));
  src.onopen = () => { $("live").textContent = "live"; $("live").classList.remove("off"); };
  src.onerror = () => { $("live").textContent = "reconnecting"; $("live").classList.add("off"); };
  const kinds = ["registration", "moved", "dropped", "presence", "reading", "read-failed", "attention", "link-error",
    "pairing", "crypto-reset", "profile", "lmn", "status", "sim"];
  for (const k of kinds) {
    src.addEventListener(k, (m) => {
      const e = JSON.parse(m.data);
      logEvent(e);
      if (k === "status") {
        renderStatus(e.data.status);
      } else if (k === "lmn" || k === "sim") {
        if (state.adMeter) loadAdDetail().catch(() => {});
      } else {
        refreshSoon();
      }
    });
  }
}

// --- start ----------------------------------------------------------------------------------------------

async function start() {
  const hash = new URLSearchParams(location.hash.slice(1));
  state.token = hash.get("token") || sessionStorage.getItem("bab-token");
  let s;
  try {
    s = await (await fetch("/api/session", { headers: authHeaders() })).json();
  } catch (e) {
    $("roles").textContent = "cannot reach the API: " + e.message;
    return;
  }
  if (s.error) {
    $("token-form").hidden = false;
    $("roles").textContent = s.error;
    return;
  }
  if (state.token) sessionStorage.setItem("bab-token", state.token);
  state.roles = s.roles;
  state.writeToken = s.session_token || null;
  $("roles").textContent = s.roles.join(" + ");
  $("gateway").hidden = !s.roles.includes("gateway");
  $("adapter").hidden = !s.roles.includes("adapter");
  $("read-now").onclick = () => gwAction("read");
  $("read-profile").onclick = () => gwAction("profile");
  $("pair").onclick = () => gwAction("pair");
  $("crypto-reset").onclick = () => gwAction("crypto-reset");
  $("sim-set").onclick = () => simAction("value", { obis: $("sim-obis").value.trim(), value: $("sim-value").value.trim() });
  $("sim-bit-on").onclick = () => simAction("status", { bit: bitValue(), on: true });
  $("sim-bit-off").onclick = () => simAction("status", { bit: bitValue(), on: false });
  $("sim-fault-on").onclick = () => {
    let params = {};
    try { params = JSON.parse($("sim-params").value || "{}"); } catch (e) { show($("sim-result"), "params: not JSON", true); return; }
    simAction("fault", { kind: $("sim-fault").value.trim(), params });
  };
  $("sim-clear").onclick = () => simAction("clear", {});
  $("sim-run").onclick = async () => {
    try {
      const r = await api("/api/adapter/sim/scenario", { scenario: $("sim-scenario").value });
      show($("sim-result"), "scenario: " + JSON.stringify(r.result));
    } catch (e) { show($("sim-result"), "scenario: " + e.message, true); }
  };
  if (s.roles.includes("gateway")) { await loadParticipants(); await loadLink(); }
  if (s.roles.includes("adapter")) await loadStatus();
  listen();
  document.body.dataset.ready = "1";
}

$("token-form").onsubmit = (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("bab-token", $("token").value.trim());
  location.hash = "";
  location.reload();
};

start();
