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
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
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

  function show(id, text, kind) {
    const box = document.getElementById(id);
    if (!box) return;
    box.textContent = text || "";
    box.className = "message" + (kind ? " " + kind : "");
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

  document.addEventListener("DOMContentLoaded", () => {
    const signOut = document.getElementById("sign-out");
    if (signOut) {
      signOut.addEventListener("click", async () => {
        try { await api("POST", "/api/v1/logout"); } catch (e) { /* gone already */ }
        location.assign("/login");
      });
    }
  });

  return { api, el, toast, show, copy, clock, utc, span, seconds, grouped, learnTime, now, form };
})();
