"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const { api, el, show } = od;
  const $ = (id) => document.getElementById(id);
  let filled = false;
  // The listing shown: its filter, how far it reaches (`through`, fixed at
  // its first page so entries written meanwhile shift nothing) and where
  // the next page starts (`before`, the last entry's seq).
  let through = null;
  let nextBefore = null;
  let shown = 0;
  // One request at a time: a newer filter aborts the older one, and an
  // answer that is not for the latest request is dropped.
  let generation = 0;
  let inFlight = null;

  function filterParams() {
    const v = od.form($("audit-filter"));
    const params = new URLSearchParams();
    for (const name of ["action", "operator", "outcome", "subject"]) if (v[name].trim()) params.set(name, v[name].trim());
    if (v.since) params.set("since", String(Date.parse(v.since + "T00:00:00Z") / 1000));
    if (v.until) params.set("until", String(Date.parse(v.until + "T00:00:00Z") / 1000 + 86400));
    params.set("limit", "200");
    return params;
  }

  // Unix times in the detail (by name) as local time, with UTC on hover.
  const TIME_FIELDS = new Set(["at", "time", "valid_from", "valid_until", "accepted_from", "accepted_until", "retry_at", "expires_at", "purge_after", "until_unix", "since", "locked_until", "created_at", "decided_at"]);
  const isTime = (k, v) => (TIME_FIELDS.has(k) || /_(at|until|from)$/.test(k)) && typeof v === "number" && v > 946684800 && v < 32503680000;
  function detailNodes(detail) {
    if (detail === null || typeof detail !== "object") return [String(detail ?? "")];
    const nodes = [];
    for (const [k, v] of Object.entries(detail)) {
      if (nodes.length) nodes.push(" · ");
      nodes.push(k + ": ");
      nodes.push(isTime(k, v) ? od.when(v) : (typeof v === "object" ? JSON.stringify(v) : String(v)));
    }
    return nodes;
  }

  async function load(append) {
    if (append && nextBefore === null) return;
    const mine = ++generation;
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    const params = filterParams();
    if (append) { params.set("through", String(through)); params.set("before", String(nextBefore)); }
    $("more").disabled = true;
    $("audit").setAttribute("aria-busy", "true");
    try {
      const answer = await api("GET", "/api/v1/audit?" + params.toString(), undefined, { signal: controller.signal });
      if (mine !== generation) return;
      if (!filled) {
        for (const action of answer.actions) $("action").append(el("option", { value: action }, action));
        for (const operator of answer.operators) $("operator").append(el("option", { value: operator }, operator));
        filled = true;
      }
      const body = $("audit").querySelector("tbody");
      if (!append) { body.replaceChildren(); shown = 0; through = answer.through; }
      for (const e of answer.entries) {
        body.append(el("tr", { class: e.outcome === "refused" ? "refused" : null, "data-seq": e.seq },
          el("td", { class: "mono" }, e.seq), el("td", {}, od.when(e.at)), el("td", {}, e.operator),
          el("td", { class: "mono" }, e.action), el("td", {}, el("span", { class: "pill outcome-" + e.outcome }, e.outcome)),
          el("td", {}, e.user || ""), el("td", { class: "mono" }, e.credential || ""), el("td", {}, e.ticket || ""),
          el("td", { class: "detail" }, detailNodes(e.detail))));
      }
      shown += answer.entries.length;
      nextBefore = answer.next_before;
      $("audit-total").textContent = answer.total + " matching entr" + (answer.total === 1 ? "y" : "ies") + ", " + shown + " shown";
      $("more").classList.toggle("hidden", nextBefore === null);
      show("audit-message", "");
    } catch (e) {
      if (e.name === "AbortError" || mine !== generation) return;
      show("audit-message", e.message, "error");
    } finally {
      if (mine === generation) {
        inFlight = null;
        $("more").disabled = false;
        $("audit").removeAttribute("aria-busy");
      }
    }
  }
  // Typing waits for a pause; choosing a value loads at once.
  let typing = null;
  $("audit-filter").addEventListener("input", (event) => {
    clearTimeout(typing);
    if (event.target.id === "subject") typing = setTimeout(() => load(false), 300);
    else load(false);
  });
  $("audit-filter").addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(typing); load(false); });
  $("more").addEventListener("click", () => load(true));

  let head = null;
  $("verify-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const expected = $("expect-head").value.trim();
    try {
      const report = await api("GET", "/api/v1/audit/verify" + (expected ? "?expect_head=" + encodeURIComponent(expected) : ""));
      head = report.head;
      if (report.intact) show("verify-message", "Audit log intact: " + report.entries + " entries. Keep the head below somewhere else to catch removed entries later.", "ok");
      else show("verify-message", "The audit log was tampered with — " + report.problem, "error");
      $("head").textContent = head || "";
      $("head-actions").classList.toggle("hidden", !head || !report.intact);
    } catch (e) { show("verify-message", e.message, "error"); }
  });
  $("head-copy").addEventListener("click", () => { if (head) od.copy(head, "Head"); });
  load(false);
});
