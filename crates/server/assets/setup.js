"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  // The setup link carries the code in its fragment, which browsers never
  // send to a server; take it and clear it from the address bar and history.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("code");
  if (location.hash) history.replaceState(null, "", location.pathname);
  let state;
  try { state = await od.api("GET", "/api/v1/setup"); } catch (e) { od.show("setup-message", e.message, "error"); return; }
  if (!state.open) { location.replace("/login"); return; }
  if (state.mode === "code") {
    const form = document.getElementById("setup-code-form");
    form.classList.remove("hidden");
    if (code) { document.getElementById("code").value = code; document.getElementById("admin-name").focus(); }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = od.form(form);
      if (values.password !== values.password2) { od.show("setup-message", "The two passwords differ.", "error"); return; }
      // Argon2id takes a few seconds: the button says it is working.
      await od.busy(document.getElementById("setup-button"), "setup-message", async () => {
        try {
          await od.api("POST", "/api/v1/setup", { code: values.code, name: values.name, password: values.password });
          location.assign("/");
        } catch (e) { od.show("setup-message", e.message, "error"); }
      });
    });
  } else {
    const form = document.getElementById("setup-operator-form");
    form.classList.remove("hidden");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = od.form(form);
      await od.busy(document.getElementById("operator-button"), "operator-message", async () => {
        try {
          await od.api("POST", "/api/v1/setup", { operator: values.operator, passphrase: values.passphrase });
          location.assign("/");
        } catch (e) { od.show("operator-message", e.message, "error"); }
      });
    });
  }
});
