/* Atalaya analyst workspace. Talks only to the node's HTTP API; every asset is served locally. */
"use strict";

(function () {
  const CHECKPOINT_KEY = "atalaya.checkpoint";
  const LOG_KEY_KEY = "atalaya.logkey";
  const PAGE = 50;
  const COMPLIANCE_COLOURS = { compliant: "#2e9d57", violation: "#d0453a", unverifiable: "#9b59b6", "no-host": "#3b7dd8", unchecked: "#8a8f98" };
  // the session lives in an HttpOnly cookie the page never sees; state-changing requests echo the CSRF token
  const state = { me: null, csrf: null, map: null, days: [], day: null, layers: {}, truth: false, jobsTimer: null };
  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v === null || v === undefined ? "" : v)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

  // Sizes and colours set through the CSSOM: the Content-Security-Policy forbids inline style attributes.
  function paint(root) {
    if (!root.querySelectorAll) return;
    const els = root.matches && root.matches("[data-w],[data-bg]") ? [root] : [];
    els.concat([...root.querySelectorAll("[data-w],[data-bg]")]).forEach((el) => {
      if (el.dataset.w && /^[0-9.]+(px|%)$/.test(el.dataset.w)) el.style.width = el.dataset.w;
      if (el.dataset.bg && /^#[0-9a-fA-F]{3,8}$/.test(el.dataset.bg)) el.style.background = el.dataset.bg;
    });
  }
  new MutationObserver((muts) => muts.forEach((m) => m.addedNodes.forEach(paint)))
    .observe(document.documentElement, { childList: true, subtree: true });

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    const method = (opts.method || "GET").toUpperCase();
    if (state.csrf && method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = state.csrf;
    if (opts.body !== undefined && typeof opts.body !== "string") {
      headers["Content-Type"] = "application/json";
      opts = Object.assign({}, opts, { body: JSON.stringify(opts.body) });
    }
    const r = await fetch(path, Object.assign({}, opts, { headers, credentials: "same-origin" }));
    if (r.status === 401 && !path.startsWith("/api/auth/login")) {
      showLogin();
      throw new ApiError(401, "not logged in");
    }
    const ct = r.headers.get("content-type") || "";
    const body = ct.includes("json") ? await r.json() : await r.text();
    if (!r.ok) {
      const d = body && body.detail ? body.detail : body;
      throw new ApiError(r.status, typeof d === "string" ? d : JSON.stringify(d));
    }
    return body;
  }

  // ------------------------------------------------------------------ login
  function showLogin() {
    state.csrf = null;
    state.me = null;
    $("app").hidden = true;
    $("login-view").hidden = false;
    if (state.jobsTimer) { clearInterval(state.jobsTimer); state.jobsTimer = null; }
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      const r = await api("/api/auth/login", { method: "POST", body: { username: $("login-user").value, password: $("login-pass").value, session: "cookie" } });
      state.csrf = r.csrf_token;
      $("login-pass").value = "";
      await start();
    } catch (e) {
      $("login-error").textContent = e.status === 401 ? "Wrong username or password." : e.message;
    }
  });

  $("logout").addEventListener("click", async () => {
    try { await api("/api/auth/logout", { method: "POST" }); } catch (e) { /* already gone */ }
    showLogin();
  });

  async function start() {
    try {
      state.me = await api("/api/auth/me");
      state.csrf = state.me.csrf_token || null;
    } catch (e) {
      showLogin();
      return;
    }
    const own = state.me.party === state.me.node_party;
    state.me.own = own;
    state.me.canEdit = own && (state.me.role === "analyst" || state.me.role === "admin");
    $("whoami").textContent = `${state.me.username} (${state.me.role}, ${state.me.party})`;
    document.querySelectorAll(".own-only").forEach((el) => { el.hidden = !own; });
    document.querySelectorAll(".admin-only").forEach((el) => { el.hidden = !(own && state.me.role === "admin"); });
    if (!own) $("report-party").value = state.me.party;
    $("login-view").hidden = true;
    $("app").hidden = false;
    route();
  }

  // ------------------------------------------------------------------ routing
  const views = { map: showMap, sites: showSites, sorties: showSorties, log: showLog, jobs: showJobs };
  function route() {
    if ($("app").hidden) return;
    let v = (location.hash || "#map").slice(1);
    if (!views[v]) v = "map";
    document.querySelectorAll(".view").forEach((el) => { el.hidden = el.id !== "view-" + v; });
    document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.view === v));
    if (state.jobsTimer && v !== "jobs") { clearInterval(state.jobsTimer); state.jobsTimer = null; }
    views[v]().catch((e) => console.error(e));
  }
  window.addEventListener("hashchange", route);

  // ------------------------------------------------------------------ small renderers
  function kvTable(obj) {
    if (obj === null || obj === undefined) return "<span class='muted'>none</span>";
    if (typeof obj !== "object") return esc(obj);
    if (Array.isArray(obj)) {
      if (!obj.length) return "<span class='muted'>none</span>";
      if (obj.every((x) => typeof x !== "object" || x === null)) return esc(obj.join(", "));
      return obj.map(kvTable).join("<hr>");
    }
    const rows = Object.entries(obj).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${typeof v === "object" && v !== null ? kvTable(v) : esc(v)}</td></tr>`);
    return `<table class="kv">${rows.join("")}</table>`;
  }

  function barChart(title, counts, colours) {
    const entries = Object.entries(counts);
    const max = Math.max(1, ...entries.map(([, n]) => n));
    const rows = entries.map(([k, n]) => `<div class="row"><span class="lbl" title="${esc(k)}">${esc(k)}</span>` +
      `<span class="bar" data-w="${(160 * n) / max}px" data-bg="${esc((colours && colours[k]) || "#3b7dd8")}"></span>${n}</div>`);
    return `<div class="bars"><h4>${esc(title)}</h4>${rows.join("") || "<span class='muted'>none</span>"}</div>`;
  }

  function stackedChart(title, byKey) {
    const keys = Object.keys(byKey);
    const max = Math.max(1, ...keys.map((k) => Object.values(byKey[k]).reduce((a, b) => a + b, 0)));
    const rows = keys.map((k) => {
      const segs = Object.entries(byKey[k]).map(([st, n]) => `<span class="bar" title="${esc(st)}: ${n}" data-w="${(160 * n) / max}px" data-bg="${COMPLIANCE_COLOURS[st] || "#3b7dd8"}"></span>`);
      const total = Object.values(byKey[k]).reduce((a, b) => a + b, 0);
      return `<div class="row"><span class="lbl">${esc(k)}</span><span class="segs">${segs.join("")}</span>${total}</div>`;
    });
    return `<div class="bars"><h4>${esc(title)}</h4>${rows.join("") || "<span class='muted'>none</span>"}</div>`;
  }

  function pager(el, res, go) {
    const from = res.total ? res.offset + 1 : 0;
    const to = res.offset + res.items.length;
    el.innerHTML = `${from}–${to} of ${res.total} <button type="button" data-p="prev" ${res.offset === 0 ? "disabled" : ""}>‹</button>` +
      `<button type="button" data-p="next" ${res.next_offset === null ? "disabled" : ""}>›</button>`;
    el.querySelector("[data-p=prev]").onclick = () => go(Math.max(0, res.offset - res.limit));
    el.querySelector("[data-p=next]").onclick = () => go(res.next_offset);
  }

  // ------------------------------------------------------------------ map
  const LAYERS = [
    { id: "detections", label: "Detections (density)", colour: "#f28e2b", url: "/api/map/detections", daily: true, own: true, view: true },
    { id: "corridors", label: "Corridors", colour: "#b07aa1", url: "/api/map/corridors" },
    { id: "tracks", label: "Tracks", colour: "#4e79a7", url: "/api/map/tracks", daily: true },
    { id: "sorties", label: "Sorties (compliance)", colour: "#d0453a", url: "/api/map/sorties", daily: true },
    { id: "maritime", label: "Maritime events", colour: "#17becf", url: "/api/map/maritime", daily: true },
    { id: "crossings", label: "Crossings", colour: "#edc948", url: "/api/map/crossings", daily: true },
    { id: "sites", label: "Ranked sites", colour: "#e15759", url: "/api/map/sites" },
    { id: "truth-tracks", label: "Truth: tracks", colour: "#59a14f", url: "/api/map/truth/tracks", daily: true, truth: true, hidden: true },
    { id: "truth-sites", label: "Truth: sites", colour: "#59a14f", url: "/api/map/truth/sites", truth: true, hidden: true },
  ];

  function mapStyle() {
    return {
      version: 8,
      sources: {
        countries: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
        states: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
      },
      layers: [
        { id: "background", type: "background", paint: { "background-color": "#c9d7e3" } },
        { id: "countries-fill", type: "fill", source: "countries", paint: { "fill-color": ["match", ["get", "owner"], "MEX", "#f3ecdc", "USA", "#e9ece4", "#eceae6"], "fill-opacity": 1 } },
        { id: "states-line", type: "line", source: "states", paint: { "line-color": "#a9a393", "line-width": 0.6 } },
        { id: "countries-line", type: "line", source: "countries", paint: { "line-color": "#6d665a", "line-width": 1.4 } },
      ],
    };
  }

  function addDataLayers(map) {
    const empty = { type: "FeatureCollection", features: [] };
    for (const L of LAYERS) map.addSource(L.id, { type: "geojson", data: empty });
    map.addLayer({ id: "detections", type: "fill", source: "detections", paint: {
      "fill-color": ["interpolate", ["linear"], ["ln", ["+", 1, ["get", "count"]]], 0, "#ffe9a8", 3, "#f28e2b", 7, "#9c1f0f"],
      "fill-opacity": 0.6 } });
    map.addLayer({ id: "corridors", type: "fill", source: "corridors", paint: { "fill-color": "#b07aa1", "fill-opacity": 0.35, "fill-outline-color": "#7b4f72" } });
    map.addLayer({ id: "tracks", type: "line", source: "tracks", paint: { "line-color": "#4e79a7", "line-width": 1.2, "line-opacity": 0.8 } });
    map.addLayer({ id: "sorties", type: "line", source: "sorties", paint: {
      "line-color": ["match", ["get", "compliance"], "compliant", COMPLIANCE_COLOURS.compliant, "unverifiable", COMPLIANCE_COLOURS.unverifiable, "no-host", COMPLIANCE_COLOURS["no-host"], "unchecked", COMPLIANCE_COLOURS.unchecked, "violation", COMPLIANCE_COLOURS.violation, "#d0453a"],
      "line-width": 2, "line-dasharray": [2, 1] } });
    map.addLayer({ id: "maritime-lines", type: "line", source: "maritime", filter: ["==", ["geometry-type"], "LineString"], paint: { "line-color": "#17becf", "line-width": 1.5, "line-dasharray": [1, 1] } });
    map.addLayer({ id: "maritime", type: "circle", source: "maritime", filter: ["==", ["geometry-type"], "Point"], paint: { "circle-color": "#17becf", "circle-radius": 5, "circle-stroke-color": "#fff", "circle-stroke-width": 1 } });
    map.addLayer({ id: "crossings", type: "circle", source: "crossings", paint: {
      "circle-color": "#edc948", "circle-radius": ["interpolate", ["linear"], ["get", "count"], 1, 4, 50, 14], "circle-stroke-color": "#6b5a10", "circle-stroke-width": 1 } });
    map.addLayer({ id: "truth-tracks", type: "line", source: "truth-tracks", layout: { visibility: "none" }, paint: { "line-color": "#59a14f", "line-width": 1, "line-opacity": 0.7 } });
    map.addLayer({ id: "truth-sites", type: "circle", source: "truth-sites", layout: { visibility: "none" }, paint: { "circle-color": "rgba(0,0,0,0)", "circle-radius": 9, "circle-stroke-color": "#2f7a26", "circle-stroke-width": 2.5 } });
    map.addLayer({ id: "sites", type: "circle", source: "sites", paint: {
      "circle-color": ["match", ["get", "status"], "confirmed", "#2e9d57", "dismissed", "#8a8f98", "#e15759"],
      "circle-radius": ["interpolate", ["linear"], ["get", "score"], 0, 3, 1, 13], "circle-stroke-color": "#fff", "circle-stroke-width": 1.2 } });
  }

  function layerIds(id) { return id === "maritime" ? ["maritime", "maritime-lines"] : [id]; }

  async function loadLayer(L) {
    const params = new URLSearchParams();
    if (L.daily && state.day) params.set("day", state.day);
    if (L.id === "truth-tracks" && !state.day && state.days.length) params.set("day", state.days[0]);
    if (L.view) {
      // density for the cells in view, at an H3 resolution the server picks from the zoom
      const b = state.map.getBounds();
      params.set("zoom", state.map.getZoom().toFixed(2));
      params.set("bbox", [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(4)).join(","));
    }
    const url = L.url + (params.toString() ? "?" + params : "");
    const seq = (L.seq = (L.seq || 0) + 1);
    try {
      const fc = await api(url);
      if (seq !== L.seq) return; // a newer request (pan, zoom, day) owns the layer
      state.map.getSource(L.id).setData(fc);
      state.layers[L.id] = { loaded: true, count: fc.features.length, total: fc.total };
    } catch (e) {
      state.layers[L.id] = { loaded: false, error: e.message, status: e.status };
    }
    updateToggles();
  }

  function updateToggles() {
    const box = $("layer-toggles");
    box.innerHTML = "";
    for (const L of LAYERS) {
      if (L.own && !state.me.own) continue;
      if (L.truth && !state.truth) continue;
      const info = state.layers[L.id] || {};
      const visible = state.map.getLayoutProperty(L.id, "visibility") !== "none";
      const lab = document.createElement("label");
      const n = info.error ? "–" : info.count === undefined ? "…" : info.count;
      lab.innerHTML = `<input type="checkbox" data-layer="${L.id}" ${visible ? "checked" : ""}><span class="swatch" data-bg="${esc(L.colour)}"></span>${esc(L.label)} <span class="muted">(${n})</span>`;
      lab.title = info.error || "";
      lab.querySelector("input").addEventListener("change", (ev) => {
        for (const id of layerIds(L.id)) state.map.setLayoutProperty(id, "visibility", ev.target.checked ? "visible" : "none");
      });
      box.appendChild(lab);
    }
  }

  async function reloadLayers(dailyOnly) {
    // one request at a time: a partner's every release is appended to the node's transparency log
    for (const L of LAYERS.filter((x) => (!dailyOnly || x.daily) && (!x.own || state.me.own) && (!x.truth || state.truth))) {
      await loadLayer(L);
    }
    $("map-status").textContent = "updated " + new Date().toLocaleTimeString();
  }

  async function showMap() {
    if (state.map) { state.map.resize(); return; }
    const map = new maplibregl.Map({ container: "map", style: mapStyle(), center: [-104, 25], zoom: 4.2, attributionControl: false });
    state.map = map;
    window.atalaya = { map, state };
    map.addControl(new maplibregl.NavigationControl(), "bottom-right");
    map.addControl(new maplibregl.ScaleControl(), "bottom-left");
    await new Promise((resolve) => map.once("load", resolve));
    const [countries, states] = await Promise.all([api("/api/map/territories?level=country"), api("/api/map/territories?level=state")]);
    map.getSource("countries").setData(countries);
    map.getSource("states").setData(states);
    addDataLayers(map);
    if (state.me.own) {
      try { await api("/api/map/truth/sites"); state.truth = true; } catch (e) { state.truth = false; }
    }
    try { state.days = (await api("/api/map/days")).days; } catch (e) { state.days = []; }
    const slider = $("day-slider");
    slider.max = String(state.days.length);
    slider.value = "0";
    slider.addEventListener("input", () => {
      const i = Number(slider.value);
      state.day = i === 0 ? null : state.days[i - 1];
      $("day-label").textContent = state.day || "all days";
    });
    slider.addEventListener("change", () => reloadLayers(true));
    updateToggles();
    await reloadLayers(false);
    map.on("moveend", () => {
      for (const L of LAYERS.filter((x) => x.view && (!x.own || state.me.own))) loadLayer(L);
    });
    for (const L of LAYERS) {
      for (const id of layerIds(L.id)) {
        map.on("click", id, (e) => { if (e.features && e.features.length) showFeature(L.id, e.features[0], e.lngLat); });
        map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
        map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
      }
    }
    map.getCanvas().dataset.ready = "1";
  }

  $("side-close").addEventListener("click", () => { $("side-panel").hidden = true; });

  async function showFeature(layer, f, lngLat) {
    const p = f.properties || {};
    const panel = $("side-panel");
    const out = $("side-content");
    panel.hidden = false;
    out.innerHTML = `<p class="muted">loading…</p>`;
    try {
      if (layer === "sites") {
        const site = await api("/api/sites/" + encodeURIComponent(p.id));
        out.innerHTML = siteDetailHtml(site);
        bindSiteActions(out, site, () => reloadLayers(false).then(() => showFeature(layer, f, lngLat)));
      } else if (layer === "sorties") {
        const s = await api("/api/sorties/" + encodeURIComponent(p.sortie_id));
        out.innerHTML = sortieDetailHtml(s);
      } else if (layer === "tracks") {
        const t = await api("/api/tracks/" + encodeURIComponent(p.id));
        const { geometry, ...rest } = t;
        out.innerHTML = `<h3>Track ${esc(t.id)}</h3>${kvTable(rest)}<p class="muted">${geometry && geometry.coordinates ? geometry.coordinates.length : 0} vertices shown</p>`;
      } else {
        out.innerHTML = `<h3>${esc(layer)}</h3>${kvTable(p)}<p class="muted">at ${lngLat.lng.toFixed(4)}, ${lngLat.lat.toFixed(4)}</p>`;
      }
    } catch (e) {
      out.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
  }

  // ------------------------------------------------------------------ sites
  function siteDetailHtml(s) {
    const ev = s.evidence || {};
    // what raised the score: the context (capped) and each signature of illicit use
    const groups = ev.signatures ? { context: ev.context, ...ev.signatures } : (ev.groups || ev.breakdown || null);
    let breakdown = "";
    const numeric = Object.entries(groups || ev).filter(([, v]) => typeof v === "number");
    if (numeric.length) {
      const max = Math.max(1e-9, ...numeric.map(([, v]) => Math.abs(v)));
      breakdown = `<div class="bars"><h4>Score breakdown</h4>` + numeric.map(([k, v]) =>
        `<div class="row"><span class="lbl">${esc(k)}</span><span class="bar" data-w="${(150 * Math.abs(v)) / max}px" data-bg="#e15759"></span>${Number(v).toFixed(3)}</div>`).join("") + `</div>`;
    }
    return `<h3 id="detail-title">Site ${esc(s.id)}</h3>
      <p><span class="badge ${esc(s.status)}" id="detail-status">${esc(s.status)}</span> ${esc(s.kind)} · score <b>${Number(s.score || 0).toFixed(3)}</b> · rank ${esc(s.rank)}</p>
      <p>${Number(s.lat).toFixed(5)}, ${Number(s.lon).toFixed(5)} · seen ${esc(s.first_seen)} → ${esc(s.last_seen)} (${esc(s.n_days)} days)</p>
      ${s.note ? `<p><b>Note:</b> <span id="detail-note">${esc(s.note)}</span> <span class="muted">(${esc(s.status_by)}, ${esc(s.status_at)})</span></p>` : ""}
      ${state.me.canEdit ? `<div class="actions"><button type="button" data-act="confirmed">Confirm</button><button type="button" data-act="dismissed">Dismiss</button><button type="button" data-act="suspected">Reset</button>
        <textarea rows="2" placeholder="Analyst note" data-note>${esc(s.note || "")}</textarea><button type="button" data-act="note">Save note</button></div><p class="error" data-err></p>` : ""}
      ${breakdown}
      <h4>Evidence</h4>${kvTable(ev)}
      <h4>Provenance</h4>${kvTable(s.provenance)}
      <p class="muted">Marking: ${esc(s.marking)}</p>`;
  }

  function bindSiteActions(root, site, after) {
    root.querySelectorAll("[data-act]").forEach((b) => b.addEventListener("click", async () => {
      const act = b.dataset.act;
      const body = act === "note" ? { note: root.querySelector("[data-note]").value } : { status: act };
      try {
        await api("/api/sites/" + encodeURIComponent(site.id), { method: "PATCH", body });
        await after();
      } catch (e) {
        root.querySelector("[data-err]").textContent = e.message;
      }
    }));
  }

  async function showSites(offset = 0, selected = null) {
    const st = $("sites-status").value;
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (st) q.set("status", st);
    const res = await api("/api/sites?" + q);
    const tb = $("sites-table").querySelector("tbody");
    tb.innerHTML = res.items.map((s, i) => `<tr data-id="${esc(s.id)}"><td>${res.offset + i + 1}</td><td>${esc(s.id)}</td><td>${esc(s.kind)}</td>` +
      `<td>${Number(s.score || 0).toFixed(3)}</td><td><span class="badge ${esc(s.status)}">${esc(s.status)}</span></td><td>${esc(s.n_days)}</td><td>${esc((s.last_seen || "").slice(0, 16))}</td></tr>`).join("");
    tb.querySelectorAll("tr").forEach((tr) => tr.addEventListener("click", () => selectSite(tr.dataset.id, offset)));
    pager($("sites-pager"), res, (o) => showSites(o));
    if (selected) selectSite(selected, offset);
  }
  $("sites-status").addEventListener("change", () => showSites(0));

  async function selectSite(id, offset) {
    document.querySelectorAll("#sites-table tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.id === id));
    const site = await api("/api/sites/" + encodeURIComponent(id));
    const box = $("site-detail");
    box.innerHTML = siteDetailHtml(site);
    bindSiteActions(box, site, () => showSites(offset, id));
  }

  // ------------------------------------------------------------------ sorties and compliance
  function sortieDetailHtml(s) {
    const v = s.verdict || {};
    const viol = (v.violations || []).map((x) => `<li><b>${esc(x.rule || x.rule_id)}</b> (${esc(x.severity)}): ${esc(x.message)}${x.segments ? kvTable(x.segments) : ""}</li>`).join("");
    const { verdict, status, reason, worst, n_violations, hosts, audience, ...manifest } = s;
    return `<h3>Sortie ${esc(s.id)}</h3><p><span class="badge ${esc(status)}">${esc(status)}</span> ${worst ? "worst: " + esc(worst) : ""}</p>
      <p>${esc(reason)}</p>${viol ? `<h4>Violations</h4><ul>${viol}</ul>` : ""}<h4>Manifest</h4>${kvTable(manifest)}`;
  }

  async function showSorties(offset = 0) {
    const f = $("sorties-filter").value;
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (f) q.set("compliance", f);
    const res = await api("/api/sorties?" + q);
    const tb = $("sorties-table").querySelector("tbody");
    tb.innerHTML = res.items.map((s) => `<tr data-id="${esc(s.id)}"><td>${esc(s.id)}</td><td>${esc(s.platform_type)}</td><td>${esc((s.takeoff || "").slice(0, 16))}</td>` +
      `<td>${esc((s.landing || "").slice(0, 16))}</td><td>${esc(s.agreement_id)}</td><td><span class="badge ${esc(s.status)}">${esc(s.status)}</span></td><td>${esc(s.worst)}</td><td>${esc(s.n_violations)}</td><td>${esc(s.reason)}</td></tr>`).join("") ||
      (res.why_empty ? `<tr><td colspan="9" class="empty">${esc(res.why_empty)}</td></tr>` : "");
    tb.querySelectorAll("tr").forEach((tr) => tr.addEventListener("click", async () => {
      location.hash = "#map";
      const s = await api("/api/sorties/" + encodeURIComponent(tr.dataset.id));
      $("side-panel").hidden = false;
      $("side-content").innerHTML = sortieDetailHtml(s);
    }));
    $("sorties-counts").innerHTML = Object.entries(res.counts || {}).map(([k, n]) => `<span class="badge ${esc(k)}">${esc(k)} ${n}</span>`).join(" ");
    pager($("sorties-pager"), res, (o) => showSorties(o));
    updateReportLinks();
    if (!$("report").dataset.loaded) loadReport();
  }
  $("sorties-filter").addEventListener("change", () => showSorties(0));

  function updateReportLinks() {
    const party = encodeURIComponent($("report-party").value.trim().toUpperCase());
    $("report-html").href = `/api/reports/partner?party=${party}&format=html`;
    $("report-csv").href = `/api/reports/partner?party=${party}&format=csv`;
    $("report-json").href = `/api/reports/partner?party=${party}&format=json`;
  }

  async function loadReport() {
    updateReportLinks();
    const party = $("report-party").value.trim().toUpperCase();
    const box = $("report");
    try {
      const rep = await api("/api/reports/partner?party=" + encodeURIComponent(party));
      const t = rep.totals || {};
      const byStatus = {}, byRule = {};
      (rep.verdicts || []).forEach((v) => {
        byStatus[v.status] = (byStatus[v.status] || 0) + 1;
        (v.violations || []).forEach((x) => { byRule[x.rule] = (byRule[x.rule] || 0) + 1; });
      });
      const hours = {}, km = {};
      Object.entries(rep.by_day || {}).forEach(([d, g]) => { hours[d] = g.hours; km[d] = g.km; });
      box.dataset.loaded = "1";
      const why = rep.release && rep.release.why_empty ? `<p class="empty">${esc(rep.release.why_empty)}</p>` : "";
      box.innerHTML = `<p>${t.sorties_over_partner || 0} sorties of ${esc(rep.node_party)} over ${esc(rep.party)}: ` +
        `${t.compliant_over_partner || 0} compliant, ${t.violations || 0} violations, ${t.unverifiable || 0} unverifiable; ` +
        `${t.hours || 0} h, ${t.km || 0} km, deepest ${t.max_depth_km || 0} km.</p>${why}<div class="charts">` +
        barChart("By verdict", byStatus, COMPLIANCE_COLOURS) + barChart("Violations by rule", byRule) +
        barChart("Hours over the partner by day", hours) + barChart("Km over the partner by day", km) + `</div>` +
        `<iframe id="report-frame" title="partner report" sandbox="" src="/api/reports/partner?party=${encodeURIComponent(party)}&format=html"></iframe>`;
    } catch (e) {
      box.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
  }
  $("report-load").addEventListener("click", loadReport);
  $("report-party").addEventListener("input", updateReportLinks);

  // ------------------------------------------------------------------ transparency log

  async function showLog(offset = 0) {
    const cp = await api("/api/log/checkpoint");
    $("log-checkpoint").textContent = cp.checkpoint || "(no signed checkpoint yet)";
    $("log-checkpoint").dataset.size = cp.size === undefined ? "" : String(cp.size);
    const old = localStorage.getItem(CHECKPOINT_KEY);
    $("log-remembered").textContent = old ? `Remembered from your last verification: tree size ${old.split("\n")[1]}.` : "No checkpoint remembered yet: the first verification pins this one.";
    const res = await api(`/api/log/entries?limit=${PAGE}&offset=${offset}`);
    $("log-table").querySelector("tbody").innerHTML = res.items.map((e) => {
      const s = e.summary || {};
      return `<tr><td>${e.index}</td><td>${esc(e.kind)}</td><td>${esc(s.sortie)}</td><td>${esc(s.territory)}</td><td>${esc(s.text)}</td></tr>`;
    }).join("") || (res.why_empty ? `<tr><td colspan="5" class="empty">${esc(res.why_empty)}</td></tr>` : "");
    pager($("log-pager"), res, (o) => showLog(o));
  }

  // The page checks the log itself (WebCrypto): the checkpoint's Ed25519 signature against the log's verifier
  // key (pinned on first use), the newest entry's RFC 9162 inclusion proof, and, against the checkpoint
  // remembered from the last verification, the RFC 9162 consistency proof. The server only supplies data.
  const enc = new TextEncoder();
  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const hex = (u) => [...u].map((x) => x.toString(16).padStart(2, "0")).join("");
  const cat = (...parts) => { const o = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let i = 0; parts.forEach((p) => { o.set(p, i); i += p.length; }); return o; };
  const sha256 = async (u) => new Uint8Array(await crypto.subtle.digest("SHA-256", u));
  const leafHash = (leaf) => sha256(cat(Uint8Array.of(0), leaf));
  const nodeHash = (l, r) => sha256(cat(Uint8Array.of(1), l, r));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  class VerifyError extends Error {}

  async function parseVerifierKey(vkey) {
    // <name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 public key)>
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(vkey || "");
    if (!m) throw new VerifyError("malformed verifier key");
    const raw = b64(m[3]);
    if (raw.length !== 33 || raw[0] !== 1) throw new VerifyError("the verifier key is not an Ed25519 note key");
    const id = (await sha256(cat(enc.encode(m[1]), Uint8Array.of(0x0a, 0x01), raw.slice(1)))).slice(0, 4);
    if (hex(id) !== m[2]) throw new VerifyError("the verifier key's id does not match its public key");
    const key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
    return { name: m[1], id, key };
  }

  // A C2SP signed note holding a tlog-checkpoint; returns {origin, size, root} once the log's signature verifies.
  async function openCheckpoint(text, vk) {
    const cut = text.indexOf("\n\n");
    if (cut < 0) throw new VerifyError("the checkpoint is not a signed note");
    const body = text.slice(0, cut + 1);
    const lines = body.split("\n").slice(0, -1);
    if (lines.length < 3 || !/^[0-9]+$/.test(lines[1])) throw new VerifyError("malformed checkpoint body");
    let ok = false;
    for (const line of text.slice(cut + 2).split("\n")) {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m || m[1] !== vk.name) continue;
      const sig = b64(m[2]);
      if (sig.length !== 68 || !same(sig.slice(0, 4), vk.id)) continue;
      if (await crypto.subtle.verify({ name: "Ed25519" }, vk.key, sig.slice(4), enc.encode(body))) { ok = true; break; }
    }
    if (!ok) throw new VerifyError("no valid signature by the log's key on the checkpoint");
    if (lines[0] !== vk.name) throw new VerifyError(`checkpoint origin ${lines[0]} is not the key's ${vk.name}`);
    const root = b64(lines[2]);
    if (root.length !== 32) throw new VerifyError("the checkpoint's root is not a SHA-256 hash");
    return { origin: lines[0], size: Number(lines[1]), root };
  }

  // RFC 9162 §2.1.3.2
  async function verifyInclusion(index, size, leaf, path, root) {
    if (index >= size) return false;
    let fn = index, sn = size - 1, r = await leafHash(leaf);
    for (const p of path) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && same(r, root);
  }

  // RFC 9162 §2.1.4.2
  async function verifyConsistency(first, second, firstHash, secondHash, path) {
    if (first > second) return false;
    if (first === second) return path.length === 0 && same(firstHash, secondHash);
    if (first === 0) return path.length === 0;
    if (path.length === 0) return false;
    if ((first & (first - 1)) === 0) path = [firstHash, ...path];
    let fn = first - 1, sn = second - 1;
    while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    let fr = path[0], sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        fr = await nodeHash(c, fr); sr = await nodeHash(c, sr);
        if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && same(fr, firstHash) && same(sr, secondHash);
  }

  async function newestProvableIndex(size) {
    if (state.me.own) return size - 1;
    const res = await api(`/api/log/entries?limit=${PAGE}`);
    const e = res.items.find((x) => x.index < size);
    return e === undefined ? null : e.index;
  }

  $("log-verify").addEventListener("click", async () => {
    const out = $("log-verify-result");
    out.textContent = "verifying…";
    const old = localStorage.getItem(CHECKPOINT_KEY);
    try {
      if (!(window.crypto && crypto.subtle)) throw new VerifyError("this browser has no WebCrypto: verify offline with `atalaya log verify`");
      const info = await api("/api/log/checkpoint");
      if (!info.checkpoint) throw new VerifyError("the log has no signed checkpoint yet");
      const pinned = localStorage.getItem(LOG_KEY_KEY);
      if (pinned && pinned !== info.verifier_key) throw new VerifyError(`the log's key changed (pinned ${pinned}, now ${info.verifier_key}): check it out of band`);
      const vk = await parseVerifierKey(pinned || info.verifier_key);
      const cp = await openCheckpoint(info.checkpoint, vk);
      const parts = [];
      let ok = true;
      const index = await newestProvableIndex(cp.size);
      if (index === null) {
        parts.push(`<span class="muted" id="verify-inclusion">no entry of yours under the checkpoint to prove</span>`);
      } else {
        const b = await api(`/api/log/proof?index=${index}`);
        const bcp = b.checkpoint === info.checkpoint ? cp : await openCheckpoint(b.checkpoint, vk);
        const inc = b.index === index && await verifyInclusion(index, bcp.size, enc.encode(b.entry), b.inclusion_proof.map(b64), bcp.root);
        ok = ok && inc;
        parts.push(`<span class="${inc ? "ok" : "fail"}" id="verify-inclusion">inclusion ${inc ? "holds" : "FAILS"}</span> (entry ${esc(index)} of ${esc(bcp.size)})`);
      }
      let newest = info.checkpoint;
      if (old) {
        const oc = await openCheckpoint(old, vk);
        const c = await api(`/api/log/consistency?old=${oc.size}`);
        const ncp = await openCheckpoint(c.checkpoint, vk);
        const con = c.old_size === oc.size && c.new_size === ncp.size && await verifyConsistency(oc.size, ncp.size, oc.root, ncp.root, c.proof.map(b64));
        ok = ok && con;
        if (con) newest = c.checkpoint;
        parts.push(`<span class="${con ? "ok" : "fail"}" id="verify-consistency">consistency ${con ? "holds" : "FAILS"}</span> (${oc.size} → ${ncp.size})`);
      } else {
        parts.push(`<span class="muted" id="verify-consistency">no earlier checkpoint to compare</span>`);
      }
      out.innerHTML = `<span id="verify-overall" class="${ok ? "ok" : "fail"}">${ok ? "Verified in this browser" : "Verification failed"}</span>: ` +
        `signature by ${esc(vk.name)} holds; ` + parts.join("; ");
      if (ok) {
        localStorage.setItem(CHECKPOINT_KEY, newest);
        localStorage.setItem(LOG_KEY_KEY, pinned || info.verifier_key);
      }
    } catch (e) {
      out.innerHTML = `<span id="verify-overall" class="fail">Verification failed</span>: <span class="fail">${esc(e.message)}</span>`;
    }
  });

  // ------------------------------------------------------------------ jobs
  async function refreshJobs() {
    const res = await api("/api/jobs?limit=100");
    $("jobs-table").querySelector("tbody").innerHTML = res.items.map((j) => `<tr data-id="${esc(j.id)}"><td>${esc(j.id)}</td><td>${esc(j.kind)}${j.path ? " " + esc(j.path) : ""}</td><td>${esc(j.user)}</td>` +
      `<td class="job-status">${esc(j.status)}</td><td><div class="progress"><span data-w="${Math.round(100 * (j.progress || 0))}%"></span></div>${Math.round(100 * (j.progress || 0))}%</td>` +
      `<td>${esc(j.error || j.message)}</td><td>${j.result ? esc(JSON.stringify(j.result)).slice(0, 200) : ""}</td></tr>`).join("");
    return res;
  }

  async function showJobs() {
    if (!state.me.own) return;
    await refreshJobs();
    if (!state.jobsTimer) state.jobsTimer = setInterval(() => refreshJobs().catch(() => {}), 1000);
  }

  async function submitJob(body) {
    $("job-error").textContent = "";
    try { await api("/api/jobs", { method: "POST", body }); await refreshJobs(); } catch (e) { $("job-error").textContent = e.message; }
  }
  $("job-form").addEventListener("submit", (ev) => { ev.preventDefault(); submitJob({ kind: "ingest", path: $("job-path").value }); });
  $("job-analyze").addEventListener("click", () => submitJob({ kind: "analyze" }));

  // ------------------------------------------------------------------ boot
  start();
})();
