"use strict";
// The toolset: every computation is a call to /api/v1/toolset/*, which uses
// the same engine as `oathdesk code`; this script only shows the answers
// and keeps the countdown running.
document.addEventListener("DOMContentLoaded", () => {
  const { api, el, show } = od;
  const $ = (id) => document.getElementById(id);

  // "1234567890" or "2009-02-13T23:31:30Z" → Unix seconds; "" → null.
  function parseAt(text) {
    text = text.trim();
    if (!text) return null;
    if (/^\d+$/.test(text)) return Number(text);
    const ms = Date.parse(text);
    if (Number.isNaN(ms)) throw new Error("at: give Unix seconds or a time like 2009-02-13T23:31:30Z");
    return Math.floor(ms / 1000);
  }

  // The secret and its parameters, as the API takes them.
  function secretInput() {
    const input = { secret: $("secret").value };
    if ($("encoding").value) input.encoding = $("encoding").value;
    if ($("algorithm").value) input.algorithm = $("algorithm").value;
    for (const name of ["digits", "period", "t0"]) {
      if ($(name).value !== "") input[name] = Number($(name).value);
    }
    return input;
  }

  let latest = null;     // the last answer
  let live = false;      // codes of "now", refreshed as time moves
  let pending = null;

  async function refresh() {
    if (!$("secret").value.trim()) {
      $("codes-result").classList.add("hidden");
      show("codes-message", "");
      latest = null;
      return;
    }
    let request;
    try {
      request = secretInput();
      request.past = Number($("past").value || 0);
      request.future = Number($("future").value || 0);
      if ($("verifier").value) request.verifier = $("verifier").value;
      const at = parseAt($("at").value);
      live = at === null;
      if (!live) request.at = at;
    } catch (e) { show("codes-message", e.message, "error"); return; }
    try {
      const answer = await api("POST", "/api/v1/toolset/codes", request);
      if (live) od.learnTime(answer.time);
      latest = answer;
      show("codes-message", "");
      render(answer);
    } catch (e) {
      latest = null;
      $("codes-result").classList.add("hidden");
      show("codes-message", e.message, "error");
    }
  }

  function schedule() {
    clearTimeout(pending);
    pending = setTimeout(refresh, 250);
  }

  function render(answer) {
    const body = $("codes-table").querySelector("tbody");
    body.replaceChildren();
    $("codes-table").dataset.time = answer.time === undefined ? "" : String(answer.time);
    for (const code of answer.codes) {
      const offset = code.offset === 0 ? "0" : (code.offset > 0 ? "+" + code.offset : String(code.offset));
      const copy = el("button", { type: "button", class: "secondary small", onclick: () => od.copy(code.code, "Code") }, "Copy");
      body.append(el("tr", { class: code.offset === 0 ? "current" : null, "data-offset": code.offset },
        el("td", { class: "mono" }, offset),
        el("td", { class: "code" }, code.code),
        el("td", { class: "mono" }, code.counter),
        el("td", {}, code.valid_from === null ? "event token" : od.span(code.valid_from, code.valid_until)),
        el("td", {}, code.accepted_from === undefined ? "—" : od.span(code.accepted_from, code.accepted_until)),
        el("td", {}, copy)));
    }
    const current = answer.codes.find((c) => c.offset === 0) || answer.codes[0];
    $("current-code").textContent = current ? current.code : "";
    $("current-code").dataset.code = current ? current.code : "";
    $("current-label").textContent = answer.type === "hotp" ? "Code at counter " + current.counter
      : (live ? "Current code" : "Code at " + od.utc(answer.time));
    const note = [answer.type.toUpperCase(), answer.algorithm.toUpperCase(), answer.digits + " digits"];
    if (answer.period) note.push(answer.period + " s steps", "T0 " + answer.t0);
    if (answer.verifier) note.push("verifier " + answer.verifier);
    $("codes-note").textContent = note.join(" · ") + ". Intervals are half-open: a code is current from its first time up to, not including, its second.";
    $("codes-result").classList.remove("hidden");
    tick();
  }

  // Moves the countdown; fetches new codes when the current one has passed.
  function tick() {
    if (!latest || latest.type !== "totp") { $("bar").parentElement.classList.add("hidden"); return; }
    $("bar").parentElement.classList.remove("hidden");
    const current = latest.codes.find((c) => c.offset === 0);
    if (!current) return;
    const now = live ? od.now() : latest.time;
    const period = latest.period;
    const left = current.valid_until - now;
    if (live && left <= 0) { refresh(); return; }
    $("bar-fill").style.width = Math.max(0, Math.min(100, (left / period) * 100)) + "%";
    $("bar").classList.toggle("late", left < 7);
    let text = live ? "current for " + od.seconds(left) + " more" : "current " + od.span(current.valid_from, current.valid_until);
    if (current.accepted_until !== undefined) {
      text += " · accepted until " + od.clock(current.accepted_until) + (live ? " (" + od.seconds(current.accepted_until - now) + ")" : "");
    }
    $("countdown-text").textContent = text;
  }
  setInterval(() => { if (live) tick(); }, 250);

  $("codes-form").addEventListener("input", schedule);
  $("codes-form").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  $("secret-show").addEventListener("click", () => {
    const field = $("secret");
    field.type = field.type === "password" ? "text" : "password";
    $("secret-show").textContent = field.type === "password" ? "Show" : "Hide";
  });
  $("copy-code").addEventListener("click", () => { if ($("current-code").dataset.code) od.copy($("current-code").dataset.code, "Code"); });

  $("drift-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const request = secretInput();
      request.code = $("drift-code").value;
      request.window = Number($("drift-window").value || 10);
      const at = parseAt($("at").value);
      if (at !== null) request.at = at;
      const answer = await api("POST", "/api/v1/toolset/verify", request);
      if (!answer.valid) {
        show("drift-message", "No match within ±" + answer.window + " steps: check the secret and parameters, or widen the window.", "warn");
      } else if (answer.offset === 0) {
        show("drift-message", "Matches the current code: the token's clock is right.", "ok");
      } else {
        const behind = answer.offset < 0;
        const seconds = answer.drift_seconds === null ? "" : " (about " + od.seconds(Math.abs(answer.drift_seconds)) + (behind ? " slow" : " fast") + ")";
        show("drift-message", "Matches offset " + (answer.offset > 0 ? "+" : "") + answer.offset + ": the token is " + Math.abs(answer.offset) + " step(s) " + (behind ? "behind" : "ahead") + seconds + ".", "ok");
      }
    } catch (e) { show("drift-message", e.message, "error"); }
  });

  let seed = null;
  $("seed-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      seed = await api("POST", "/api/v1/toolset/seed", { algorithm: $("seed-algorithm").value });
      $("seed-base32").textContent = seed.base32;
      $("seed-hex").textContent = seed.hex;
      $("seed-result").classList.remove("hidden");
      show("seed-message", seed.warning || "", seed.warning ? "warn" : "");
    } catch (e) { show("seed-message", e.message, "error"); }
  });
  $("seed-use").addEventListener("click", () => {
    if (!seed) return;
    $("secret").value = seed.base32;
    $("encoding").value = "base32";
    $("algorithm").value = seed.algorithm;
    refresh();
  });
  $("seed-copy").addEventListener("click", () => { if (seed) od.copy(seed.base32, "Seed"); });

  // The import preview's "Open the Toolset's converter": Hex to Base32.
  if (location.hash === "#convert") {
    $("convert-from").value = "hex";
    $("convert-to").value = "base32";
    $("convert-value").focus();
  }
  $("convert-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await api("POST", "/api/v1/toolset/convert", od.form(event.target));
      $("convert-output").textContent = answer.value;
      $("convert-info").textContent = answer.bytes + " bytes (" + answer.bits + " bits)" + (answer.warning ? " — " + answer.warning : "");
      $("convert-result").classList.remove("hidden");
      show("convert-message", "");
    } catch (e) { $("convert-result").classList.add("hidden"); show("convert-message", e.message, "error"); }
  });

  let qrUri = null;
  $("qr-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const request = secretInput();
      request.issuer = $("qr-issuer").value;
      request.account = $("qr-account").value;
      const answer = await api("POST", "/api/v1/toolset/qr", request);
      qrUri = answer.uri;
      $("qr-image").src = "data:image/svg+xml;base64," + btoa(answer.svg);
      $("qr-result").classList.remove("hidden");
      show("qr-message", "");
    } catch (e) { show("qr-message", e.message, "error"); }
  });
  $("qr-copy").addEventListener("click", () => { if (qrUri) od.copy(qrUri, "URI"); });
  $("qr-hide").addEventListener("click", () => { $("qr-result").classList.add("hidden"); $("qr-image").removeAttribute("src"); qrUri = null; });

  // Entra rows stay in this page's memory until the CSV is built.
  const rows = [];
  function drawRows() {
    const body = $("entra-table").querySelector("tbody");
    body.replaceChildren();
    rows.forEach((row, index) => {
      body.append(el("tr", {},
        el("td", {}, row.upn), el("td", { class: "mono" }, row.serial), el("td", {}, row.period + " s"),
        el("td", {}, row.manufacturer), el("td", {}, row.model),
        el("td", {}, el("button", { type: "button", class: "danger small", onclick: () => { rows.splice(index, 1); drawRows(); } }, "Remove"))));
    });
  }
  $("entra-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = secretInput();
    if (!input.secret.trim()) { show("entra-message", "Enter the token's secret in the form at the top first.", "error"); return; }
    const values = od.form(event.target);
    rows.push({ upn: values.upn, serial: values.serial, period: Number(values.period), manufacturer: values.manufacturer, model: values.model, secret: input.secret, encoding: input.encoding });
    drawRows();
    show("entra-message", rows.length + " row(s). Add more, or build the file.");
    $("entra-serial").value = "";
  });
  $("entra-build").addEventListener("click", async () => {
    if (!rows.length) { show("entra-message", "Add a row first.", "error"); return; }
    try {
      const answer = await api("POST", "/api/v1/toolset/entra-csv", { rows });
      const problems = answer.skipped.map((s) => "row " + s.row + " (" + s.reference + "): " + s.reason)
        .concat(answer.findings.map((f) => f.severity + ": " + [f.location, f.field, f.message].filter(Boolean).join(", ")));
      if (answer.skipped.length) { show("entra-message", "Not written: " + problems.join("; "), "error"); return; }
      const blob = new Blob([answer.csv], { type: "text/csv" });
      const link = el("a", { href: URL.createObjectURL(blob), download: "MFA-tokens.csv" });
      document.body.append(link);
      link.click();
      link.remove();
      show("entra-message", problems.length ? "Downloaded, with findings: " + problems.join("; ") : "Downloaded MFA-tokens.csv (" + rows.length + " rows, lint clean).", problems.length ? "warn" : "ok");
    } catch (e) { show("entra-message", e.message, "error"); }
  });
});
