"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  const { api, el, show } = od;
  const me = await api("GET", "/api/v1/me");
  document.getElementById("account-summary").textContent =
    me.account + " · " + me.role + " · may: " + me.permissions.filter((p) => p !== "account").join(", ");
  if (me.must_change_password) document.getElementById("must-change").classList.remove("hidden");

  const scopes = document.getElementById("scopes");
  for (const permission of me.permissions.filter((p) => p !== "account")) {
    const id = "scope-" + permission.replace(".", "-");
    scopes.append(el("label", { class: "check", for: id },
      el("input", { type: "checkbox", id, name: "scope:" + permission }), permission));
  }

  async function loadGrants() {
    const body = document.querySelector("#grants tbody");
    body.replaceChildren();
    for (const grant of await api("GET", "/api/v1/me/tokens")) {
      const revoke = el("button", { class: "danger small", type: "button", onclick: (e) => od.busy(e.currentTarget, null, async () => {
        try { await api("DELETE", "/api/v1/me/tokens/" + encodeURIComponent(grant.handle)); await loadGrants(); }
        catch (err) { od.toast(err.message); }
      }) }, grant.kind === "session" ? "Sign out" : "Revoke");
      body.append(el("tr", {},
        el("td", {}, el("span", { class: "pill" }, grant.kind)),
        el("td", {}, grant.label || "browser"),
        el("td", { class: "mono" }, grant.scopes.join(" ") || "role"),
        el("td", {}, od.utc(grant.created_at)),
        el("td", {}, od.utc(grant.last_used_at)),
        el("td", {}, od.utc(grant.expires_at)),
        el("td", {}, revoke)));
    }
  }
  if (!me.must_change_password) await loadGrants();

  document.getElementById("password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = od.form(event.target);
    if (values.new !== values.new2) { show("password-message", "The two new passwords differ.", "error"); return; }
    // Deriving the new key takes seconds: the button shows it and takes no second click.
    await od.busy(event.target.querySelector("button[type=submit]"), "password-message", async () => { try {
      await api("POST", "/api/v1/me/password", { current: values.current, new: values.new });
      event.target.reset();
      show("password-message", "Password changed. Your other sessions were signed out.", "ok");
      if (me.must_change_password) setTimeout(() => location.assign("/"), 800);
      else await loadGrants();
    } catch (e) { show("password-message", e.message, "error"); } });
  });

  document.getElementById("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = od.form(event.target);
    const chosen = Object.keys(values).filter((k) => k.startsWith("scope:") && values[k]).map((k) => k.slice(6));
    await od.busy(event.target.querySelector("button[type=submit]"), "token-message", async () => { try {
      const made = await api("POST", "/api/v1/me/tokens", { name: values.name, scopes: chosen, days: Number(values.days) });
      document.getElementById("token-value").textContent = made.token;
      document.getElementById("token-once").classList.remove("hidden");
      document.getElementById("token-copy").onclick = () => od.copy(made.token, "Token");
      show("token-message", "");
      event.target.reset();
      await loadGrants();
    } catch (e) { show("token-message", e.message, "error"); } });
  });
});
