// Tiny DOM helpers: build elements, show errors in place, format numbers and dates.
import { t } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "testid") el.dataset.testid = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
export function field(label, control, { hint, cls } = {}) {
  control.id ||= `f${++ids}`;
  if (cls === "check") return h("label", { class: "field check", for: control.id }, control, h("span", {}, label));
  return h("label", { class: "field" + (cls ? ` ${cls}` : ""), for: control.id }, h("span", {}, label), control,
    hint ? h("small", { class: "muted" }, hint) : null);
}

export function select(options, value, attrs = {}) {
  const el = h("select", attrs);
  for (const o of options) {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    el.append(h("option", { value: v, selected: v === value }, label));
  }
  if (value !== undefined) el.value = value;
  return el;
}

export function errorBox(error) {
  const code = error && error.code ? ` (${error.code}${error.param ? `, ${error.param}` : ""})` : "";
  return h("div", { class: "error-box", role: "alert" }, h("strong", {}, t("error")), `${error.message || error}${code}`);
}

// Run an async action, showing its error inside `slot` instead of letting it escape.
export async function guard(slot, fn) {
  try {
    return await fn();
  } catch (e) {
    if (e.name === "AbortError") return undefined;
    console.warn(e);
    if (slot) slot.append(errorBox(e));
    return undefined;
  }
}

export function busy(button, fn) {
  return async (...args) => {
    button.disabled = true;
    try { return await fn(...args); } finally { button.disabled = false; }
  };
}

export const fmt = {
  num: (n, d = 0) => (n === null || n === undefined || Number.isNaN(n) ? "—" : Number(n).toLocaleString(undefined,
    { maximumFractionDigits: d, minimumFractionDigits: d })),
  bytes(n) {
    if (n === null || n === undefined) return "—";
    const u = ["B", "KB", "MB", "GB"]; let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
  },
  duration(s) {
    s = Math.round(s);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  },
  date: (s) => (s ? new Date(s * 1000).toLocaleString() : "—"),
  short: (s, n = 80) => (s && s.length > n ? s.slice(0, n - 1) + "…" : s || ""),
};

export function badge(text, cls) {
  return h("span", { class: `badge ${cls || text}` }, t(`status.${text}`, {}, text));
}

export function download(name, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function params() {
  const q = location.hash.split("?")[1] || "";
  return Object.fromEntries(new URLSearchParams(q));
}
