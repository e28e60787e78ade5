"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const { api, el, show } = od;
  const $ = (id) => document.getElementById(id);
  let offset = 0;
  let filled = false;

  function query() {
    const v = od.form($("audit-filter"));
    const params = new URLSearchParams();
    for (const name of ["action", "operator", "outcome", "subject"]) if (v[name]) params.set(name, v[name]);
    if (v.since) params.set("since", String(Date.parse(v.since + "T00:00:00Z") / 1000));
    if (v.until) params.set("until", String(Date.parse(v.until + "T00:00:00Z") / 1000 + 86400));
    params.set("offset", String(offset));
    params.set("limit", "200");
    return params.toString();
  }

  function detailText(detail) {
    if (detail === null || typeof detail !== "object") return String(detail ?? "");
    return Object.entries(detail).map(([k, v]) => k + ": " + (typeof v === "object" ? JSON.stringify(v) : v)).join(" · ");
  }

  async function load(append) {
    if (!append) offset = 0;
    try {
      const answer = await api("GET", "/api/v1/audit?" + query());
      if (!filled) {
        for (const action of answer.actions) $("action").append(el("option", { value: action }, action));
        for (const operator of answer.operators) $("operator").append(el("option", { value: operator }, operator));
        filled = true;
      }
      const body = $("audit").querySelector("tbody");
      if (!append) body.replaceChildren();
      for (const e of answer.entries) {
        body.append(el("tr", { class: e.outcome === "refused" ? "refused" : null },
          el("td", { class: "mono" }, e.seq), el("td", {}, od.utc(e.at).replace(" UTC", "")), el("td", {}, e.operator),
          el("td", { class: "mono" }, e.action), el("td", {}, el("span", { class: "pill outcome-" + e.outcome }, e.outcome)),
          el("td", {}, e.user || ""), el("td", { class: "mono" }, e.credential || ""), el("td", {}, e.ticket || ""),
          el("td", { class: "detail" }, detailText(e.detail))));
      }
      offset += answer.entries.length;
      $("audit-total").textContent = answer.total + " matching entr" + (answer.total === 1 ? "y" : "ies") + ", " + offset + " shown";
      $("more").classList.toggle("hidden", offset >= answer.total);
      show("audit-message", "");
    } catch (e) { show("audit-message", e.message, "error"); }
  }
  $("audit-filter").addEventListener("input", () => load(false));
  $("audit-filter").addEventListener("submit", (e) => { e.preventDefault(); load(false); });
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
