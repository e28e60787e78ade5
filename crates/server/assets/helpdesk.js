"use strict";
// The helpdesk page: a guided flow — caller, method and its steps against
// the data on file, evidence and ticket, then the code (or a request that
// waits for a second operator) — plus the approval requests of others.
// Every rule is the vault's; this script shows what the API answers.
document.addEventListener("DOMContentLoaded", () => {
  const { api, el, show } = od;
  const $ = (id) => document.getElementById(id);
  const meta = document.querySelector('meta[name="account"]');
  const me = meta ? meta.content : "";
  const pad = (n) => String(n).padStart(2, "0");
  // "14:35" in local time.
  const hhmm = (unix) => { const d = new Date(unix * 1000); return pad(d.getHours()) + ":" + pad(d.getMinutes()); };

  let users = [];
  let policy = null;
  // Bumped on every change of the caller: an answer that arrives for an
  // earlier caller is dropped, never shown beside the new one.
  let flow = 0;
  let grant = null;
  // A Temporary Access Pass on screen (shown once; never fetched again).
  let pass = null;
  // Whether the policy allows passes and this console is connected to Entra.
  let tapOffered = false;
  // The approval request this caller's flow waits for, and its state.
  let waitingFor = null;
  let waitingState = null;
  // The method blocks: the first, and a second one when the first does
  // not suffice alone.
  let blocks = [];

  function stateChip(token) {
    return el("span", { class: "pill state-" + token.state }, token.state + (token.custody === "purged" ? " · purged" : ""));
  }

  function acceptedMethods() {
    if (!policy) return [];
    return policy.methods.filter((m) => !policy.accepted.length || policy.accepted.includes(m.name));
  }

  const suffix = (index) => (index === 0 ? "" : "-" + (index + 1));

  function makeBlock(index) {
    const s = suffix(index);
    const select = el("select", { id: "method" + s, name: "method" + s, required: true },
      el("option", { value: "" }, index === 0 ? "choose how you verify the caller" : "choose a second method"));
    for (const method of acceptedMethods()) {
      select.append(el("option", { value: method.name }, method.title + (method.sufficient ? "" : " (not enough alone)")));
    }
    const message = el("div", { id: "method-message" + s, class: "message" });
    const steps = el("ol", { id: "steps" + s, class: "steps", "aria-label": "Steps of the method" });
    const need = el("span", { class: "need", id: "evidence-need" + s });
    const evidence = el("textarea", {
      id: "evidence" + s, name: "evidence" + s, rows: 3,
      placeholder: "e.g. called the number on file; the user answered and confirmed they asked for a code",
    });
    const root = el("div", { class: "method-block", id: "block" + s },
      index > 0 ? el("p", { class: "hint", id: "second-note" }) : null,
      el("div", { class: "field wide" }, el("label", { for: "method" + s }, index === 0 ? "Method" : "Second method"), select),
      message, steps,
      el("div", { class: "field wide" }, el("label", { for: "evidence" + s }, "What you saw or heard ", need), evidence));
    const block = { index, root, select, message, steps, evidence, need, view: null, seq: 0 };
    select.addEventListener("change", () => loadSteps(block));
    return block;
  }

  function newBlocks() {
    blocks = [makeBlock(0)];
    $("methods").replaceChildren(blocks[0].root);
    blocks[0].select.disabled = !policy || !$("user").value.trim();
    $("method-hint").classList.toggle("hidden", !!$("user").value.trim());
  }

  // A second method when the first one does not suffice alone.
  function updateSecond() {
    const first = blocks[0];
    const needed = first.view && !first.view.sufficient;
    if (needed && blocks.length === 1) {
      const second = makeBlock(1);
      for (const option of second.select.options) {
        if (option.value === first.select.value) option.disabled = true;
      }
      blocks.push(second);
      $("methods").append(second.root);
    } else if (!needed && blocks.length > 1) {
      blocks[1].root.remove();
      blocks = [first];
    }
    if (blocks.length > 1) {
      $("second-note").textContent = "“" + first.view.title + "” does not suffice alone: verify the caller with a second method too.";
    }
  }

  function updateReveal() {
    // A request that waits (or was approved) is collected, not asked again.
    const waiting = !!waitingFor && (waitingState === "pending" || waitingState === "approved");
    const ready = !waiting && !!$("user").value.trim() && blocks.length > 0 && blocks.every((b) => b.view && !b.view.unusable);
    $("reveal-button").disabled = !ready;
    $("tap-button").disabled = !ready;
    $("tap-button").classList.toggle("hidden", !tapOffered);
    $("reveal-hint").classList.toggle("hidden", ready);
    const unusable = blocks.some((b) => b.view && b.view.unusable);
    $("reveal-hint").textContent = waiting ? "A request for this caller waits for approval: collect its code."
      : unusable ? "This method cannot be used for this caller: choose another."
        : "Choose the caller and a method first.";
  }

  function renderSteps(block, view) {
    const s = suffix(block.index);
    for (const step of view.steps) {
      const id = "step" + s + "-" + step.number;
      const facts = step.data.map((fact) => {
        const value = el("span", { class: "fact-value" }, fact.shown);
        // The whole value only to dial it: fetched on demand, audited by the vault.
        const reveal = el("button", {
          type: "button", class: "small", "data-reveal": fact.name,
          onclick: async () => {
            try {
              const answer = await od.api("POST", "/api/v1/helpdesk/reveal",
                { user: view.user, method: view.method, name: fact.name });
              value.textContent = answer.value;
              reveal.remove();
            } catch (e) { show(block.message.id, e.message, "error"); }
          },
        }, "Show to dial");
        return el("span", { class: "fact" },
          el("span", { class: "fact-name" }, fact.name.replace(/_/g, " ")), " ",
          value, " ",
          el("span", { class: "hint" }, "(" + fact.source + ", " + od.utc(fact.at).slice(0, 10) + ")"), " ",
          reveal);
      });
      block.steps.append(el("li", {},
        el("label", { class: "check" },
          el("input", { type: "checkbox", id, name: id, disabled: !!view.unusable }),
          el("span", {}, el("span", { class: "step-number" }, step.number + ". "), step.text)),
        facts.length ? el("div", { class: "on-file" }, el("span", { class: "hint" }, "On file:"), ...facts) : null));
    }
    if (view.unusable) {
      show(block.message.id, view.unusable + ": this method cannot be used for this caller. Choose another method, or have their data imported.", "error");
    }
    block.need.textContent = view.evidence_required ? "(required)" : "(optional for this method)";
    block.evidence.required = view.evidence_required;
  }

  async function loadSteps(block) {
    block.view = null;
    block.steps.replaceChildren();
    show(block.message.id, "");
    block.need.textContent = "";
    block.evidence.required = false;
    const seq = ++block.seq;
    const mine = flow;
    const method = block.select.value;
    const user = $("user").value.trim();
    if (method && user) {
      try {
        const view = await api("GET", "/api/v1/helpdesk/verification?user=" + encodeURIComponent(user) + "&method=" + encodeURIComponent(method));
        if (mine !== flow || seq !== block.seq) return;
        block.view = view;
        renderSteps(block, view);
      } catch (e) {
        if (mine !== flow || seq !== block.seq) return;
        show(block.message.id, e.message, "error");
      }
    }
    if (block.index === 0) updateSecond();
    updateReveal();
  }

  function hideOutcome() {
    grant = null;
    waitingFor = null;
    waitingState = null;
    $("collect-button").disabled = false;
    $("grant").classList.add("hidden");
    $("grant-code").textContent = "";
    delete $("grant-code").dataset.code;
    $("grant-for").textContent = "";
    $("grant-countdown").textContent = "";
    $("grant-note").textContent = "";
    $("waiting").classList.add("hidden");
    $("waiting-text").textContent = "";
    $("waiting-reason").textContent = "";
    pass = null;
    $("tap").classList.add("hidden");
    $("tap-pass").textContent = "";
    $("tap-for").textContent = "";
    $("tap-note").textContent = "";
  }

  // A change of the caller starts over: nothing of the previous caller's
  // verification, ticket or code stays on the screen.
  function resetFlow() {
    flow += 1;
    hideOutcome();
    newBlocks();
    $("ticket").value = "";
    $("valid-for").value = "0";
    $("verifier").value = "entra";
    show("reveal-message", "");
    updateReveal();
  }

  function tokenOptions(user) {
    const select = $("token");
    select.replaceChildren(el("option", { value: "" }, "the user's only usable token"));
    for (const token of (user ? user.tokens : [])) {
      const usable = token.custody === "held" && token.state !== "lost" && token.state !== "retired";
      select.append(el("option", { value: token.reference, disabled: !usable },
        token.reference + " — " + token.state + (usable ? "" : " (no codes)")));
    }
  }

  function choose(user) {
    $("user").value = user.upn;
    tokenOptions(user);
    resetFlow();
    blocks[0].select.focus();
  }

  $("user").addEventListener("input", () => {
    tokenOptions(null);
    resetFlow();
  });

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
          el("button", { type: "button", class: "secondary small", "aria-label": "Choose " + user.upn, onclick: () => choose(user) }, "Choose")));
      }
    } catch (e) { show("search-message", e.message, "error"); }
  }
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 250); });
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });

  function showGrant(answer) {
    grant = answer;
    waitingFor = null;
    waitingState = null;
    od.learnTime(answer.time);
    show("reveal-message", "");
    $("waiting").classList.add("hidden");
    $("grant-code").textContent = od.grouped(answer.code);
    $("grant-code").dataset.code = answer.code;
    $("grant-for").textContent = "Code for " + answer.user + " · " + (answer.serial ? answer.serial + (answer.slot === null ? "" : ":" + answer.slot) : "#" + answer.credential_id);
    $("grant-note").textContent = answer.remaining_this_hour + " more code(s) for this user this hour. Verifier " + answer.verifier + ".";
    $("grant").classList.remove("hidden");
    tick();
    $("grant-code").focus();
  }

  function showWaiting(request) {
    hideOutcome();
    waitingFor = request.id;
    waitingState = "pending";
    show("reveal-message", "");
    $("waiting-text").replaceChildren("Waiting for approval by another operator: request ",
      el("span", { class: "mono nowrap" }, request.id), ", expires " + hhmm(request.expires_at) + ".");
    $("waiting-reason").textContent = request.reason ? "Why: " + request.reason + "." : "";
    $("waiting").classList.remove("hidden");
    refreshApprovals();
  }

  // The caller, how they were verified and the ticket: the same for a
  // code and for a pass.
  function callerRequest() {
    return {
      user: $("user").value.trim(),
      verifications: blocks.map((block) => ({
        method: block.select.value,
        confirmed: block.view ? block.view.steps.map((step) => $("step" + suffix(block.index) + "-" + step.number).checked) : [],
        evidence: block.evidence.value,
      })),
      ticket: $("ticket").value,
    };
  }

  $("reveal-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const mine = flow;
    const request = callerRequest();
    request.verifier = $("verifier").value;
    if ($("token").value) request.serial = $("token").value;
    if (Number($("valid-for").value) > 0) request.valid_for = Number($("valid-for").value);
    $("reveal-button").disabled = true;
    try {
      const answer = await api("POST", "/api/v1/helpdesk/code", request);
      if (mine !== flow) return;
      if (answer && answer.kind === "approval_required") showWaiting(answer);
      else showGrant(answer);
    } catch (e) {
      if (mine !== flow) return;
      hideOutcome();
      show("reveal-message", e.message, e.kind === "rate_limited" ? "warn" : "error");
    } finally { updateReveal(); }
  });
  $("grant-copy").addEventListener("click", () => { if (grant) od.copy(grant.code, "Code"); });

  function showPass(answer) {
    hideOutcome();
    pass = answer;
    show("reveal-message", "");
    $("tap-for").textContent = "Temporary Access Pass for " + answer.user;
    $("tap-pass").textContent = answer.temporary_access_pass;
    $("tap-note").textContent = "Valid " + answer.lifetime_minutes + " minute(s)" +
      (answer.usable_once ? ", for one sign-in" : "") +
      (answer.start ? ", from " + od.utc(Date.parse(answer.start) / 1000) : "") +
      ". Read it to the caller now: it is not kept and cannot be shown again.";
    $("tap").classList.remove("hidden");
    $("tap-pass").focus();
  }

  $("tap-button").addEventListener("click", async () => {
    const mine = flow;
    $("tap-button").disabled = true;
    $("reveal-button").disabled = true;
    try {
      const answer = await api("POST", "/api/v1/helpdesk/tap", callerRequest());
      if (mine !== flow) return;
      showPass(answer);
    } catch (e) {
      if (mine !== flow) return;
      hideOutcome();
      show("reveal-message", e.message, "error");
    } finally { updateReveal(); }
  });
  $("tap-copy").addEventListener("click", () => { if (pass) od.copy(pass.temporary_access_pass, "Pass"); });

  async function collect(id) {
    const mine = flow;
    try {
      const answer = await api("POST", "/api/v1/helpdesk/approvals/" + encodeURIComponent(id) + "/collect", {});
      if (mine !== flow) return;
      showGrant(answer);
      updateReveal();
      refreshApprovals();
    } catch (e) {
      if (mine !== flow) return;
      show("reveal-message", e.message, "warn");
    }
  }
  $("collect-button").addEventListener("click", () => { if (waitingFor) collect(waitingFor); });

  function tick() {
    if (!grant) return;
    if (grant.event_based) {
      // An HOTP code has no time limit: it stays good until a later one is used.
      $("grant-fill").style.width = "100%";
      $("grant-bar").classList.remove("late");
      $("grant-code").classList.remove("expired");
      $("grant-countdown").textContent = "HOTP counter " + grant.counter + ": accepted until a later code of the token is used";
      return;
    }
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

  // ----- approval requests ---------------------------------------------

  let shown = "";
  function describe(approval) {
    const evidence = approval.verifications.map((v) => v.evidence).filter(Boolean);
    return el("dl", { class: "kv" },
      el("dt", {}, "Ticket"), el("dd", { class: "mono" }, approval.ticket),
      el("dt", {}, "Verified by"), el("dd", {}, approval.methods.join(", ")),
      evidence.length ? [el("dt", {}, "Evidence"), el("dd", {}, evidence.join(" / "))] : null,
      el("dt", {}, "Why asked"), el("dd", {}, approval.reason));
  }

  async function decide(approval, verb) {
    const note = $("note-" + approval.id);
    try {
      await api("POST", "/api/v1/helpdesk/approvals/" + encodeURIComponent(approval.id) + "/" + verb, { note: note ? note.value : "" });
      od.toast(approval.id + (verb === "approve" ? " approved" : " denied"));
      show("approvals-message", "");
    } catch (e) { show("approvals-message", e.message, "error"); }
    await refreshApprovals(true);
    // The decided request's buttons are gone: keep the keyboard in the panel.
    $("approvals-title").focus();
  }

  function collectFrom(approval) {
    if ($("user").value.trim() !== approval.user) {
      $("user").value = approval.user;
      tokenOptions(null);
      resetFlow();
    }
    collect(approval.id);
  }

  function renderApprovals(list) {
    const others = list.filter((a) => a.requester !== me && a.state === "pending");
    const mine = list.filter((a) => a.requester === me).slice(0, 8);
    // Keep what someone is typing in a note across a refresh.
    const notes = {};
    for (const input of document.querySelectorAll("#approvals-others input")) notes[input.id] = input.value;
    const focused = document.activeElement && document.activeElement.id;
    const box = $("approvals-others");
    box.replaceChildren();
    if (!others.length) box.append(el("p", { class: "hint" }, "No request of another operator waits for a decision."));
    for (const approval of others) {
      const noteId = "note-" + approval.id;
      box.append(el("article", { class: "approval", id: "approval-" + approval.id },
        el("div", { class: "approval-head" }, el("strong", {}, approval.requester), " asks for a code for ", el("strong", {}, approval.user)),
        el("div", { class: "hint" }, approval.id + " · asked " + hhmm(approval.created_at) + " · expires " + hhmm(approval.expires_at)),
        describe(approval),
        el("div", { class: "approval-actions" },
          el("div", { class: "field" }, el("label", { for: noteId }, "Note (optional)"),
            el("input", { id: noteId, placeholder: "e.g. call-back record checked with the caller's manager" })),
          el("div", { class: "actions" },
            el("button", { type: "button", class: "small", "data-approve": approval.id, onclick: () => decide(approval, "approve") }, "Approve"),
            el("button", { type: "button", class: "danger small", "data-deny": approval.id, onclick: () => decide(approval, "deny") }, "Deny")))));
    }
    for (const [id, value] of Object.entries(notes)) { if ($(id)) $(id).value = value; }
    if (focused && $(focused) && box.contains($(focused))) $(focused).focus();
    const own = $("approvals-mine");
    own.replaceChildren();
    if (!mine.length) own.append(el("p", { class: "hint" }, "You have asked for no approval yet."));
    for (const approval of mine) {
      const decided = approval.decided_by ? " by " + approval.decided_by + (approval.note ? " (“" + approval.note + "”)" : "") : "";
      own.append(el("article", { class: "approval mine", id: "mine-" + approval.id },
        el("div", { class: "approval-head" }, el("span", { class: "mono" }, approval.id), " · ", approval.user, " · ",
          el("span", { class: "pill approval-" + approval.state }, approval.state), decided),
        el("div", { class: "hint" }, "ticket " + approval.ticket + " · asked " + hhmm(approval.created_at) + (approval.state === "pending" ? " · expires " + hhmm(approval.expires_at) : "")),
        approval.state === "approved"
          ? el("div", { class: "actions" }, el("button", { type: "button", class: "small", onclick: () => collectFrom(approval) }, "Collect the code"))
          : null));
    }
  }

  async function refreshApprovals(force) {
    try {
      const answer = await api("GET", "/api/v1/helpdesk/approvals");
      od.learnTime(answer.time);
      const signature = JSON.stringify(answer.approvals.map((a) => [a.id, a.state]));
      if (force === true || signature !== shown) {
        shown = signature;
        renderApprovals(answer.approvals);
      }
      const waiting = waitingFor && answer.approvals.find((a) => a.id === waitingFor);
      if (waiting && waiting.state !== waitingState) {
        waitingState = waiting.state;
        const id = el("span", { class: "mono nowrap" }, waiting.id);
        if (waiting.state === "approved") {
          $("waiting-text").replaceChildren("Request ", id, " was approved by " + waiting.decided_by + ": collect the code.");
        } else if (waiting.state !== "pending") {
          $("waiting-text").replaceChildren("Request ", id, " is " + waiting.state + (waiting.decided_by ? " (" + waiting.decided_by + ")" : "") + ": no code comes from it.");
        }
        $("collect-button").disabled = waiting.state !== "pending" && waiting.state !== "approved";
        updateReveal();
      }
    } catch (e) { show("approvals-message", e.message, "error"); }
  }
  setInterval(() => { if (document.visibilityState === "visible") refreshApprovals(); }, 10000);

  // ----- identify and deliver ------------------------------------------

  // Where the code the caller read stands from now: not the token's drift.
  function codePosition(offset) {
    const steps = Math.abs(offset) === 1 ? "1 step" : Math.abs(offset) + " steps";
    return offset === 0 ? "the current code" : "the code of " + steps + (offset > 0 ? " ahead" : " behind");
  }

  $("identify-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const codes = [$("code1").value, $("code2").value].map((c) => c.trim()).filter(Boolean);
    try {
      const hits = await api("POST", "/api/v1/identify", { codes });
      const body = $("identify-table").querySelector("tbody");
      body.replaceChildren();
      for (const hit of hits) {
        body.append(el("tr", {}, el("td", { class: "mono" }, hit.credential), el("td", {}, hit.user || "—"),
          el("td", {}, el("span", { class: "pill" }, hit.state)),
          // The token's own drift on a line of its own: a code ahead is not drift.
          el("td", {}, codePosition(hit.offset),
            el("div", { class: "hint" }, "recorded drift: " + (hit.drift_steps === null || hit.drift_steps === undefined
              ? "not recorded" : (hit.drift_steps > 0 ? "+" : "") + hit.drift_steps + " step(s)")))));
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

  // ----- start -----------------------------------------------------------

  newBlocks();
  updateReveal();
  (async () => {
    try {
      policy = await api("GET", "/api/v1/helpdesk/policy");
      const tap = await api("GET", "/api/v1/helpdesk/tap");
      tapOffered = tap.enabled && tap.connected;
      if (!blocks[0].select.value) newBlocks();
      updateReveal();
    } catch (e) {
      show("reveal-message", "The verification policy could not be read: " + e.message, "error");
    }
  })();
  refreshApprovals();
});
