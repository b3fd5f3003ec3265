// The operators' status page. Vanilla JS, no outside resources. Every piece of data goes into
// the page through textContent or an attribute, never as markup: alert titles come from senders.
"use strict";

(() => {
  const TOKEN_KEY = "alerthub.operatorToken";
  const REFRESH_MS = 5000;
  const NEW_NODE_MS = 7 * 86400 * 1000; // a node registered this recently is shown first
  const SVG_NS = "http://www.w3.org/2000/svg";
  // Okabe-Ito colours, told apart by most colour-blind readers; the legend names them anyway.
  const COUNTRY_COLOURS = {
    AL: "#D55E00", BA: "#0072B2", ME: "#E69F00", MK: "#CC79A7", RS: "#009E73", XK: "#56B4E9",
  };
  const EXTRA_COLOURS = ["#F0E442", "#8C564B", "#17BECF", "#7F3C8D", "#BCBD22", "#1B1B1B"];
  const NO_COUNTRY = "--";
  const NO_COUNTRY_COLOUR = "#9E9E9E";
  const TLP_CLASSES = {
    CLEAR: "tlp-clear", GREEN: "tlp-green", AMBER: "tlp-amber", "AMBER+STRICT": "tlp-amber-strict",
    RED: "tlp-red",
  };

  const $ = (id) => document.getElementById(id);
  const ui = {};
  let timer = null;
  let inFlight = null; // the AbortController of the refresh under way
  let lastGoodAt = null;

  class Refused extends Error {
    constructor(status) {
      super(`refused with ${status}`);
      this.status = status;
    }
  }

  // -- building nodes

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    node.append(...children.map(text));
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    node.append(...children.map(text));
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, String(value));
    }
  }

  function text(child) {
    return child instanceof Node ? child : document.createTextNode(String(child ?? ""));
  }

  // -- formatting

  function fmtTime(iso) {
    if (!iso) return "never";
    return String(iso).replace("T", " ").replace(/\.\d+/, "").replace(/Z$/, " UTC");
  }

  function fmtAgo(iso, now) {
    if (!iso) return "never";
    const seconds = Math.round((now - Date.parse(iso)) / 1000);
    if (!Number.isFinite(seconds)) return fmtTime(iso);
    if (seconds < 5) return "just now";
    if (seconds < 120) return `${seconds} s ago`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} days ago`;
  }

  function fmtDuration(seconds) {
    const s = Math.floor(seconds || 0);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s % 60} s`;
    return `${s} s`;
  }

  function fmtBytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
    return `${(n / 1024 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  // -- the token and what the page shows

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function setMessage(message, kind) {
    ui.message.textContent = message || "";
    ui.message.className = `message ${kind || ""}`.trim();
    ui.message.hidden = !message;
  }

  function clearData() {
    for (const id of ["health", "ingest", "chart", "legend", "new-nodes-list"]) {
      $(id).replaceChildren();
    }
    ui.newNodes.hidden = true;
    for (const id of ["subscriptions", "nodes", "alerts"]) $(id).tBodies[0].replaceChildren();
    ui.updated.textContent = "";
    ui.data.hidden = true;
    lastGoodAt = null;
  }

  function showLogin() {
    stop();
    clearData();
    ui.forget.hidden = true;
    ui.login.hidden = false;
    ui.tokenInput.focus();
  }

  function stop() {
    clearTimeout(timer);
    timer = null;
    if (inFlight) inFlight.abort();
    inFlight = null;
  }

  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (token() && !document.hidden) timer = setTimeout(refresh, REFRESH_MS);
  }

  function refuse(status) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
    setMessage(
      status === 403
        ? "The hub refused this token (403): it is not an operator's token. No data is shown."
        : "The hub refused this token (401): it is unknown or revoked. No data is shown.",
      "error",
    );
  }

  async function fetchJson(path, secret, signal) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${secret}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      signal,
    });
    if (response.status === 401 || response.status === 403) throw new Refused(response.status);
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return response.json();
  }

  async function refresh() {
    clearTimeout(timer);
    timer = null;
    const secret = token();
    if (!secret) {
      showLogin();
      return;
    }
    if (document.hidden || inFlight) return;
    const controller = new AbortController();
    inFlight = controller;
    try {
      const [status, listing] = await Promise.all([
        fetchJson("/v1/status", secret, controller.signal),
        fetchJson("/v1/alerts?limit=20", secret, controller.signal),
      ]);
      if (controller.signal.aborted || token() !== secret) return;
      render(status, listing.alerts || []);
      setMessage("");
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error instanceof Refused) {
        inFlight = null;
        refuse(error.status);
        return;
      }
      const reason = error instanceof Error ? error.message : String(error);
      setMessage(
        lastGoodAt
          ? `Could not refresh (${reason}); showing the status of ${lastGoodAt}. Retrying.`
          : `Could not load the status (${reason}). Retrying.`,
        "warning",
      );
    } finally {
      if (inFlight === controller) inFlight = null;
    }
    schedule();
  }

  // -- rendering

  function render(status, alerts) {
    const now = Date.parse(status.generated_at) || Date.now();
    renderHealth(status);
    renderIngest(status.ingest);
    renderChart(status.sharing_24h);
    renderSubscriptions(status.subscriptions, now);
    renderNewNodes(status.nodes, now);
    renderNodes(status.nodes, now);
    renderAlerts(alerts);
    lastGoodAt = fmtTime(status.generated_at);
    ui.updated.textContent = `Updated ${lastGoodAt} · refreshes every ${REFRESH_MS / 1000} s`;
    ui.login.hidden = true;
    ui.forget.hidden = false;
    ui.data.hidden = false;
  }

  function facts(dl, rows) {
    dl.replaceChildren();
    for (const [term, value, state] of rows) {
      dl.append(el("dt", {}, term), el("dd", { class: state || null }, value));
    }
  }

  function okOrBad(value) {
    return value === "ok" ? [value, "ok"] : [`${value ?? "unknown"} (not ok)`, "bad"];
  }

  function renderHealth(status) {
    const redis = status.redis || {};
    const rows = [];
    if (redis.reachable) {
      rows.push(["Redis", "reachable", "ok"]);
      rows.push(["Redis latency", `${Number(redis.latency_ms ?? 0).toFixed(2)} ms`]);
      const limit = redis.maxmemory ? ` of ${fmtBytes(redis.maxmemory)}` : " (no limit set)";
      rows.push(["Memory used", `${redis.used_memory_human || fmtBytes(redis.used_memory)}${limit}`]);
      const p = redis.persistence || {};
      if (p.aof_enabled) {
        const [write, state] = okOrBad(p.aof_last_write_status);
        rows.push(["Append-only file", `on, fsync ${p.appendfsync || "?"}, last write ${write}`, state]);
      } else {
        rows.push(["Append-only file", "off", "warn"]);
      }
      const [save, saveState] = okOrBad(p.rdb_last_bgsave_status);
      const saved = p.rdb_last_save_at ? `last saved ${fmtTime(p.rdb_last_save_at)}` : "none yet";
      rows.push(["Snapshots", `${saved}, status ${save}`, saveState]);
    } else {
      rows.push(["Redis", "NOT reachable: the hub cannot store or deliver", "bad"]);
    }
    const fanout = status.fanout;
    if (fanout) {
      const lag = Number(fanout.lag || 0);
      rows.push([
        "Fan-out lag",
        lag ? `${plural(lag, "event", "events")} behind (lagging)` : "0 events (up to date)",
        lag ? "warn" : "ok",
      ]);
    }
    rows.push(["Hub version", status.version || "?"]);
    rows.push(["This process up for", fmtDuration(status.uptime_s)]);
    facts(ui.health, rows);
  }

  function renderIngest(ingest) {
    if (!ingest) {
      facts(ui.ingest, [["Ingest", "not available while Redis does not answer", "bad"]]);
      return;
    }
    const last = ingest.last_minute || {};
    const reasons = Object.entries(ingest.rejected_by_reason || {})
      .filter(([, n]) => n)
      .map(([reason, n]) => `${reason} ${n}`)
      .join(", ");
    facts(ui.ingest, [
      ["Accepted", String(ingest.accepted ?? 0)],
      ["Created", String(ingest.created ?? 0)],
      ["Corroborated", String(ingest.corroborated ?? 0)],
      ["Updated", String(ingest.updated ?? 0)],
      ["Retracted", String(ingest.retracted ?? 0)],
      ["Rejected", `${ingest.rejected ?? 0}${reasons ? ` (${reasons})` : ""}`,
        ingest.rejected ? "warn" : null],
      ["Last minute",
        `${last.accepted ?? 0} accepted, ${last.corroborated ?? 0} corroborated, ` +
        `${last.rejected ?? 0} rejected`],
    ]);
  }

  function countryOrder(a, b) {
    if (a === NO_COUNTRY) return 1;
    if (b === NO_COUNTRY) return -1;
    return a.localeCompare(b);
  }

  function coloursFor(countries) {
    const colours = {};
    let extra = 0;
    for (const country of countries) {
      if (country === NO_COUNTRY) colours[country] = NO_COUNTRY_COLOUR;
      else if (COUNTRY_COLOURS[country]) colours[country] = COUNTRY_COLOURS[country];
      else colours[country] = EXTRA_COLOURS[extra++ % EXTRA_COLOURS.length];
    }
    return colours;
  }

  // Whole-number gridlines, at most five: a step of 1, 2 or 5 times a power of ten.
  function yScale(max) {
    const target = Math.max(1, max);
    let step = 1;
    for (let power = 1; ; power *= 10) {
      const found = [1, 2, 5].find((m) => Math.ceil(target / (m * power)) <= 5);
      if (found) {
        step = found * power;
        break;
      }
    }
    return { step, top: Math.ceil(target / step) * step };
  }

  function countryLabel(country) {
    return country === NO_COUNTRY ? "no country" : country;
  }

  function renderChart(sharing) {
    ui.chart.replaceChildren();
    ui.legend.replaceChildren();
    if (!sharing || !Array.isArray(sharing.hours)) {
      ui.chart.append(el("p", { class: "empty" }, "Not available while Redis does not answer."));
      return;
    }
    const hours = sharing.hours;
    const series = sharing.countries || {};
    const countries = Object.keys(series)
      .filter((c) => (series[c] || []).some((n) => n > 0))
      .sort(countryOrder);
    const colours = coloursFor(countries);
    const totals = hours.map((_, i) => countries.reduce((s, c) => s + (series[c][i] || 0), 0));
    const sums = Object.fromEntries(
      countries.map((c) => [c, series[c].reduce((s, n) => s + (n || 0), 0)]),
    );
    const grand = totals.reduce((s, n) => s + n, 0);

    const W = 960, H = 260, left = 44, right = 12, top = 12, bottom = 40;
    const plotW = W - left - right, plotH = H - top - bottom;
    const band = plotW / Math.max(1, hours.length);
    const barW = Math.max(2, band * 0.72);
    const { step, top: yTop } = yScale(Math.max(0, ...totals));
    const y = (v) => top + plotH - (v / yTop) * plotH;

    const summary = grand
      ? `${plural(grand, "alert", "alerts")} stored in the last 24 hours: ` +
        countries.map((c) => `${countryLabel(c)} ${sums[c]}`).join(", ") + "."
      : "No alerts stored in the last 24 hours.";
    const chart = svg("svg", {
      viewBox: `0 0 ${W} ${H}`, role: "img", class: "bars",
      "aria-labelledby": "chart-title chart-desc", preserveAspectRatio: "xMidYMid meet",
    });
    chart.append(
      svg("title", { id: "chart-title" }, "Alerts stored per hour and sender country"),
      svg("desc", { id: "chart-desc" }, summary),
    );

    const grid = svg("g", { class: "grid", "aria-hidden": "true" });
    for (let value = 0; value <= yTop; value += step) {
      const ty = y(value);
      grid.append(
        svg("line", { x1: left, x2: W - right, y1: ty, y2: ty }),
        svg("text", { x: left - 6, y: ty + 4, "text-anchor": "end" }, value),
      );
    }
    hours.forEach((hour, i) => {
      if (i % 3 !== 0 && i !== hours.length - 1) return;
      grid.append(svg("text", { x: left + band * i + band / 2, y: H - bottom + 16,
        "text-anchor": "middle" }, String(hour).slice(11, 16)));
    });
    grid.append(svg("text", { x: left + plotW / 2, y: H - 6, "text-anchor": "middle",
      class: "axis-title" }, "hour starting (UTC)"));
    chart.append(grid);

    const bars = svg("g", { class: "stacks" });
    hours.forEach((hour, i) => {
      let base = 0;
      const x = left + band * i + (band - barW) / 2;
      const label = `${fmtTime(hour).slice(0, 16)} UTC`;
      for (const country of countries) {
        const n = series[country][i] || 0;
        if (!n) continue;
        const rect = svg("rect", {
          class: "bar", x: x.toFixed(1), width: barW.toFixed(1),
          y: y(base + n).toFixed(1), height: (y(base) - y(base + n)).toFixed(1),
          fill: colours[country], "data-country": country, "data-hour": hour, "data-count": n,
        });
        rect.append(svg("title", {},
          `${countryLabel(country)}, hour from ${label}: ${plural(n, "alert", "alerts")}`));
        bars.append(rect);
        base += n;
      }
    });
    chart.append(bars);
    chart.append(svg("line", { class: "axis", x1: left, x2: W - right, y1: y(0), y2: y(0),
      "aria-hidden": "true" }));
    ui.chart.append(chart, chartTable(hours, countries, series, totals));

    if (!countries.length) {
      ui.legend.append(el("li", { class: "empty" }, "No alerts stored in the last 24 hours."));
      return;
    }
    for (const country of countries) {
      const swatch = svg("svg", { width: 14, height: 14, viewBox: "0 0 14 14",
        "aria-hidden": "true", class: "swatch" });
      swatch.append(svg("rect", { width: 14, height: 14, rx: 2, fill: colours[country] }));
      ui.legend.append(el("li", { "data-country": country }, swatch,
        `${countryLabel(country)}: ${sums[country]}`));
    }
  }

  // The chart's numbers as a table, for screen readers and for anyone who wants the figures.
  function chartTable(hours, countries, series, totals) {
    const head = el("tr", {}, el("th", { scope: "col" }, "Hour from (UTC)"),
      ...countries.map((c) => el("th", { scope: "col" }, countryLabel(c))),
      el("th", { scope: "col" }, "Total"));
    const body = el("tbody", {});
    hours.forEach((hour, i) => {
      body.append(el("tr", {}, el("th", { scope: "row" }, fmtTime(hour).slice(0, 16)),
        ...countries.map((c) => el("td", {}, String(series[c][i] || 0))),
        el("td", {}, String(totals[i]))));
    });
    return el("details", { class: "chart-table" },
      el("summary", {}, "The same figures as a table"),
      el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), body)));
  }

  function attentionOf(sub) {
    const reasons = [];
    if (sub.lagging) reasons.push(`lagging, ${sub.lag} behind`);
    if (sub.consecutive_failures > 0) reasons.push(`failing, ${sub.consecutive_failures} in a row`);
    if (sub.state === "paused") reasons.push("paused");
    return reasons;
  }

  function row(cells, attrs) {
    return el("tr", attrs, ...cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
  }

  function emptyRow(table, columns, message) {
    table.tBodies[0].append(el("tr", { class: "empty" }, el("td", { colspan: columns }, message)));
  }

  function renderSubscriptions(subscriptions, now) {
    const body = ui.subscriptions.tBodies[0];
    body.replaceChildren();
    if (!subscriptions) return emptyRow(ui.subscriptions, 11, "Not available.");
    if (!subscriptions.length) return emptyRow(ui.subscriptions, 11, "No subscriptions.");
    const sorted = subscriptions
      .map((sub) => [attentionOf(sub), sub])
      .sort((a, b) => (b[0].length > 0) - (a[0].length > 0) || (b[1].lag || 0) - (a[1].lag || 0));
    for (const [reasons, sub] of sorted) {
      const marker = reasons.length
        ? el("td", { class: "marker" }, `⚠ ${reasons.join("; ")}`)
        : el("td", { class: "fine" }, "ok");
      body.append(row([
        marker,
        el("td", { class: "id" }, sub.id),
        sub.owner,
        sub.delivery,
        sub.state,
        String(sub.lag ?? 0),
        String(sub.consecutive_failures ?? 0),
        String(sub.dead_letters ?? 0),
        String(sub.retrying ?? 0),
        el("td", { title: fmtTime(sub.last_delivery_at) }, fmtAgo(sub.last_delivery_at, now)),
        el("td", { title: fmtTime(sub.last_failure_at) }, fmtAgo(sub.last_failure_at, now)),
      ], { class: reasons.length ? "lagging" : null, "data-id": sub.id }));
    }
  }

  // Registered in the last 7 days by an operator (not the hub's own operator node, made at
  // its first start).
  function isNew(node, now) {
    const created = Date.parse(node.created_at);
    return Number.isFinite(created) && now - created < NEW_NODE_MS && node.registered_by !== "hub";
  }

  // Registering a node gives it what is shared with its country: every new one is listed
  // first, newest first, with who registered it.
  function renderNewNodes(nodes, now) {
    const fresh = (nodes || [])
      .filter((node) => isNew(node, now))
      .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    ui.newNodesList.replaceChildren();
    ui.newNodes.hidden = !fresh.length;
    for (const node of fresh) {
      const roles = (node.roles || []).join(", ") || "no roles";
      ui.newNodesList.append(el("li", { "data-id": node.id, class: node.revoked ? "revoked" : null },
        el("strong", { class: "id" }, node.id),
        ` (${node.name}), ${node.country || "no country"}, ${node.kind}, ${roles}: registered by `,
        el("strong", { class: "by" }, node.registered_by || "unknown"),
        " ",
        el("span", { title: fmtTime(node.created_at) }, fmtAgo(node.created_at, now)),
        node.revoked ? " (revoked since)" : ""));
    }
  }

  function renderNodes(nodes, now) {
    const body = ui.nodes.tBodies[0];
    body.replaceChildren();
    if (!nodes) return emptyRow(ui.nodes, 8, "Not available.");
    if (!nodes.length) return emptyRow(ui.nodes, 8, "No nodes.");
    for (const node of nodes) {
      const registered = node.created_at
        ? `${fmtAgo(node.created_at, now)} by ${node.registered_by || "unknown"}`
        : "unknown";
      body.append(row([
        el("td", { class: "id" }, node.revoked ? `${node.id} (revoked)` : node.id),
        node.name,
        node.country || "—",
        node.kind,
        String(node.posted ?? 0),
        el("td", { class: node.rejected ? "warn" : null }, String(node.rejected ?? 0)),
        el("td", { title: fmtTime(node.last_seen) }, fmtAgo(node.last_seen, now)),
        el("td", { title: fmtTime(node.created_at), class: isNew(node, now) ? "new" : null },
          isNew(node, now) ? `new: ${registered}` : registered),
      ], { class: node.revoked ? "revoked" : null, "data-id": node.id }));
    }
  }

  function renderAlerts(alerts) {
    const body = ui.alerts.tBodies[0];
    body.replaceChildren();
    if (!alerts.length) return emptyRow(ui.alerts, 4, "No alerts yet.");
    for (const alert of alerts) {
      const tlp = String(alert.tlp || "?");
      const badge = el("span", { class: `tlp ${TLP_CLASSES[tlp] || "tlp-unknown"}` }, `TLP:${tlp}`);
      body.append(row([
        el("td", { class: "time" }, fmtTime(alert.received_at)),
        el("td", {}, badge),
        el("td", { class: "title" }, alert.title),
        alert.sender,
      ], { "data-hub-id": alert.hub_id }));
    }
  }

  // -- wiring

  function start() {
    Object.assign(ui, {
      login: $("login"), form: $("token-form"), tokenInput: $("token"), message: $("message"),
      data: $("data"), updated: $("updated"), forget: $("forget"), health: $("health"),
      ingest: $("ingest"), chart: $("chart"), legend: $("legend"),
      subscriptions: $("subscriptions"), nodes: $("nodes"), alerts: $("alerts"),
      newNodes: $("new-nodes"), newNodesList: $("new-nodes-list"),
    });
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const secret = ui.tokenInput.value.trim();
      ui.tokenInput.value = "";
      if (!secret) return;
      sessionStorage.setItem(TOKEN_KEY, secret);
      ui.login.hidden = true;
      setMessage("Loading…", "info");
      refresh();
    });
    ui.forget.addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin();
      setMessage("The token is forgotten. Enter it again to see the status.", "info");
    });
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) {
        clearTimeout(timer);
        timer = null;
      } else if (token()) {
        refresh();
      }
    });
    if (token()) {
      setMessage("Loading…", "info");
      refresh();
    } else {
      showLogin();
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
