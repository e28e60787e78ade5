"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const { api, el, show } = od;
  const $ = (id) => document.getElementById(id);
  const self = document.querySelector('meta[name="account"]').content;
  const roles = ["admin", "helpdesk", "provisioner", "auditor"];

  async function run(what, message) {
    try { await what(); show("accounts-message", message || "", message ? "ok" : ""); await load(); }
    catch (e) { show("accounts-message", e.message, "error"); }
  }

  async function load() {
    const answer = await api("GET", "/api/v1/accounts");
    const body = $("accounts").querySelector("tbody");
    body.replaceChildren();
    for (const row of answer.accounts) {
      const web = row.web;
      const name = encodeURIComponent(row.name);
      const role = el("select", { "aria-label": "role of " + row.name }, ...roles.map((r) => el("option", { value: r, selected: web && web.role === r }, r)));
      const actions = el("td", { class: "actions" });
      if (web) {
        role.addEventListener("change", () => run(() => api("PATCH", "/api/v1/accounts/" + name, { role: role.value }), row.name + " is now " + role.value + "."));
        if (row.name !== self) {
          actions.append(
            el("button", { type: "button", class: "secondary small", onclick: () => run(() => api("PATCH", "/api/v1/accounts/" + name, { disabled: !web.disabled }), row.name + (web.disabled ? " enabled." : " disabled.")) }, web.disabled ? "Enable" : "Disable"),
            el("button", { type: "button", class: "secondary small", onclick: () => {
              const password = prompt("New first password for " + row.name + " (at least 10 characters; they change it at next sign-in)");
              if (password) run(() => api("POST", "/api/v1/accounts/" + name + "/password", { password }), "Password of " + row.name + " set; their sessions ended.");
            } }, "Reset password"),
            el("button", { type: "button", class: "danger small", onclick: () => {
              if (confirm("Remove " + row.name + " and their key slot? Rekey the vault afterwards.")) run(() => api("DELETE", "/api/v1/accounts/" + name), row.name + " removed. Now run 'oathdesk vault rekey'.");
            } }, "Remove"));
        }
      } else if (row.unlock === "passphrase") {
        actions.append(el("button", { type: "button", class: "secondary small", onclick: () => run(() => api("POST", "/api/v1/accounts", { name: row.name, role: role.value }), row.name + " can now sign in to the console.") }, "Give web account"));
      }
      body.append(el("tr", { class: web && web.disabled ? "refused" : null },
        el("td", {}, el("strong", {}, row.name), row.name === self ? " (you)" : ""),
        el("td", {}, web || row.unlock === "passphrase" ? role : "—"),
        el("td", {}, web ? (web.disabled ? "disabled" : (web.must_change_password ? "must change password" : "active")) : "command line only"),
        el("td", {}, row.sessions), el("td", {}, row.tokens),
        el("td", {}, row.unlock), el("td", {}, od.utc(row.operator_created_at)), actions));
      if (row.name === self) role.disabled = true;
    }
    const grants = await api("GET", "/api/v1/grants");
    const gbody = $("grants").querySelector("tbody");
    gbody.replaceChildren();
    for (const g of grants) {
      gbody.append(el("tr", {}, el("td", {}, g.account), el("td", {}, el("span", { class: "pill" }, g.kind)), el("td", {}, g.label || "browser"),
        el("td", { class: "mono" }, g.scopes.join(" ") || "role"), el("td", {}, od.utc(g.last_used_at)), el("td", {}, od.utc(g.expires_at)),
        el("td", {}, el("button", { type: "button", class: "danger small", onclick: () => run(() => api("DELETE", "/api/v1/grants/" + g.handle), "Ended.") }, "End"))));
    }
  }

  $("new-account-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api("POST", "/api/v1/accounts", od.form(event.target));
      show("new-account-message", made.name + " created as " + made.role + ". Give them the first password by another channel.", "ok");
      event.target.reset();
      await load();
    } catch (e) { show("new-account-message", e.message, "error"); }
  });
  $("suggest").addEventListener("click", async () => {
    const seed = await api("POST", "/api/v1/toolset/seed", { bytes: 10 });
    $("new-password").value = seed.base32.toLowerCase().match(/.{1,4}/g).join("-");
  });

  async function loadSettings() {
    const values = await api("GET", "/api/v1/settings");
    for (const input of $("settings-form").querySelectorAll("input")) input.value = values[input.name];
  }
  $("settings-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const current = await api("GET", "/api/v1/settings");
      for (const input of event.target.querySelectorAll("input")) {
        if (String(current[input.name]) !== input.value) await api("PUT", "/api/v1/settings", { name: input.name, value: Number(input.value) });
      }
      show("settings-message", "Saved.", "ok");
    } catch (e) { show("settings-message", e.message, "error"); }
  });

  load().catch((e) => show("accounts-message", e.message, "error"));
  loadSettings().catch((e) => show("settings-message", e.message, "error"));
});
