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
      const role = el("select", { "aria-label": "role of " + row.name, "data-account": row.name }, ...roles.map((r) => el("option", { value: r, selected: web && web.role === r }, r)));
      const actions = el("td", { class: "actions" });
      let roleCell = role;
      if (web) {
        // Choosing in the drop-down (arrow keys, Home, End included) saves
        // nothing: the Save button beside it does, and admin asks first.
        const save = el("button", { type: "button", class: "small", hidden: true, "data-save-role": row.name, "aria-label": "Save the role of " + row.name }, "Save");
        const undo = el("button", { type: "button", class: "secondary small", hidden: true, "aria-label": "Keep the role of " + row.name }, "Undo");
        const changed = () => role.value !== web.role;
        role.addEventListener("change", () => { save.hidden = !changed(); undo.hidden = !changed(); });
        undo.addEventListener("click", () => { role.value = web.role; save.hidden = true; undo.hidden = true; role.focus(); });
        save.addEventListener("click", async () => {
          if (!changed()) return;
          const wanted = role.value;
          if (wanted === "admin") {
            const answer = await od.ask({
              title: "Make " + row.name + " an admin?",
              text: "An admin may manage accounts and settings, export every secret and read the whole vault.",
              confirm: "Make admin", danger: true,
            });
            if (answer === null) return;
          }
          await od.busy(save, "accounts-message", () => run(() => api("PATCH", "/api/v1/accounts/" + name, { role: wanted }), row.name + " is now " + wanted + "."));
        });
        roleCell = el("span", { class: "role-change" }, role, save, undo);
        if (row.name !== self) {
          actions.append(
            el("button", { type: "button", class: "secondary small", onclick: (e) => od.busy(e.currentTarget, "accounts-message", () => run(() => api("PATCH", "/api/v1/accounts/" + name, { disabled: !web.disabled }), row.name + (web.disabled ? " enabled." : " disabled."))) }, web.disabled ? "Enable" : "Disable"),
            el("button", { type: "button", class: "secondary small", onclick: async (e) => {
              const opener = e.currentTarget;
              const answer = await od.ask({
                title: "Reset the password of " + row.name + "?",
                text: "Their sessions end; they choose their own password at their next sign-in. Give them this one by another channel.",
                field: { label: "New first password (at least 10 characters)", type: "text", required: true, minlength: 10 },
                confirm: "Set password",
              });
              if (answer === null) return;
              await od.busy(opener, "accounts-message", () => run(() => api("POST", "/api/v1/accounts/" + name + "/password", { password: answer.value }), "Password of " + row.name + " set; their sessions ended."));
            } }, "Reset password"),
            el("button", { type: "button", class: "danger small", onclick: async (e) => {
              const opener = e.currentTarget;
              const answer = await od.ask({
                title: "Remove " + row.name + "?",
                text: "Their account and key slot go. Rekey the vault afterwards ('oathdesk vault rekey' on the server): their old key slot then opens nothing written later.",
                confirm: "Remove " + row.name, danger: true,
              });
              if (answer === null) return;
              await od.busy(opener, "accounts-message", () => run(() => api("DELETE", "/api/v1/accounts/" + name), row.name + " removed. Rekey the vault on the server ('oathdesk vault rekey') so their old key slot opens nothing new."));
            } }, "Remove"));
        }
      } else if (row.unlock === "passphrase") {
        actions.append(el("button", { type: "button", class: "secondary small", onclick: (e) => od.busy(e.currentTarget, "accounts-message", () => run(() => api("POST", "/api/v1/accounts", { name: row.name, role: role.value }), row.name + " can now sign in to the console.")) }, "Give web account"));
      }
      body.append(el("tr", { class: web && web.disabled ? "refused" : null },
        el("td", {}, el("strong", {}, row.name), row.name === self ? " (you)" : ""),
        el("td", {}, web || row.unlock === "passphrase" ? roleCell : "—"),
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

  $("new-account-form").addEventListener("submit", (event) => {
    event.preventDefault();
    // Creating an account derives its key (seconds): the button says so.
    od.busy(event.target.querySelector("button[type=submit]"), "new-account-message", async () => {
      try {
        const made = await api("POST", "/api/v1/accounts", od.form(event.target));
        show("new-account-message", made.name + " created as " + made.role + ". Give them the first password by another channel.", "ok");
        event.target.reset();
        await load();
      } catch (e) { show("new-account-message", e.message, "error"); }
    });
  });
  $("suggest").addEventListener("click", async () => {
    const seed = await api("POST", "/api/v1/toolset/seed", { bytes: 10 });
    $("new-password").value = seed.base32.toLowerCase().match(/.{1,4}/g).join("-");
  });

  async function loadSettings() {
    const values = await api("GET", "/api/v1/settings");
    for (const input of $("settings-form").querySelectorAll("input")) input.value = values[input.name];
  }
  $("settings-form").addEventListener("submit", (event) => {
    event.preventDefault();
    od.busy(event.target.querySelector("button[type=submit]"), "settings-message", async () => { try {
      const current = await api("GET", "/api/v1/settings");
      for (const input of event.target.querySelectorAll("input")) {
        if (String(current[input.name]) !== input.value) await api("PUT", "/api/v1/settings", { name: input.name, value: Number(input.value) });
      }
      show("settings-message", "Saved.", "ok");
    } catch (e) { show("settings-message", e.message, "error"); } });
  });

  load().catch((e) => show("accounts-message", e.message, "error"));
  loadSettings().catch((e) => show("settings-message", e.message, "error"));
});
