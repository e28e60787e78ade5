"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  const form = document.getElementById("unseal-form");
  const showState = (sealed) => {
    od.show("unseal-state", sealed
      ? "Sealed: helpdesk and auditor accounts cannot work yet."
      : "Unsealed: every account can work.", sealed ? "error" : "ok");
  };
  try { showState((await od.api("GET", "/api/v1/unseal")).sealed); } catch (e) { /* the form still works */ }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("unseal-button");
    button.disabled = true;
    od.show("unseal-message", "Checking…");
    try {
      const values = od.form(form);
      const answer = await od.api("POST", "/api/v1/unseal", { name: values.name, password: values.password });
      showState(answer.sealed);
      od.show("unseal-message", "Done: the console holds the vault key until it stops.", "ok");
    } catch (e) {
      od.show("unseal-message", e.message, "error");
    }
    document.getElementById("password").value = "";
    button.disabled = false;
  });
});
