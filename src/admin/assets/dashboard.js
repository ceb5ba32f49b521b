/* global uPlot, sessionStorage, location, history, URLSearchParams */
// The Portcullis dashboard: polls the admin API of the listener that served
// it (never another host), turns running totals into per-second rates and
// draws them with uPlot. No build step: this file is served as written.
(function () {
  "use strict";

  const POLL_MS = Number(new URLSearchParams(location.search).get("interval")) || 1000;
  /** Points kept per chart: five minutes at one poll a second. */
  const KEEP = 300;
  const PALETTE = ["#58a6ff", "#f85149", "#3fb950", "#d29922", "#bc8cff", "#39c5cf", "#ff7b72", "#e3b341", "#8b949e"];

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
    }
    rebuild() {
      if (this.plot) this.plot.destroy();
      const width = Math.max(280, this.el.clientWidth || 480);
      const unit = this.unit;
      this.plot = new uPlot(
        {
          width,
          height: 200,
          cursor: { drag: { x: false, y: false } },
          scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(1, max * 1.1)] } },
          axes: [
            { stroke: "#8a98a8", grid: { stroke: "#24303c" }, ticks: { stroke: "#24303c" } },
            { stroke: "#8a98a8", grid: { stroke: "#24303c" }, ticks: { stroke: "#24303c" }, size: 60, values: (_u, vals) => vals.map((v) => fmt(v, unit)) },
          ],
          series: [{}, ...this.names.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length], width: 1.5, points: { show: false }, value: (_u, v) => (v == null ? "–" : fmt(v, unit)) }))],
        },
        [this.xs, ...this.ys],
        this.el,
      );
    }
  }

  function fmt(v, unit) {
    if (unit === "bytes") {
      const units = ["B", "KiB", "MiB", "GiB"];
      let i = 0;
      while (Math.abs(v) >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
      }
      return (Number.isInteger(v) ? v : v.toFixed(1)) + " " + units[i] + "/s";
    }
    return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
  }

  const charts = {
    decisions: new Chart($("chart-decisions"), "n"),
    rejections: new Chart($("chart-rejections"), "n"),
    connections: new Chart($("chart-connections"), "n"),
    bytes: new Chart($("chart-bytes"), "bytes"),
  };

  // ---- tables -------------------------------------------------------------

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function duration(ms) {
    const s = Math.ceil(ms / 1000);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  function renderOffenders(rows) {
    const body = $("offenders").tBodies[0];
    body.replaceChildren(
      ...rows.map((o) => {
        const tr = document.createElement("tr");
        tr.dataset.key = o.key;
        tr.append(cell(o.key), cell(String(o.count), "num"), cell(o.kinds.join(", ")), cell(new Date(o.lastSeen).toLocaleTimeString()));
        return tr;
      }),
    );
    $("offenders-empty").hidden = rows.length > 0;
  }

  function renderBans(bans) {
    const body = $("bans").tBodies[0];
    body.replaceChildren(
      ...bans.map((b) => {
        const tr = document.createElement("tr");
        tr.dataset.key = b.key;
        const btn = document.createElement("button");
        btn.className = "unban";
        btn.type = "button";
        btn.textContent = "Unban";
        btn.addEventListener("click", () => unban(b.key, btn));
        const action = document.createElement("td");
        action.append(btn);
        tr.append(cell(b.key), cell(new Date(b.until).toLocaleString()), cell(duration(b.remaining_ms), "num"), action);
        return tr;
      }),
    );
    $("bans-empty").hidden = bans.length > 0;
    $("tile-bans").textContent = String(bans.length);
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

  function rates(now, before, seconds) {
    const decisions = {};
    const rejections = {};
    for (const [name, v] of Object.entries(now.limiters)) {
      const b = before.limiters[name] || { allowed: 0, rejected: 0 };
      decisions[name] = Math.max(0, v.allowed + v.rejected - b.allowed - b.rejected) / seconds;
      // A limiter that never rejected stays off the rejections chart.
      if (v.rejected > 0) rejections[name] = Math.max(0, v.rejected - b.rejected) / seconds;
    }
    return {
      decisions,
      rejections,
      bytes: {
        in: Math.max(0, now.relayedBytes.in - before.relayedBytes.in) / seconds,
        out: Math.max(0, now.relayedBytes.out - before.relayedBytes.out) / seconds,
      },
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
      if (prev) {
        const r = rates(stats, prev, Math.max(0.001, t - prev.time / 1000));
        charts.decisions.push(t, r.decisions);
        charts.rejections.push(t, r.rejections);
        charts.bytes.push(t, r.bytes);
        $("tile-decisions").textContent = fmt(sum(r.decisions), "n");
        $("tile-rejections").textContent = fmt(sum(r.rejections), "n");
      }
      charts.connections.push(t, { active: stats.connectionsActive });
      prev = stats;
      $("tile-conns").textContent = String(stats.connectionsActive);
      renderOffenders(stats.top_offenders);
      renderBans(bans.bans);
      $("status").textContent = ready.status === "ready" ? "ready" : "not ready";
      $("status").dataset.state = ready.status;
      $("updated").textContent = "updated " + new Date(stats.time).toLocaleTimeString();
      $("error").hidden = true;
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
