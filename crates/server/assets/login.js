"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  try {
    const setup = await od.api("GET", "/api/v1/setup");
    if (setup.open) { location.replace("/setup" + location.hash); return; }
  } catch (e) { /* the form still works */ }
  try {
    const seal = await od.api("GET", "/api/v1/unseal");
    document.getElementById("sealed-note").hidden = !seal.sealed;
  } catch (e) { /* the form still works */ }
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("login-button");
    button.disabled = true;
    od.show("login-message", "Checking…");
    try {
      const values = od.form(form);
      const me = await od.api("POST", "/api/v1/login", { name: values.name, password: values.password });
      location.assign(me.must_change_password ? "/account" : "/");
    } catch (e) {
      od.show("login-message", e.message, "error");
      document.getElementById("password").value = "";
      button.disabled = false;
    }
  });
});
