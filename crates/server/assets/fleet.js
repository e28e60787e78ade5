"use strict";
// The Fleet page: the drift report as a table, one token's clock as an
// inline SVG plot (drawn here, no library), and the batteries due. The
// vault computes everything; this only lays it out.
document.addEventListener("DOMContentLoaded", () => {
  const { api, el, show } = od;
  const $ = (id) => document.getElementById(id);
  const YEAR = 31556952;
  const DAY = 86400;
  const SVG = "http://www.w3.org/2000/svg";

  // ----- small formatting helpers ------------------------------------------
  const day = (unix) => new Date(unix * 1000).toISOString().slice(0, 10);
  const month = (unix) => new Date(unix * 1000).toISOString().slice(0, 7);
  // "+12.5", "−3", "0": a sign always, the typographic minus.
  function signed(n, digits) {
    const text = Math.abs(n).toFixed(digits || 0);
    if (Number(text) === 0) return (0).toFixed(digits || 0);
    return (n > 0 ? "+" : "\u2212") + text;
  }
  const STANDING = {
    "outside": "outside now",
    "near-edge": "near the edge",
    "inside": "inside",
    "no-rate": "no rate yet",
    "unsupported": "not taken",
  };

  function horizonDays() {
    const n = parseInt($("horizon").value, 10);
    return Number.isFinite(n) && n > 0 ? Math.min(n, 36500) : 180;
  }
  function reportParams() {
    const params = new URLSearchParams();
    params.set("verifier", $("verifier").value);
    params.set("horizon_days", String(horizonDays()));
    return params;
  }

  // ----- the drift table ---------------------------------------------------
  let report = null;
  let selected = null;
  let descending = false;
  // One request at a time: an answer that is not for the latest is dropped.
  let generation = 0;

  // Already outside sorts first (it left the window before any forecast);
  // no forecast at all (no rate, never, not taken) always last.
  function forecastKey(line) {
    if (line.standing === "outside") return -Infinity;
    return line.outside_at === null || line.outside_at === undefined ? Infinity : line.outside_at;
  }
  function ordered(lines) {
    const sign = descending ? -1 : 1;
    return [...lines].sort((a, b) => {
      const ka = forecastKey(a);
      const kb = forecastKey(b);
      if (ka === kb) return a.credential.localeCompare(b.credential);
      if (ka === Infinity) return 1;
      if (kb === Infinity) return -1;
      return sign * (ka < kb ? -1 : 1);
    });
  }

  function forecastCell(line) {
    const pill = el("span", { class: "pill standing-" + line.standing }, STANDING[line.standing] || line.standing);
    if (line.standing === "outside") return el("td", {}, pill);
    if (line.outside_at) return el("td", {}, el("span", { class: "nowrap" }, day(line.outside_at)), " ", line.standing === "near-edge" ? pill : null);
    return el("td", {}, pill);
  }

  function drawTable() {
    const body = $("drift").querySelector("tbody");
    body.replaceChildren();
    if (!report) return;
    const nearOnly = $("near-only").checked;
    const lines = ordered(report.tokens.filter((l) => !nearOnly || l.standing === "outside" || l.standing === "near-edge"));
    for (const line of lines) {
      const choose = () => select(line.credential);
      const row = el("tr", {
        class: "clickable" + (line.credential === selected ? " current" : ""),
        tabindex: "0",
        "data-ref": line.credential,
        "aria-current": line.credential === selected ? "true" : null,
        onclick: choose,
        onkeydown: (event) => {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); choose(); }
        },
      },
      el("td", { class: "mono" }, line.credential),
      el("td", { class: "wide-only" }, line.user || "—"),
      el("td", { class: "wide-only" }, line.model || "—"),
      el("td", { class: "num" }, line.rate_s_per_year === null ? "—" : signed(line.rate_s_per_year, 1)),
      el("td", { class: "num wide-only" }, signed(line.offset_s) + " s"),
      forecastCell(line),
      el("td", { class: "wide-only advice" }, line.advice));
      body.append(row);
    }
    const count = (s) => report.tokens.filter((l) => l.standing === s).length;
    $("drift-total").textContent = report.tokens.length + " token(s) with sightings: " + count("outside") + " outside, " +
      count("near-edge") + " near the edge (within " + report.horizon_days + " days), " + count("inside") + " inside, " +
      count("no-rate") + " without a rate yet; " + report.without_sightings + " time-based token(s) never seen." +
      (nearOnly ? " Showing " + lines.length + "." : "");
    $("drift").dataset.loaded = "true";
  }

  async function loadReport() {
    const mine = ++generation;
    const params = reportParams();
    $("csv-link").href = "/api/v1/fleet/drift.csv?" + params.toString();
    $("drift").setAttribute("aria-busy", "true");
    try {
      const answer = await api("GET", "/api/v1/fleet/drift?" + params.toString());
      if (mine !== generation) return;
      report = answer;
      drawTable();
      show("drift-message", report.tokens.length ? "" : "No token has been seen yet: sightings come from deliveries, 'token check' and identify.", report.tokens.length ? null : "warn");
      if (selected) await plotToken(selected);
    } catch (e) {
      if (mine === generation) show("drift-message", e.message, "error");
    } finally {
      if (mine === generation) $("drift").removeAttribute("aria-busy");
    }
  }

  function setSort() {
    $("forecast-head").setAttribute("aria-sort", descending ? "descending" : "ascending");
    $("sort-arrow").textContent = descending ? "▼" : "▲";
  }
  $("sort-forecast").addEventListener("click", () => { descending = !descending; setSort(); drawTable(); });
  $("near-only").addEventListener("change", drawTable);
  $("verifier").addEventListener("change", loadReport);
  let horizonTimer = null;
  $("horizon").addEventListener("input", () => { clearTimeout(horizonTimer); horizonTimer = setTimeout(loadReport, 300); });
  $("drift-form").addEventListener("submit", (e) => { e.preventDefault(); loadReport(); });

  // ----- one token's plot --------------------------------------------------
  let plotted = null;

  async function select(reference) {
    selected = reference;
    for (const row of $("drift").querySelectorAll("tbody tr")) {
      const on = row.dataset.ref === reference;
      row.classList.toggle("current", on);
      if (on) row.setAttribute("aria-current", "true"); else row.removeAttribute("aria-current");
    }
    await plotToken(reference);
    $("plot-card").scrollIntoView({ block: "nearest" });
  }

  async function plotToken(reference) {
    const params = reportParams();
    try {
      const answer = await api("GET", "/api/v1/tokens/" + encodeURIComponent(reference) + "/sightings?" + params.toString());
      if (reference !== selected) return;
      plotted = answer;
      $("plot-card").classList.remove("hidden");
      show("plot-message", "");
      drawPlot();
    } catch (e) {
      $("plot-card").classList.remove("hidden");
      show("plot-message", e.message, "error");
    }
  }

  $("plot-close").addEventListener("click", () => {
    const was = selected;
    selected = null;
    plotted = null;
    $("plot-card").classList.add("hidden");
    drawTable();
    const row = was && $("drift").querySelector('tbody tr[data-ref="' + CSS.escape(was) + '"]');
    if (row) row.focus();
  });

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Round tick steps: seconds for the offset axis, months for the time axis.
  function niceStep(span, most, steps) {
    for (const step of steps) if (span / step <= most) return step;
    return steps[steps.length - 1];
  }

  // The fitted offset at a time, in seconds.
  const fitted = (fit, t) => fit.offset_s + fit.rate_s_per_year * (t - fit.reference) / YEAR;

  // What the plot says, in words: its text alternative.
  function summary(d, now) {
    const line = d.line;
    const points = d.sightings;
    const parts = [points.length + " sighting(s) from " + day(points[0].at) + " to " + day(points[points.length - 1].at) + "."];
    // After oathdesk set the clock, the line is fitted to the sightings
    // since; the earlier ones are drawn, faded, and said to be left out.
    const resyncAt = line && line.resynced_at;
    if (resyncAt) {
      const since = points.filter((p) => p.at >= resyncAt).length;
      parts.push("The clock was set on " + day(resyncAt) + ": the line is fitted to the " + since + " sighting(s) since, not to the " + (points.length - since) + " before.");
    }
    if (d.fit) parts.push("Fitted drift " + signed(d.fit.rate_s_per_year, 1) + " s per year; offset now about " + signed(fitted(d.fit, now)) + " s.");
    else parts.push("One sighting, or sightings less than a day apart, give no rate yet; last offset about " + signed(points[points.length - 1].offset_s) + " s.");
    if (d.window) parts.push("The " + d.verifier + " verifier accepts offsets from " + signed(d.window.behind_s) + " to " + signed(d.window.ahead_s) + " s.");
    else parts.push("The " + d.verifier + " verifier does not take " + d.period + " s tokens.");
    if (line && line.standing === "outside") parts.push("It is outside the window now.");
    else if (line && line.outside_at) parts.push("Forecast to leave the window on " + day(line.outside_at) + ".");
    else if (d.fit && d.window) parts.push("Not forecast to leave the window.");
    return parts.join(" ");
  }

  function drawPlot() {
    const d = plotted;
    if (!d || !d.sightings.length) return;
    const line = d.line;
    const now = report ? report.at : Math.floor(od.now());
    const box = $("plot-box");
    // The viewBox follows the room there is, so that text stays readable
    // on a phone; the SVG then scales to the width exactly.
    lastWidth = box.clientWidth;
    const W = Math.round(Math.max(300, Math.min(900, box.clientWidth || 760)));
    const H = W < 520 ? 280 : 340;
    const M = { left: W < 520 ? 46 : 58, right: 14, top: 22, bottom: 30 };
    const points = d.sightings;
    const half = d.period / 2;
    // Time: from the first sighting to past now, and to the crossing when
    // it is within five years (a later one is only named in the caption).
    let t0 = points[0].at;
    let t1 = Math.max(now, points[points.length - 1].at);
    const crossing = line && line.outside_at && line.outside_at <= now + 5 * YEAR ? line.outside_at : null;
    if (crossing) t1 = Math.max(t1, crossing);
    const span = Math.max(t1 - t0, 30 * DAY);
    t1 = Math.max(t1 + span * 0.08, now + span * 0.15);
    t0 -= span * 0.04;
    // Offsets: every sighting's step, the window's edges, zero, the line.
    const values = [0];
    for (const p of points) values.push(p.offset_s - half, p.offset_s + half);
    if (d.window) values.push(d.window.behind_s, d.window.ahead_s);
    // The line starts where its sightings do: at the re-sync, if any.
    const resyncAt = line && line.resynced_at ? line.resynced_at : null;
    const fitFrom = resyncAt && resyncAt > points[0].at ? resyncAt : points[0].at;
    if (d.fit) values.push(fitted(d.fit, fitFrom), fitted(d.fit, t1));
    let yMin = Math.min(...values);
    let yMax = Math.max(...values);
    const pad = Math.max(5, (yMax - yMin) * 0.08);
    yMin -= pad;
    yMax += pad;
    const x = (t) => M.left + (t - t0) / (t1 - t0) * (W - M.left - M.right);
    const y = (v) => M.top + (yMax - v) / (yMax - yMin) * (H - M.top - M.bottom);
    const clampY = (v) => Math.max(yMin, Math.min(yMax, v));
    const r = (n) => Math.round(n * 10) / 10;

    const text = summary(d, now);
    const graph = svg("svg", {
      id: "plot", viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": "plot-svg-title plot-svg-desc",
      preserveAspectRatio: "xMidYMid meet", "data-width": W,
    },
    svg("title", { id: "plot-svg-title" }, "Clock offset of " + d.credential + " over time"),
    svg("desc", { id: "plot-svg-desc" }, text));
    const area = { x: M.left, y: M.top, w: W - M.left - M.right, h: H - M.top - M.bottom };
    graph.append(svg("rect", { class: "plot-area", x: area.x, y: area.y, width: area.w, height: area.h }));

    // The window: its inside as a band, beyond its edges shaded, the edges dashed.
    if (d.window) {
      const ahead = y(clampY(d.window.ahead_s));
      const behind = y(clampY(d.window.behind_s));
      graph.append(
        svg("rect", { class: "band-out", x: area.x, y: area.y, width: area.w, height: r(Math.max(0, ahead - area.y)) }),
        svg("rect", { class: "band-in", x: area.x, y: r(ahead), width: area.w, height: r(Math.max(0, behind - ahead)) }),
        svg("rect", { class: "band-out", x: area.x, y: r(behind), width: area.w, height: r(Math.max(0, area.y + area.h - behind)) }));
      for (const [edge, label] of [[d.window.ahead_s, "window edge " + signed(d.window.ahead_s) + " s"], [d.window.behind_s, "window edge " + signed(d.window.behind_s) + " s"]]) {
        if (edge < yMin || edge > yMax) continue;
        graph.append(svg("line", { class: "edge", x1: area.x, x2: area.x + area.w, y1: r(y(edge)), y2: r(y(edge)) }),
          svg("text", { class: "edge-label", x: area.x + 6, y: r(y(edge) + (edge > 0 ? -5 : 13)) }, label));
      }
    }

    // Offset ticks.
    const yStep = niceStep(yMax - yMin, H < 300 ? 6 : 8, [5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]);
    for (let v = Math.ceil(yMin / yStep) * yStep; v <= yMax; v += yStep) {
      graph.append(svg("line", { class: v === 0 ? "zero" : "grid", x1: area.x, x2: area.x + area.w, y1: r(y(v)), y2: r(y(v)) }),
        svg("text", { class: "tick", x: area.x - 6, y: r(y(v) + 4), "text-anchor": "end" }, signed(v) + " s"));
    }
    // Time ticks, on month boundaries.
    const months = (t1 - t0) / (YEAR / 12);
    const mStep = niceStep(months, W < 520 ? 4 : 7, [1, 2, 3, 6, 12, 24, 60, 120]);
    const start = new Date(t0 * 1000);
    let tick = Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1) / 1000;
    for (let guard = 0; tick < t1 && guard < 400; guard++) {
      const date = new Date(tick * 1000);
      if ((date.getUTCFullYear() * 12 + date.getUTCMonth()) % mStep === 0) {
        graph.append(svg("line", { class: "grid", x1: r(x(tick)), x2: r(x(tick)), y1: area.y, y2: area.y + area.h }),
          svg("text", { class: "tick", x: r(x(tick)), y: area.y + area.h + 16, "text-anchor": "middle" }, mStep >= 12 ? String(date.getUTCFullYear()) : month(tick)));
      }
      tick = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1) / 1000;
    }
    graph.append(svg("text", { class: "axis-label", x: 4, y: 13 }, "clock offset (+ fast, \u2212 slow)"));

    // Now.
    graph.append(svg("line", { class: "now", x1: r(x(now)), x2: r(x(now)), y1: area.y, y2: area.y + area.h }),
      svg("text", { class: "now-label", x: r(x(now) + 4), y: area.y + area.h - 6 }, "now"));

    // The fitted line up to now, and its forecast beyond.
    // The moment oathdesk set the clock, labelled at the foot (the top holds
    // the crossing's label), right of its line unless "now" is too close.
    if (resyncAt && resyncAt > t0) {
      const roomRight = x(now) - x(resyncAt) > 72;
      graph.append(svg("line", { class: "resync", x1: r(x(resyncAt)), x2: r(x(resyncAt)), y1: area.y, y2: area.y + area.h }),
        svg("text", roomRight ? { class: "resync-label", x: r(x(resyncAt) + 4), y: area.y + area.h - 6 }
          : { class: "resync-label", x: r(x(resyncAt) - 4), y: area.y + area.h - 6, "text-anchor": "end" }, "clock set"));
    }

    if (d.fit) {
      const from = fitFrom;
      graph.append(svg("line", { class: "fit", x1: r(x(from)), y1: r(y(fitted(d.fit, from))), x2: r(x(now)), y2: r(y(fitted(d.fit, now))) }),
        svg("line", { class: "fit-ahead", x1: r(x(now)), y1: r(y(fitted(d.fit, now))), x2: r(x(t1)), y2: r(y(fitted(d.fit, t1))) }));
    }

    // The sightings: the step seen (a bar over its period) and its midpoint.
    const dots = svg("g", { class: "sightings" });
    for (const p of points) {
      const before = resyncAt !== null && p.at < resyncAt;
      const kind = before ? " before-resync" : "";
      dots.append(svg("line", { class: "obs-range" + kind, x1: r(x(p.at)), x2: r(x(p.at)), y1: r(y(p.offset_s + half)), y2: r(y(p.offset_s - half)) }),
        svg("circle", { class: "obs" + kind, cx: r(x(p.at)), cy: r(y(p.offset_s)), r: 4, "data-at": p.at },
          svg("title", {}, day(p.at) + ": step " + signed(p.offset_steps) + ", offset about " + signed(p.offset_s) + " s (" + p.source + ")" +
            (before ? "; before the clock was set, not fitted" : ""))));
    }
    $("key-before").hidden = !points.some((p) => resyncAt !== null && p.at < resyncAt);
    graph.append(dots);

    // Where the forecast crosses the edge.
    if (crossing && line.standing !== "outside") {
      const cx = r(x(crossing));
      const cy = r(y(line.edge_s));
      // The label goes on the side of the edge the line is not on: before
      // the crossing the line is inside the window, after it outside.
      const leftSide = cx > area.x + area.w * 0.6;
      const above = leftSide === line.edge_s > 0;
      graph.append(svg("circle", { class: "cross", cx, cy, r: 6 }, svg("title", {}, "leaves the window on " + day(crossing))),
        svg("text", { class: "cross-label", x: leftSide ? cx - 10 : cx + 10, y: cy + (above ? -10 : 18), "text-anchor": leftSide ? "end" : "start" }, "leaves " + day(crossing)));
    }

    box.replaceChildren(graph);
    $("plot-title").textContent = d.credential + (line && line.user ? " · " + line.user : "");
    $("plot-summary").textContent = text;
    $("plot-advice").replaceChildren();
    if (line) {
      $("plot-advice").append(el("span", { class: "pill standing-" + line.standing }, STANDING[line.standing] || line.standing), " ", line.advice);
      // The fit starts again where oathdesk last set the clock.
      if (line.resync_note) $("plot-advice").append(" (" + line.resync_note + ")");
    }
    const table = $("sightings").querySelector("tbody");
    table.replaceChildren();
    for (const p of [...points].reverse()) {
      table.append(el("tr", {}, el("td", {}, od.when(p.at)), el("td", { class: "num" }, signed(p.offset_steps)),
        el("td", { class: "num" }, signed(p.offset_s) + " s"), el("td", {}, p.source)));
    }
  }

  // Redraw at the new width (a phone turned, a window resized).
  let resizeTimer = null;
  let lastWidth = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      const width = $("plot-box").clientWidth;
      if (plotted && Math.abs(width - lastWidth) > 8) { lastWidth = width; drawPlot(); }
    }, 150);
  });

  // ----- batteries due -----------------------------------------------------
  async function loadEol() {
    const n = parseInt($("months").value, 10);
    const months = Number.isFinite(n) && n >= 0 ? Math.min(n, 1200) : 6;
    try {
      const due = await api("GET", "/api/v1/fleet/eol?months=" + months);
      const body = $("eol").querySelector("tbody");
      body.replaceChildren();
      const now = od.now();
      for (const line of due) {
        const overdue = line.due <= now;
        body.append(el("tr", {},
          el("td", { class: "mono" }, line.credential),
          el("td", { class: "wide-only" }, line.user || "—"),
          el("td", { class: "wide-only" }, [line.manufacturer, line.model].filter(Boolean).join(" ") || "—"),
          el("td", { class: "wide-only" }, el("span", { class: "pill state-" + line.state }, line.state)),
          el("td", { class: "wide-only" }, day(line.entered)),
          el("td", {}, el("span", { class: "nowrap" }, day(line.due)), overdue ? [" ", el("span", { class: "pill standing-outside" }, "overdue")] : null),
          el("td", { class: "wide-only", title: line.source }, line.life_years)));
      }
      const overdue = due.filter((l) => l.due <= now).length;
      $("eol-total").textContent = due.length + " token(s) due within " + months + " month(s), " + overdue + " of them overdue.";
      const sources = [...new Set(due.map((l) => l.source))];
      $("eol-sources").textContent = sources.length ? "Battery life: " + sources.join("; ") + ". Counted from the day the token entered the vault." : "";
      $("eol").dataset.loaded = "true";
      show("eol-message", "");
    } catch (e) { show("eol-message", e.message, "error"); }
  }
  let monthsTimer = null;
  $("months").addEventListener("input", () => { clearTimeout(monthsTimer); monthsTimer = setTimeout(loadEol, 300); });
  $("eol-form").addEventListener("submit", (e) => { e.preventDefault(); loadEol(); });

  setSort();
  loadReport();
  loadEol();
});
