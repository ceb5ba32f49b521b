/* global uPlot, sessionStorage, location, history, URLSearchParams */
// The Portcullis dashboard: polls the admin API of the listener that served
// it (never another host), turns running totals into per-second rates and
// draws them with uPlot. No build step: this file is served as written.
(function () {
  "use strict";

  const POLL_MS = Number(new URLSearchParams(location.search).get("interval")) || 1000;
  /** Points kept per chart: five minutes at one poll a second. */
  const KEEP = 300;
  /** Colours for names outside the fixed vocabulary; the reds come last, as red reads as "refused". */
  const PALETTE = ["#58a6ff", "#3fb950", "#bc8cff", "#39c5cf", "#e3b341", "#db61a2", "#a5d6ff", "#7ee787", "#d29922", "#8b949e", "#ff7b72", "#f85149"];
  /**
   * One colour per limiter (and per direction and drop reason), the same in
   * every chart: those names come from the product's fixed vocabulary. Other
   * names (listeners, routes) take the next free colour of the palette the
   * first time any chart meets them, and keep it in every chart after that.
   */
  const FIXED = {
    ban: "#f85149",
    auth: "#d29922",
    destination_policy: "#bc8cff",
    deny_list: "#ff7b72",
    allow_list: "#3fb950",
    max_connections: "#39c5cf",
    max_connections_per_ip: "#58a6ff",
    connection_rate: "#e3b341",
    prefix_connection_rate: "#db61a2",
    other: "#8b949e",
    in: "#58a6ff",
    out: "#3fb950",
    "tcp in": "#58a6ff",
    "tcp out": "#3fb950",
    "udp in": "#bc8cff",
    "udp out": "#39c5cf",
    rate_cap: "#d29922",
    flow_cap: "#f85149",
  };
  const assigned = new Map();

  function colorOf(name) {
    if (Object.prototype.hasOwnProperty.call(FIXED, name)) return FIXED[name];
    let c = assigned.get(name);
    if (c === undefined) {
      c = PALETTE[assigned.size % PALETTE.length];
      assigned.set(name, c);
    }
    return c;
  }

  const $ = (id) => document.getElementById(id);
  let token = "";
  let timer = 0;

  // A token in the fragment never reaches a server log; keep it in this tab only and drop it from the address bar.
  const fromHash = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    sessionStorage.setItem("portcullis-token", decodeURIComponent(fromHash[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  token = sessionStorage.getItem("portcullis-token") || "";

  async function api(method, path) {
    const res = await fetch(path, { method, headers: { authorization: "Bearer " + token }, cache: "no-store" });
    if (res.status === 401) {
      sessionStorage.removeItem("portcullis-token");
      showLogin("That token was refused.");
      throw new Error("unauthorized");
    }
    const body = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
    if (!res.ok) throw new Error((body && body.error && body.error.message) || "HTTP " + res.status);
    return body;
  }

  function showLogin(message) {
    clearTimeout(timer);
    $("board").hidden = true;
    $("login").hidden = false;
    $("status").textContent = message || "token needed";
    $("status").dataset.state = "error";
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("portcullis-token", token);
    start();
  });

  // ---- number formats -----------------------------------------------------

  const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

  /** Bytes in the largest binary unit that keeps the number at 1 or more: "1.5 KiB". */
  function bytes(v) {
    let i = 0;
    while (Math.abs(v) >= 1024 && i < BYTE_UNITS.length - 1) {
      v /= 1024;
      i++;
    }
    const text = Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, "");
    return text + " " + BYTE_UNITS[i];
  }

  function fmt(v, unit) {
    if (unit === "bytes") return bytes(v) + "/s";
    if (unit === "seconds") return (v < 10 ? v.toFixed(2) : v.toFixed(1)) + " s/s";
    return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
  }

  /** Tick steps for a bytes axis: powers of two, so every label is a short number of its unit (512 B, 1 KiB, 1.5 KiB). */
  const BYTE_INCRS = [];
  for (let e = 0; e < 50; e++) BYTE_INCRS.push(Math.pow(2, e));
  /** Tick steps of the time axis, in seconds: whole seconds at least, labelled as clock time. */
  const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  const clockTime = (v) => new Date(v * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  /** Tick steps of a count (connections): whole numbers only. */
  const COUNT_INCRS = [];
  for (let p = 1; p <= 1e9; p *= 10) COUNT_INCRS.push(p, 2 * p, 5 * p);

  function duration(ms) {
    const s = Math.ceil(ms / 1000);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  function uptime(s) {
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + " d " + h + " h";
    if (h > 0) return h + " h " + m + " min";
    if (m > 0) return m + " min " + (s % 60) + " s";
    return s + " s";
  }

  // ---- charts -------------------------------------------------------------

  /** A chart whose series can grow (a limiter seen for the first time adds one). */
  class Chart {
    constructor(el, unit) {
      this.el = el;
      this.unit = unit;
      this.names = [];
      this.xs = [];
      this.ys = [];
      this.plot = null;
    }
    push(t, values) {
      for (const name of Object.keys(values)) {
        if (!this.names.includes(name)) {
          this.names.push(name);
          this.ys.push(this.xs.map(() => null));
          this.rebuild();
        }
      }
      this.xs.push(t);
      this.names.forEach((n, i) => this.ys[i].push(n in values ? values[n] : null));
      if (this.xs.length > KEEP) {
        this.xs.shift();
        this.ys.forEach((s) => s.shift());
      }
      if (!this.plot) this.rebuild();
      else this.plot.setData([this.xs, ...this.ys]);
      // Without a pointer over the chart, the legend shows the latest values.
      if (this.plot.cursor.idx == null) this.plot.setLegend({ idx: this.xs.length - 1 });
      this.el.dataset.points = String(this.xs.length);
      this.el.dataset.series = this.names.join(",");
      this.el.dataset.colors = this.names.map((n) => n + "=" + colorOf(n)).join(",");
      let last = 0;
      for (const s of this.ys) last = Math.max(last, s[s.length - 1] || 0);
      this.el.dataset.last = String(last);
    }
    rebuild() {
      if (this.plot) this.plot.destroy();
      const width = Math.max(280, this.el.clientWidth || 480);
      const unit = this.unit;
      const axisValue = (v) => (unit === "bytes" ? bytes(v) : unit === "seconds" ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) + " s" : fmt(v, "n"));
      const yAxis = {
        stroke: "#8a98a8",
        grid: { stroke: "#24303c" },
        ticks: { stroke: "#24303c" },
        values: (_u, vals) => vals.map(axisValue),
        // As wide as its longest label (measured), so no label is ever cut off at the left edge.
        size: (u, vals) => {
          if (!vals || vals.length === 0) return 40;
          u.ctx.font = "12px system-ui, sans-serif";
          let widest = 0;
          for (const v of vals) widest = Math.max(widest, u.ctx.measureText(v).width);
          return Math.ceil(widest) + 18;
        },
      };
      if (unit === "bytes") yAxis.incrs = BYTE_INCRS;
      if (unit === "count") yAxis.incrs = COUNT_INCRS;
      this.plot = new uPlot(
        {
          width,
          height: 200,
          cursor: { drag: { x: false, y: false } },
          scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(unit === "bytes" ? 1024 : 1, max * 1.1)] } },
          axes: [{ stroke: "#8a98a8", grid: { stroke: "#24303c" }, ticks: { stroke: "#24303c" }, incrs: TIME_INCRS, values: (_u, vals) => vals.map(clockTime), space: 80 }, yAxis],
          series: [{ value: (_u, v) => (v == null ? "–" : clockTime(v)) }, ...this.names.map((n) => ({ label: n, stroke: colorOf(n), width: 1.5, points: { show: false }, value: (_u, v) => (v == null ? "–" : fmt(v, unit)) }))],
        },
        [this.xs, ...this.ys],
        this.el,
      );
    }
  }

  const charts = {
    decisions: new Chart($("chart-decisions"), "n"),
    rejections: new Chart($("chart-rejections"), "n"),
    connections: new Chart($("chart-connections"), "count"),
    bytes: new Chart($("chart-bytes"), "bytes"),
    httpConns: new Chart($("chart-http-conns"), "n"),
    http429: new Chart($("chart-http-429"), "n"),
    udpPackets: new Chart($("chart-udp-packets"), "n"),
    udpDrops: new Chart($("chart-udp-drops"), "n"),
    bwBytes: new Chart($("chart-bw-bytes"), "bytes"),
    bwThrottle: new Chart($("chart-bw-throttle"), "seconds"),
  };

  // ---- tables -------------------------------------------------------------

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function fillTable(id, rows, toCells, emptyId) {
    const body = $(id).tBodies[0];
    body.replaceChildren(
      ...rows.map((r) => {
        const tr = document.createElement("tr");
        const { key, cells } = toCells(r);
        tr.dataset.key = key;
        tr.append(...cells);
        return tr;
      }),
    );
    if (emptyId) $(emptyId).hidden = rows.length > 0;
  }

  function renderListeners(rows) {
    fillTable("listeners", rows, (l) => {
      const state = cell(l.state, "state");
      state.dataset.state = l.state;
      return { key: l.name, cells: [cell(l.name), cell(l.kind + (l.tls ? " (tls)" : "")), cell(l.bind, "mono"), state, cell(String(l.connections), "num"), cell(String(l.accepted), "num")] };
    });
  }

  function renderHttpRoutes(rows) {
    fillTable("http-routes", rows, (r) => ({ key: r.route + "/" + r.limiter, cells: [cell(r.route), cell(r.limiter), cell(String(r.count), "num")] }), "http-routes-empty");
  }

  /** A listener kind's section shows only when the configuration has one (else one line says so). */
  function showSection(kind, present) {
    $(kind + "-body").hidden = !present;
    $(kind + "-none").hidden = present;
  }

  function renderUdp(rows) {
    fillTable(
      "udp",
      rows,
      (u) => ({
        key: u.listener,
        cells: [cell(u.listener), cell(String(u.flows), "num"), cell(String(u.packets.in), "num"), cell(String(u.packets.out), "num"), cell(String(u.dropped.rate_cap), "num"), cell(String(u.dropped.flow_cap), "num")],
      }),
    );
  }

  function renderThrottled(rows) {
    fillTable(
      "throttled",
      rows,
      (t) => ({ key: t.kind + ":" + t.key, cells: [cell(t.kind), cell(t.key, "mono"), cell(t.seconds.in.toFixed(1), "num"), cell(t.seconds.out.toFixed(1), "num")] }),
      "throttled-empty",
    );
  }

  function renderOffenders(rows) {
    fillTable(
      "offenders",
      rows,
      (o) => ({ key: o.key, cells: [cell(o.key, "mono"), cell(String(o.count), "num"), cell(o.kinds.join(", ")), cell(clockTime(o.lastSeen / 1000))] }),
      "offenders-empty",
    );
  }

  function renderBans(bans) {
    fillTable(
      "bans",
      bans,
      (b) => {
        const btn = document.createElement("button");
        btn.className = "unban";
        btn.type = "button";
        btn.textContent = "Unban";
        btn.addEventListener("click", () => unban(b.key, btn));
        const action = document.createElement("td");
        action.append(btn);
        return { key: b.key, cells: [cell(b.key, "mono"), cell(b.reason || "–"), cell(new Date(b.until).toLocaleDateString() + " " + clockTime(Date.parse(b.until) / 1000)), cell(duration(b.remaining_ms), "num"), action] };
      },
      "bans-empty",
    );
    $("tile-bans").textContent = String(bans.length);
  }

  function renderFacts(g) {
    $("fact-version").textContent = g.version;
    $("fact-uptime").textContent = uptime(g.uptime_s);
    const store = $("fact-store");
    store.textContent = g.store;
    store.dataset.state = g.store === "memory" || g.store === "redis" ? "ready" : g.store === "closed" ? "error" : "warn";
    const reload = $("fact-reload");
    if (g.reload === null) {
      reload.textContent = "none since start";
      reload.dataset.state = "none";
    } else {
      const at = clockTime(Date.parse(g.reload.at) / 1000);
      reload.textContent = g.reload.ok ? "applied at " + at : "refused at " + at + " (" + g.reload.problems + " problem" + (g.reload.problems === 1 ? "" : "s") + ")";
      reload.dataset.state = g.reload.ok ? "ok" : "failed";
    }
  }

  async function unban(key, btn) {
    btn.disabled = true;
    try {
      await api("DELETE", "/v1/bans/" + encodeURIComponent(key));
      renderBans((await api("GET", "/v1/bans?limit=100")).bans);
    } catch (err) {
      btn.disabled = false;
      showError(err);
    }
  }

  function showError(err) {
    $("error").textContent = String(err && err.message ? err.message : err);
    $("error").hidden = false;
  }

  // ---- polling ------------------------------------------------------------

  let prev = null;

  /** Per-second rate of each key of two {name: total} maps; keys missing before count from 0. */
  function perSecond(now, before, seconds) {
    const out = {};
    for (const [k, v] of Object.entries(now)) out[k] = Math.max(0, v - (before[k] || 0)) / seconds;
    return out;
  }

  /** The totals a poll carries, flattened per chart into {series: total}. */
  function totals(s) {
    const decisions = {};
    const rejected = {};
    for (const [name, v] of Object.entries(s.limiters)) {
      decisions[name] = v.allowed + v.rejected;
      // A limiter that never rejected stays off the rejections chart.
      if (v.rejected > 0) rejected[name] = v.rejected;
    }
    const udpBytes = { in: 0, out: 0 };
    const udpPackets = {};
    const udpDrops = { rate_cap: 0, flow_cap: 0 };
    for (const u of s.udp) {
      udpBytes.in += u.bytes.in;
      udpBytes.out += u.bytes.out;
      udpPackets[u.listener + " in"] = u.packets.in;
      udpPackets[u.listener + " out"] = u.packets.out;
      udpDrops.rate_cap += u.dropped.rate_cap;
      udpDrops.flow_cap += u.dropped.flow_cap;
    }
    const httpConns = {};
    for (const l of s.listeners) if (l.kind === "http") httpConns[l.name] = l.accepted;
    const http429 = {};
    for (const r of s.http.by_route) http429[r.route + " / " + r.limiter] = r.count;
    const bytesByKind = { "tcp in": s.relayedBytes.in, "tcp out": s.relayedBytes.out };
    if (s.udp.length > 0) Object.assign(bytesByKind, { "udp in": udpBytes.in, "udp out": udpBytes.out });
    return {
      decisions,
      rejected,
      bytes: bytesByKind,
      httpConns,
      http429,
      udpPackets,
      udpDrops,
      bwBytes: { in: s.bandwidth.shaped_bytes.in, out: s.bandwidth.shaped_bytes.out },
      bwThrottle: { in: s.bandwidth.throttled_seconds.in, out: s.bandwidth.throttled_seconds.out },
    };
  }

  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

  async function tick() {
    try {
      const [stats, bans, ready] = await Promise.all([
        api("GET", "/v1/stats"),
        api("GET", "/v1/bans?limit=100"),
        fetch("/readyz", { cache: "no-store" }).then((r) => r.json()),
      ]);
      const t = stats.time / 1000;
      const now = totals(stats);
      if (prev) {
        const seconds = Math.max(0.001, t - prev.time / 1000);
        const before = prev.totals;
        const rate = (k) => perSecond(now[k], before[k], seconds);
        const decisions = rate("decisions");
        const rejections = rate("rejected");
        charts.decisions.push(t, decisions);
        charts.rejections.push(t, rejections);
        charts.bytes.push(t, rate("bytes"));
        charts.httpConns.push(t, rate("httpConns"));
        const http429 = rate("http429");
        charts.http429.push(t, http429);
        charts.udpPackets.push(t, rate("udpPackets"));
        const drops = rate("udpDrops");
        charts.udpDrops.push(t, drops);
        charts.bwBytes.push(t, rate("bwBytes"));
        charts.bwThrottle.push(t, rate("bwThrottle"));
        $("tile-decisions").textContent = fmt(sum(decisions), "n");
        $("tile-rejections").textContent = fmt(sum(rejections), "n");
        $("tile-http").textContent = fmt(sum(http429), "n");
        $("tile-udp").textContent = fmt(sum(drops), "n");
      }
      const open = {};
      for (const l of stats.listeners) open[l.name] = l.connections;
      charts.connections.push(t, open);
      prev = { time: stats.time, totals: now };
      $("tile-conns").textContent = String(stats.connectionsActive);
      renderFacts(stats.gateway);
      renderListeners(stats.listeners);
      renderHttpRoutes(stats.http.by_route);
      renderUdp(stats.udp);
      showSection("http", stats.listeners.some((l) => l.kind === "http"));
      showSection("udp", stats.udp.length > 0);
      showSection("bw", stats.bandwidth.enabled || stats.bandwidth.shaped_bytes.in + stats.bandwidth.shaped_bytes.out > 0);
      renderThrottled(stats.bandwidth.top_throttled);
      $("bw-shaped").textContent = String(stats.bandwidth.shaped_connections);
      $("bw-keys").textContent = String(stats.bandwidth.keys);
      renderOffenders(stats.top_offenders);
      renderBans(bans.bans);
      const reasons = Object.entries(stats.bans_by_reason);
      $("ban-reasons").textContent = reasons.length === 0 ? "none" : reasons.map(([r, n]) => r.replace(/_/g, " ") + " " + n).join(", ");
      $("status").textContent = ready.status === "ready" ? "ready" : "not ready";
      $("status").dataset.state = ready.status;
      $("updated").textContent = "updated " + clockTime(stats.time / 1000);
      $("error").hidden = true;
      // From here on an empty table means "nothing to show", not "not known yet".
      $("board").dataset.loaded = "true";
      $("loading").hidden = true;
    } catch (err) {
      if (err.message === "unauthorized") return;
      $("status").textContent = "unreachable";
      $("status").dataset.state = "error";
      showError(err);
    }
    timer = setTimeout(tick, POLL_MS);
  }

  function start() {
    $("login").hidden = true;
    $("board").hidden = false;
    prev = null;
    clearTimeout(timer);
    tick();
  }

  if (token) start();
  else showLogin();
})();
