"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const { api, el, show } = od;
  const $ = (id) => document.getElementById(id);
  let users = [];

  function stateChip(token) {
    return el("span", { class: "pill state-" + token.state }, token.state + (token.custody === "purged" ? " · purged" : ""));
  }

  function choose(user) {
    $("user").value = user.upn;
    const select = $("token");
    select.replaceChildren(el("option", { value: "" }, "the user's only usable token"));
    for (const token of user.tokens) {
      const usable = token.custody === "held" && token.state !== "lost" && token.state !== "retired";
      select.append(el("option", { value: token.reference, disabled: !usable },
        token.reference + " — " + token.state + (usable ? "" : " (no codes)")));
    }
    $("verified-by").focus();
  }

  let searchTimer = null;
  async function search() {
    const q = $("search").value.trim();
    const box = $("results");
    if (q.length < 2) { box.replaceChildren(); show("search-message", ""); return; }
    try {
      users = (await api("GET", "/api/v1/users?q=" + encodeURIComponent(q))).users;
      box.replaceChildren();
      if (!users.length) { show("search-message", "No user matches '" + q + "'.", "warn"); return; }
      show("search-message", "");
      for (const user of users) {
        const tokens = user.tokens.length ? user.tokens.map((t) => el("div", { class: "token-line" },
          el("span", { class: "mono" }, t.reference), " ", stateChip(t))) : [el("div", { class: "hint" }, "no token")];
        box.append(el("div", { class: "result" },
          el("div", {}, el("strong", {}, user.upn), user.display_name ? " · " + user.display_name : ""),
          ...tokens,
          el("button", { type: "button", class: "secondary small", onclick: () => choose(user) }, "Choose")));
      }
    } catch (e) { show("search-message", e.message, "error"); }
  }
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 250); });
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });

  let grant = null;
  $("reveal-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = od.form(event.target);
    const request = { user: values.user, verified_by: values.verified_by, ticket: values.ticket, verifier: values.verifier };
    if (values.token) request.token = values.token;
    if (Number(values.valid_for) > 0) request.valid_for = Number(values.valid_for);
    $("reveal-button").disabled = true;
    try {
      grant = await api("POST", "/api/v1/helpdesk/code", request);
      od.learnTime(grant.time);
      show("reveal-message", "");
      $("grant-code").textContent = od.grouped(grant.code);
      $("grant-code").dataset.code = grant.code;
      $("grant-for").textContent = "Code for " + grant.user + " · " + (grant.serial ? grant.serial + (grant.slot === null ? "" : ":" + grant.slot) : "#" + grant.credential_id);
      $("grant-note").textContent = grant.remaining_this_hour + " more code(s) for this user this hour. Verifier " + grant.verifier + ".";
      $("grant").classList.remove("hidden");
      tick();
    } catch (e) {
      $("grant").classList.add("hidden");
      grant = null;
      show("reveal-message", e.message, "error");
    } finally { $("reveal-button").disabled = false; }
  });
  $("grant-copy").addEventListener("click", () => { if (grant) od.copy(grant.code, "Code"); });

  function tick() {
    if (!grant) return;
    const now = od.now();
    const left = grant.accepted_until - now;
    const span = grant.accepted_until - grant.valid_from;
    $("grant-fill").style.width = Math.max(0, Math.min(100, (left / span) * 100)) + "%";
    $("grant-bar").classList.toggle("late", left < 20);
    if (left <= 0) {
      $("grant-countdown").textContent = "expired: the sign-in no longer accepts this code. Reveal a new one if needed.";
      $("grant-code").classList.add("expired");
      return;
    }
    $("grant-code").classList.remove("expired");
    const current = grant.valid_until > now ? "current for " + od.seconds(grant.valid_until - now) + "; " : (grant.valid_from > now ? "current from " + od.clock(grant.valid_from) + "; " : "");
    $("grant-countdown").textContent = current + "accepted until " + od.clock(grant.accepted_until) + " (" + od.seconds(left) + ")";
  }
  setInterval(tick, 250);

  $("identify-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const codes = [$("code1").value, $("code2").value].map((c) => c.trim()).filter(Boolean);
    try {
      const hits = await api("POST", "/api/v1/identify", { codes });
      const body = $("identify-table").querySelector("tbody");
      body.replaceChildren();
      for (const hit of hits) {
        body.append(el("tr", {}, el("td", { class: "mono" }, hit.credential), el("td", {}, hit.user || "—"),
          el("td", {}, el("span", { class: "pill" }, hit.state)), el("td", { class: "mono" }, hit.offset > 0 ? "+" + hit.offset : hit.offset)));
      }
      $("identify-table").classList.toggle("hidden", !hits.length);
      show("identify-message", hits.length ? (hits.length === 1 ? "One token matches." : hits.length + " tokens match: ask for the next code to tell them apart.") : "No held secret shows this code within ±2 steps.", hits.length === 1 ? "ok" : "warn");
    } catch (e) { show("identify-message", e.message, "error"); }
  });

  $("deliver-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = od.form(event.target);
    try {
      const done = await api("POST", "/api/v1/tokens/" + encodeURIComponent(values.token.trim()) + "/deliver", { code: values.code });
      const drift = done.drift_steps === 0 ? "on time" : Math.abs(done.drift_steps) + " step(s) " + (done.drift_steps < 0 ? "behind" : "ahead");
      show("deliver-message", done.credential + " delivered (" + drift + "); " + (done.purged ? "secret purged." : "secret purged after the grace period."), "ok");
      event.target.reset();
    } catch (e) { show("deliver-message", e.message, "error"); }
  });
});
