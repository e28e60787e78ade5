// oathdesk console: what every page shares. No framework, no inline
// script (the CSP forbids it), no innerHTML with data (text nodes only).
"use strict";

const od = (() => {
  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  // Calls the JSON API; throws an Error with the server's message (and
  // its status and kind). A 202 (a helpdesk code waiting for approval) is
  // an answer, not an error: its body has kind "approval_required".
  // options.signal (an AbortController's) cancels the request.
  async function api(method, path, body, options) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (options && options.signal) init.signal = options.signal;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (method !== "GET") headers["X-CSRF-Token"] = csrf();
    const response = await fetch(path, init);
    let data = null;
    if (response.status !== 204) {
      const text = await response.text();
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
    }
    if (!response.ok) {
      if (response.status === 401 && !location.pathname.startsWith("/login") && !location.pathname.startsWith("/setup")) {
        location.assign("/login");
      }
      const error = new Error((data && data.error) || response.statusText);
      error.status = response.status;
      // The vault's kind of refusal (rate_limited, refused, forbidden…):
      // pages branch on it, never on the words.
      error.kind = (data && data.kind) || null;
      throw error;
    }
    return data;
  }

  // Builds an element: el("td", {class: "mono"}, "text", child, ...).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (value === true) node.setAttribute(name, "");
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  let toastTimer = null;
  function toast(text) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => box.classList.remove("show"), 2200);
  }

  // A page's message box. It is a live region: a screen reader reads out
  // results, and errors and refusals at once.
  function show(id, text, kind) {
    const box = document.getElementById(id);
    if (!box) return;
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.textContent = text || "";
    box.className = "message" + (kind ? " " + kind : "");
  }

  // Asks in the page (never the browser's prompt() or confirm()): resolves
  // to null when the person cancels (the Cancel button, Escape, or the
  // close), or to {value} (the note typed, "" without a field) when they
  // confirm. The focus goes back to what had it.
  //   ask({title, text, confirm: "Mark lost", danger: true,
  //        field: {label: "Note", placeholder: "…", type: "text", required: false}})
  function ask(options) {
    const opener = document.activeElement;
    const id = "ask-" + Math.random().toString(36).slice(2);
    const input = options.field ? el("input", {
      id: id + "-field", type: options.field.type || "text", placeholder: options.field.placeholder || null,
      autocomplete: "off", required: !!options.field.required, minlength: options.field.minlength || null,
    }) : null;
    const confirmButton = el("button", { type: "submit", value: "confirm", class: options.danger ? "danger-solid" : null, id: id + "-confirm" }, options.confirm || "OK");
    const cancelButton = el("button", { type: "button", class: "secondary", id: id + "-cancel" }, options.cancel || "Cancel");
    const dialog = el("dialog", { class: "ask", "aria-labelledby": id + "-title", "aria-describedby": options.text ? id + "-text" : null },
      el("form", { method: "dialog" },
        el("h2", { id: id + "-title" }, options.title || "Are you sure?"),
        options.text ? el("p", { id: id + "-text" }, options.text) : null,
        input ? el("div", { class: "field wide" }, el("label", { for: input.id }, options.field.label), input) : null,
        el("div", { class: "actions" }, confirmButton, cancelButton)));
    document.body.append(dialog);
    return new Promise((resolve) => {
      let answer = null;
      dialog.querySelector("form").addEventListener("submit", (event) => {
        if (input && !input.checkValidity()) { event.preventDefault(); input.reportValidity(); return; }
        answer = { value: input ? input.value : "" };
      });
      cancelButton.addEventListener("click", () => dialog.close());
      // Escape fires "cancel", then "close": nothing was confirmed.
      dialog.addEventListener("close", () => {
        dialog.remove();
        if (opener && typeof opener.focus === "function" && document.contains(opener)) opener.focus();
        resolve(answer);
      });
      dialog.showModal();
      (input || cancelButton).focus();
    });
  }

  // Runs a slow action with its button disabled and marked busy, and the
  // page's old message cleared meanwhile: one click, one request.
  async function busy(button, messageId, action) {
    if (button && button.disabled) return undefined;
    const label = button ? button.textContent : "";
    if (messageId) show(messageId, "");
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.classList.add("busy");
      button.textContent = label.replace(/\u2026$/, "") + "\u2026";
    }
    try {
      return await action();
    } finally {
      if (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
        button.classList.remove("busy");
        button.textContent = label;
      }
    }
  }

  async function copy(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      toast((what || "Text") + " copied");
    } catch (e) {
      toast("Copy failed: select and copy by hand");
    }
  }

  const pad = (n) => String(n).padStart(2, "0");
  // "14:03:30" in local time.
  function clock(unix) {
    const d = new Date(unix * 1000);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  // "2026-11-22 14:03:30 UTC".
  function utc(unix) {
    return new Date(unix * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  // "2026-11-22 15:03:30" in local time, with UTC on hover.
  function when(unix) {
    const d = new Date(unix * 1000);
    const text = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + clock(unix);
    return el("time", { datetime: d.toISOString(), title: utc(unix) }, text);
  }
  function span(from, until) {
    return clock(from) + " – " + clock(until);
  }
  function seconds(n) {
    n = Math.max(0, Math.round(n));
    if (n < 60) return n + " s";
    if (n < 3600) return Math.floor(n / 60) + " min " + pad(n % 60) + " s";
    return Math.floor(n / 3600) + " h " + pad(Math.floor((n % 3600) / 60)) + " min";
  }
  // "123 456" for reading out.
  function grouped(code) {
    if (code.length === 6) return code.slice(0, 3) + " " + code.slice(3);
    if (code.length === 8) return code.slice(0, 4) + " " + code.slice(4);
    return code;
  }

  // The server's clock, as learnt from answers that carry "time".
  let skew = 0;
  function learnTime(serverTime) {
    if (typeof serverTime === "number") skew = serverTime - Date.now() / 1000;
  }
  const now = () => Date.now() / 1000 + skew;

  function form(formElement) {
    const values = {};
    for (const element of formElement.elements) {
      if (!element.name) continue;
      if (element.type === "checkbox") values[element.name] = element.checked;
      else values[element.name] = element.value;
    }
    return values;
  }

  // Tabs: the arrow keys, Home and End move between a tab list's tabs (and
  // choose them), as the ARIA tabs pattern has it.
  document.addEventListener("keydown", (event) => {
    const tab = event.target.closest && event.target.closest('[role="tab"]');
    if (!tab) return;
    const list = tab.closest('[role="tablist"]');
    if (!list) return;
    const tabs = [...list.querySelectorAll('[role="tab"]')].filter((t) => !t.disabled && !t.hidden);
    const at = tabs.indexOf(tab);
    let next = null;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") next = tabs[(at + 1) % tabs.length];
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = tabs[(at - 1 + tabs.length) % tabs.length];
    else if (event.key === "Home") next = tabs[0];
    else if (event.key === "End") next = tabs[tabs.length - 1];
    if (!next) return;
    event.preventDefault();
    next.focus();
    next.click();
  });
  // The selected tab is the one reached with Tab; the others by the arrows.
  function rovingTabs() {
    for (const tab of document.querySelectorAll('[role="tab"]')) {
      tab.tabIndex = tab.getAttribute("aria-selected") === "true" ? 0 : -1;
    }
  }
  new MutationObserver(rovingTabs).observe(document.documentElement, { subtree: true, attributes: true, attributeFilter: ["aria-selected"] });

  document.addEventListener("DOMContentLoaded", () => {
    rovingTabs();
    const signOut = document.getElementById("sign-out");
    if (signOut) {
      signOut.addEventListener("click", async () => {
        let next = "/login";
        try {
          const data = await api("POST", "/api/v1/logout");
          // Signed in through the organisation: end that session too.
          if (data && data.end_session) next = data.end_session;
        } catch (e) { /* gone already */ }
        location.assign(next);
      });
    }
  });

  return { api, el, toast, show, ask, busy, copy, clock, utc, when, span, seconds, grouped, learnTime, now, form };
})();
