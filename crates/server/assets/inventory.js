"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  const { api, el, show } = od;
  const $ = (id) => document.getElementById(id);
  const me = await api("GET", "/api/v1/me");
  const may = (p) => me.permissions.includes(p);
  for (const node of document.querySelectorAll("[data-needs]")) {
    if (!may(node.dataset.needs)) node.remove();
  }

  // Tabs.
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tabs button")) other.setAttribute("aria-selected", String(other === button));
      for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("hidden", tab.id !== "tab-" + button.dataset.tab);
      $("detail").classList.add("hidden");
      if (button.dataset.tab === "devices") loadDevices();
    });
  }

  // Selecting rows is for the bulk change: only for those who may make it.
  const canMove = may("inventory.write");
  if (!canMove) $("select-all").closest("th").remove();
  const selected = new Set();
  function updateBulk() {
    const bar = $("bulk");
    if (!bar) return;
    bar.classList.toggle("hidden", selected.size === 0);
    $("bulk-count").textContent = selected.size + " selected";
  }

  let timer = null;
  async function load() {
    const values = od.form($("filter-form"));
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(values)) if (value) params.set(name, value);
    try {
      const answer = await api("GET", "/api/v1/tokens?" + params.toString());
      const body = $("tokens").querySelector("tbody");
      body.replaceChildren();
      selected.clear();
      updateBulk();
      // A UPN may wrap before its "@" on a phone, never inside a name.
      const breakable = (upn) => {
        const at = upn.indexOf("@");
        return at > 0 ? [upn.slice(0, at), el("wbr"), upn.slice(at)] : upn;
      };
      for (const token of answer.tokens) {
        const box = el("input", { type: "checkbox", "aria-label": "select " + token.reference, onchange: (e) => {
          if (e.target.checked) selected.add(token.reference); else selected.delete(token.reference);
          updateBulk();
        } });
        body.append(el("tr", { class: "clickable" },
          canMove ? el("td", {}, box) : null,
          el("td", { class: "mono" }, el("a", { href: "#", onclick: (e) => { e.preventDefault(); detail(token.reference); } }, token.reference)),
          el("td", {}, token.user ? breakable(token.user) : "—"),
          el("td", {}, el("span", { class: "pill state-" + token.state }, token.state),
            token.altered ? el("span", { class: "pill state-lost", title: "This row was edited outside oathdesk: nothing is done with it until it is restored (oathdesk vault verify)" }, "altered") : ""),
          el("td", {}, token.custody),
          el("td", { class: "wide-only" }, token.type.toUpperCase() + " " + token.algorithm + " " + token.digits + (token.period ? "/" + token.period + "s" : "")),
          el("td", { class: "wide-only" }, [token.manufacturer, token.model].filter(Boolean).join(" ") || "—"),
          el("td", { class: "wide-only" }, od.utc(token.updated_at))));
      }
      $("list-total").textContent = answer.total + " credential(s)" + (answer.total > answer.tokens.length ? ", first " + answer.tokens.length + " shown" : "");
      show("list-message", "");
    } catch (e) { show("list-message", e.message, "error"); }
  }
  $("filter-form").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 250); });
  $("filter-form").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  if (canMove) $("select-all").addEventListener("change", (e) => {
    for (const box of $("tokens").querySelectorAll("tbody input[type=checkbox]")) {
      box.checked = e.target.checked;
      box.dispatchEvent(new Event("change"));
    }
  });
  if ($("bulk-apply")) {
    $("bulk-apply").addEventListener("click", (event) => od.busy(event.currentTarget, "list-message", async () => {
      try {
        const done = await api("POST", "/api/v1/tokens/bulk", { tokens: [...selected], state: $("bulk-state").value, note: $("bulk-note").value });
        show("list-message", done.moved + " credential(s) moved.", "ok");
        $("bulk-note").value = "";
        await load();
        show("list-message", done.moved + " credential(s) moved.", "ok");
      } catch (e) { show("list-message", e.message, "error"); }
    }));
  }

  async function detail(reference, again) {
    try {
      const answer = await api("GET", "/api/v1/tokens/" + encodeURIComponent(reference));
      const t = answer.token;
      $("detail-title").textContent = t.reference;
      const kv = $("detail-kv");
      kv.replaceChildren();
      const rows = [["User", t.user || "—"], ["State", t.state + (t.altered ? " — ALTERED outside oathdesk: not to be trusted" : "")], ["Secret", t.custody + (t.purge_after ? " (purge after " + od.utc(t.purge_after) + ")" : "")],
        ["Parameters", t.type.toUpperCase() + ", " + t.algorithm + ", " + t.digits + " digits" + (t.period ? ", " + t.period + " s" : "")],
        ["Device", [t.manufacturer, t.model].filter(Boolean).join(" ") || "—"], ["Drift", t.drift_steps === null ? "not measured" : t.drift_steps + " step(s)"],
        ["Added", od.utc(t.created_at)]];
      for (const [k, v] of rows) kv.append(el("dt", {}, k), el("dd", {}, v));
      const actions = $("detail-actions");
      const canWrite = may("inventory.write") && !t.altered;
      // A lost or retired token whose secret the vault still holds: say so
      // beside "Secret", and offer the purge right there.
      const gone = t.state === "lost" || t.state === "retired";
      if (gone && t.custody === "held") {
        const secret = kv.querySelectorAll("dd")[2];
        secret.append(el("div", { class: "hint", id: "purge-hint" },
          "The token is " + t.state + ", but the vault still holds its secret: anyone who may reveal codes could still get codes for it. " +
          (canWrite ? "Purge the secret unless the token may come back." : "Ask a provisioner or admin to purge it.")));
        if (canWrite) secret.append(el("button", { type: "button", class: "danger small", id: "purge-now", onclick: (e) => purge(e.currentTarget) }, "Purge secret now"));
      }
      if (actions) {
        actions.replaceChildren();
        for (const next of answer.next_states) {
          if (next === "delivered" || next === "assigned") continue;
          const risky = next === "lost" || next === "retired";
          actions.append(el("button", { type: "button", class: risky ? "danger small" : "secondary small", "data-state": next, onclick: async (e) => {
            const opener = e.currentTarget;
            const answer = await od.ask({
              title: "Mark " + t.reference + " " + next + "?",
              text: "It is " + t.state + " now." + (next === "lost" ? " A lost token's secret stays held until you purge it." : ""),
              field: { label: "Note (optional)", placeholder: next === "shipped" ? "tracking number…" : "why, ticket…" },
              confirm: "Mark " + next, danger: risky,
            });
            if (answer === null) return;
            act("/state", { state: next, note: answer.value.trim() || undefined }, t.reference + " is now " + next + ".", opener);
          } }, "→ " + next));
        }
        if (answer.next_states.includes("assigned")) {
          const user = el("input", { id: "assign-user", placeholder: "user UPN", class: "inline", "aria-label": "User to assign " + t.reference + " to (UPN)" });
          actions.append(user, el("button", { type: "button", class: "secondary small", onclick: (e) => act("/assign", { user: user.value }, t.reference + " assigned to " + user.value + ".", e.currentTarget) }, "Assign"));
        }
        if (t.custody === "held" && !t.altered && !gone) actions.append(el("button", { type: "button", class: "danger small", onclick: (e) => purge(e.currentTarget) }, "Purge secret"));
      }
      async function purge(opener) {
        const answer = await od.ask({
          title: "Purge the secret of " + t.reference + "?",
          text: "Nobody can get a code for this token afterwards, and the secret cannot be brought back.",
          confirm: "Purge secret", danger: true,
        });
        if (answer !== null) act("/purge", undefined, "The secret of " + t.reference + " is purged.", opener);
      }
      async function act(path, body, done, button) {
        await od.busy(button, "detail-message", async () => {
          try {
            await api("POST", "/api/v1/tokens/" + encodeURIComponent(reference) + path, body === undefined ? undefined : body);
            await detail(reference, true);
            await load();
            show("detail-message", done, "ok");
          } catch (e) { show("detail-message", e.message, "error"); }
        });
      }
      const events = $("events").querySelector("tbody");
      events.replaceChildren();
      for (const event of answer.events.slice().reverse()) {
        events.append(el("tr", {}, el("td", {}, od.utc(event.at)), el("td", {}, event.from_state || "—"), el("td", {}, event.to_state), el("td", {}, event.operator || "—"), el("td", {}, event.note || "")));
      }
      show("detail-message", "");
      $("detail").classList.remove("hidden");
      if (!again) $("detail").scrollIntoView({ behavior: "smooth" });
    } catch (e) { show("list-message", e.message, "error"); }
  }
  $("detail-close").addEventListener("click", () => $("detail").classList.add("hidden"));

  async function loadDevices() {
    const answer = await api("GET", "/api/v1/devices");
    const body = $("devices").querySelector("tbody");
    body.replaceChildren();
    for (const d of answer.devices) {
      body.append(el("tr", {}, el("td", { class: "mono" }, d.serial), el("td", {}, d.kind), el("td", {}, d.manufacturer || "—"), el("td", {}, d.model || "—"),
        el("td", {}, d.used + " / " + d.slots),
        el("td", {}, d.credentials.map((c) => (c.slot === null ? "" : c.slot + ": ") + (c.user || "unassigned") + " (" + c.state + ")").join(", "))));
    }
  }

  if ($("add-token-form")) {
    $("add-token-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const v = od.form(event.target);
      const request = { kind: v.kind, serial: v.serial, manufacturer: v.manufacturer, model: v.model, user: v.user };
      if (v.slot !== "") request.slot = Number(v.slot);
      if (v.generate) request.generate = true;
      else request.credential = { secret: v.secret, encoding: v.encoding || undefined, period: Number(v.period || 30) };
      try {
        const made = await api("POST", "/api/v1/tokens", request);
        show("add-token-message", made.reference + " added (" + made.state + ").", "ok");
        $("add-secret").value = "";
        $("add-serial").value = "";
        load();
      } catch (e) { show("add-token-message", e.message, "error"); }
    });
    $("add-user-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const user = await api("POST", "/api/v1/users", od.form(event.target));
        show("add-user-message", user.upn + " added.", "ok");
        event.target.reset();
      } catch (e) { show("add-user-message", e.message, "error"); }
    });
  }

  const formats = ["entra-csv", "entra-json", "pskc", "privacyidea", "privacyidea-v2", "linotp", "otpauth", "google", "aegis", "2fas", "andotp", "oathdesk"];
  if ($("import-format")) {
    for (const f of formats.concat(["spreadsheet"])) $("import-format").append(el("option", { value: f }, f));
  }
  if ($("export-format")) {
    for (const f of formats) $("export-format").append(el("option", { value: f }, f));
  }

  let pending = null;
  let plan = null;
  async function readFile(input) {
    const file = input.files[0];
    const buffer = new Uint8Array(await file.arrayBuffer());
    let binary = "";
    for (let i = 0; i < buffer.length; i += 0x8000) binary += String.fromCharCode.apply(null, buffer.subarray(i, i + 0x8000));
    return btoa(binary);
  }
  if ($("import-form")) {
    $("import-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const v = od.form(event.target);
        pending = { content: await readFile($("import-file")), format: v.format, password: v.password || undefined, key: v.key || undefined };
        const preview = await api("POST", "/api/v1/import/preview", pending);
        $("import-summary").textContent = preview.records + " record(s) read as " + preview.format + ".";
        const problems = $("import-problems").querySelector("tbody");
        problems.replaceChildren();
        // Every problem by line (the server's plan: lint errors, the serial
        // rule, the spreadsheet's checks), then the lint's warnings.
        const all = (preview.blocking || []).map((b) => ["error", "", "", b])
          .concat((preview.skipped || []).flatMap((row) => row.problems.map((p) => ["error", row.location, "", p])))
          .concat(preview.findings.filter((f) => f.severity !== "error").map((f) => [f.severity, f.location || "", f.field || "", f.message, f.fix]));
        // A fix the console has a page for is offered as a link to it.
        for (const [severity, where, field, message, fix] of all) {
          problems.append(el("tr", {}, el("td", {}, severity), el("td", { class: "nowrap" }, where), el("td", {}, field),
            el("td", {}, message, fix ? [" ", el("a", { href: fix.href, target: "_blank", rel: "noopener" }, fix.label)] : null)));
        }
        $("import-problems").classList.toggle("hidden", !all.length);
        const rows = $("import-rows").querySelector("tbody");
        rows.replaceChildren();
        for (const r of preview.preview) {
          rows.append(el("tr", {}, el("td", {}, r.location || ""), el("td", { class: "mono" }, r.serial || "—"), el("td", {}, r.slot ?? ""),
            el("td", {}, r.user || "—"), el("td", {}, r.account || ""), el("td", {}, r.type), el("td", {}, r.algorithm || "sha1"), el("td", {}, r.digits || 6), el("td", {}, r.period || "")));
        }
        // What the server will refuse and what it would leave out: the
        // page asks before a single bad row is skipped.
        plan = { importable: preview.importable ?? preview.records, skipped: preview.skipped || [], blocking: preview.blocking || [] };
        const skippedAt = new Set(plan.skipped.map((row) => row.location));
        for (const tr of rows.querySelectorAll("tr")) {
          const where = tr.firstChild;
          if (skippedAt.has(where.textContent)) { tr.classList.add("skipped"); where.textContent += " (skipped)"; }
        }
        $("import-skip").classList.add("hidden");
        const go = $("import-go");
        if (plan.blocking.length) {
          go.textContent = "Import";
          go.disabled = true;
          show("import-message", "The file has problems that no skip can get past: " + plan.blocking.join("; ") + ". Fix the file first.", "error");
        } else if (plan.skipped.length) {
          go.textContent = "Import " + plan.importable + " record(s), skip " + plan.skipped.length + " row(s)…";
          go.disabled = plan.importable === 0;
          show("import-message", plan.skipped.length + " row(s) have problems and would be left out (" + plan.skipped.map((r) => r.location).join(", ") + "); " + plan.importable + " record(s) can be imported.", "error");
        } else {
          go.textContent = "Import " + plan.importable + " record(s)";
          go.disabled = plan.importable === 0;
          show("import-message", all.length ? "Warnings only: check them before importing." : "No problems found.", all.length ? "warn" : "ok");
        }
        $("import-preview").classList.remove("hidden");
      } catch (e) { $("import-preview").classList.add("hidden"); show("import-message", e.message, "error"); }
    });
    async function runImport(skipBad) {
      if (!pending) return;
      $("import-skip").classList.add("hidden");
      try {
        const done = await api("POST", "/api/v1/import", Object.assign({}, pending, { skip_bad: skipBad }));
        const left = (done.skipped || []).map((r) => r.location);
        show("import-message", "Imported " + done.imported + " credential(s) (" + done.format + ")." + (left.length ? " Left out: " + left.join(", ") + "." : ""), left.length ? "warn" : "ok");
        $("import-preview").classList.add("hidden");
        pending = null;
        load();
      } catch (e) { show("import-message", e.message, "error"); }
    }
    $("import-go").addEventListener("click", () => {
      if (!pending || !plan) return;
      if (!plan.skipped.length) { runImport(false); return; }
      // Ask, naming every row that would be left out.
      $("import-skip-text").textContent = plan.skipped.length + " row(s) have problems. Import the other " + plan.importable + " record(s) and leave these out?";
      const list = $("import-skip-list");
      list.replaceChildren(...plan.skipped.map((row) => el("li", {}, row.location + ": " + row.problems.join("; "))));
      $("import-skip-confirm").textContent = "Skip " + plan.skipped.length + " and import " + plan.importable;
      $("import-skip").classList.remove("hidden");
      $("import-skip-cancel").focus();
    });
    $("import-skip-confirm").addEventListener("click", () => runImport(true));
    $("import-skip-cancel").addEventListener("click", () => {
      $("import-skip").classList.add("hidden");
      show("import-message", "Nothing was imported.", "warn");
      $("import-go").focus();
    });
  }

  if ($("export-form")) {
    $("export-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const v = od.form(event.target);
      try {
        const file = await api("POST", "/api/v1/export", { format: v.format, user: v.user || undefined, serial: v.serial || undefined, state: v.state || undefined, password: v.password || undefined, plaintext: v.plaintext });
        const bytes = Uint8Array.from(atob(file.content), (c) => c.charCodeAt(0));
        const link = el("a", { href: URL.createObjectURL(new Blob([bytes])), download: file.filename });
        document.body.append(link);
        link.click();
        link.remove();
        const skipped = file.skipped.map((s) => s.reference + ": " + s.reason);
        show("export-message", "Downloaded " + file.filename + "." + (skipped.length ? " Left out: " + skipped.join("; ") : ""), skipped.length ? "warn" : "ok");
      } catch (e) { show("export-message", e.message, "error"); }
    });
  }

  await load();
});
