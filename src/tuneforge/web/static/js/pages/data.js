// Data: upload any supported format → detected shape + field mapping → converted preview →
// check report (grouped by code, with lines and snippets), token histogram and estimate → training file.
import { api, apiText, listAll, upload } from "../api.js";
import { t } from "../i18n.js";
import { badge, busy, clear, errorBox, field, fmt, guard, h, select } from "../ui.js";

const ACCEPT = ".jsonl,.json,.csv,.tsv,.xlsx,.txt,.md,.markdown,.docx,.html,.htm,.pdf";
const MAP_KEYS = ["system", "user", "assistant", "turns", "role", "content", "roles", "prompt", "chosen", "rejected"];

export async function render(root) {
  const flow = h("div", { "aria-live": "polite" });
  const filesSlot = h("div");
  const input = h("input", { type: "file", accept: ACCEPT, testid: "upload-input" });
  input.addEventListener("change", () => input.files[0] && guard(flow, () => start(input.files[0], flow, refresh)));
  async function refresh() {
    await guard(clear(filesSlot), async () => clear(filesSlot, filesTable(await listAll("/files?limit=200"), flow, refresh)));
  }
  root.append(
    h("h1", {}, t("data.title")),
    h("section", { class: "panel" }, h("h2", {}, t("data.upload")),
      h("p", { class: "muted" }, t("data.uploadHelp")), field(t("data.chooseFile"), input)),
    flow,
    h("section", { class: "panel" }, h("h2", {}, t("data.files")), filesSlot));
  await refresh();
}

async function start(file, flow, refresh) {
  clear(flow, h("p", { class: "muted spinner" }, t("data.uploading", { name: file.name })));
  const jsonl = /\.jsonl$/i.test(file.name);
  // A ready JSONL file is a training file as it is; anything else is kept as the source of a conversion.
  const row = await upload(file, jsonl ? "fine-tune" : "user_data");
  refresh();
  const detectSlot = h("section", { class: "panel" });
  const checkSlot = h("div");
  clear(flow, detectSlot, checkSlot);
  await detect(row, jsonl, null, detectSlot, checkSlot, refresh);
}

async function detect(row, jsonl, map, slot, checkSlot, refresh) {
  clear(slot, h("h2", {}, t("data.detected")), h("p", { class: "muted" }, `${row.filename} · ${row.id}`));
  let conv = null;
  await guard(slot, async () => {
    conv = await api(`/files/${row.id}/convert`, { method: "POST", body: { map, preview: 3 } });
  });
  if (conv) {
    slot.append(h("p", {}, badge(conv.shape, "info"), " ", conv.detected));
  }
  // The mapping form stays folded while detection worked and no mapping is in use.
  slot.append(h("details", { open: !conv || !!map }, h("summary", {}, t("data.mapping")),
    mappingForm(conv ? conv.keys : [], map, (m) => detect(row, jsonl, m, slot, checkSlot, refresh))));
  if (!conv) return;
  slot.append(h("div", {}, h("h3", {}, t("data.preview")),
    conv.preview.length ? conv.preview.map(exampleView) : h("p", { class: "muted" }, t("data.noPreview"))));
  if (jsonl && !map && (conv.shape === "chat" || conv.shape === "dpo")) {
    slot.append(h("p", { class: "success" }, t("data.alreadyTraining", { id: row.id })));
    await checkPanel(row, checkSlot);
    return;
  }
  const out = h("div");
  const save = h("button", { class: "primary", testid: "convert-save" }, t("data.convertSave"));
  save.addEventListener("click", busy(save, () => guard(clear(out), async () => {
    const res = await api(`/files/${row.id}/convert`, { method: "POST", body: { map, preview: 0, save: true } });
    out.append(h("p", { class: "success" }, t("data.saved", { n: res.written, id: res.file.id, name: res.file.filename })));
    if (res.dropped_count) {
      out.append(h("p", { class: "muted" }, t("data.dropped", { n: res.dropped_count })),
        h("ul", {}, res.dropped.slice(0, 10).map((d) => h("li", {}, `${t("data.line")} ${d.line}: ${d.reason}`))));
    }
    refresh();
    await checkPanel(res.file, checkSlot);
  })));
  slot.append(h("div", { class: "toolbar" }, save), out);
}

function mappingForm(keys, map, onApply) {
  const current = Object.fromEntries((map || []).map((m) => [m.split("=")[0], m.slice(m.indexOf("=") + 1)]));
  const listId = `keys-${Math.random().toString(36).slice(2)}`;
  const inputs = MAP_KEYS.map((k) => [k, h("input", { type: "text", list: listId, value: current[k] || "", size: 14 })]);
  const form = h("form", { class: "note", onsubmit: (e) => {
    e.preventDefault();
    const spec = inputs.filter(([, i]) => i.value.trim()).map(([k, i]) => `${k}=${i.value.trim()}`);
    onApply(spec.length ? spec : null);
  } },
  h("p", { class: "small muted" }, t("data.mappingHelp"), keys.length ? ` ${t("data.fields")}: ${keys.join(", ")}` : ""),
  h("datalist", { id: listId }, keys.map((k) => h("option", { value: k }))),
  h("div", { class: "row" }, inputs.map(([k, i]) => field(k, i))),
  h("button", { type: "submit", testid: "map-apply" }, t("data.applyMap")));
  return form;
}

function exampleView(ex) {
  const msgs = ex.messages || (ex.input && ex.input.messages) || [];
  const extra = ex.preferred_output ? [{ role: "preferred", content: ex.preferred_output[0].content },
    { role: "rejected", content: ex.non_preferred_output[0].content }] : [];
  return h("div", { class: "bubble" }, [...msgs, ...extra].map((m) => h("div", {},
    h("span", { class: "r" }, m.role), fmt.short(typeof m.content === "string" ? m.content : JSON.stringify(m.content), 300))));
}

async function checkPanel(file, slot) {
  const models = (await listAll("/models")).filter((m) => !m.id.startsWith("ft:") && !/e5|embed/i.test(m.id));
  const modelSel = select(models.map((m) => m.id), models[0] && models[0].id, { testid: "check-model" });
  const report = h("div");
  const run = h("button", { class: "primary", testid: "check-run" }, t("data.check"));
  run.addEventListener("click", busy(run, () => check(file, modelSel.value, report)));
  clear(slot, h("section", { class: "panel" }, h("h2", {}, t("data.checkTitle", { name: file.filename })),
    h("p", { class: "muted" }, t("data.checkHelp")),
    h("div", { class: "row" }, field(t("data.baseModel"), modelSel), h("div", { class: "field" }, run)), report));
}

async function check(file, model, slot) {
  clear(slot, h("p", { class: "muted spinner" }, t("data.checking")));
  await guard(clear(slot), async () => {
    const body = model ? { model } : {};
    const rep = await api(`/files/${file.id}/check`, { method: "POST", body });
    let lines = [];
    if (file.bytes < 4 * 1024 * 1024 && rep.issues.some((i) => i.samples.some((s) => s.line))) {
      lines = (await apiText(`/files/${file.id}/content`)).split("\n");
    }
    slot.append(reportView(rep, lines, file));
  });
}

function reportView(rep, lines, file) {
  const stat = (n, label) => h("div", { class: "stat" }, h("b", {}, n), h("span", {}, label));
  const st = rep.stats || {}, est = rep.estimate || {};
  return h("div", { testid: "check-report" },
    h("p", {}, rep.ok ? badge("ok") : badge("error"), " ", rep.ok ? t("data.ok") : t("data.notOk")),
    h("div", { class: "stats" }, stat(fmt.num(rep.examples), t("data.examples")),
      stat(fmt.num(rep.valid_examples), t("data.valid")), stat(fmt.num(rep.errors), t("data.errors")),
      stat(fmt.num(rep.warnings), t("data.warnings")),
      st.tokens ? stat(fmt.num(st.tokens.median), t("data.medianTokens")) : null,
      est.epochs ? stat(fmt.num(est.epochs), t("data.epochs")) : null,
      est.tokens_per_epoch ? stat(fmt.num(est.tokens_per_epoch), t("data.tokensEpoch")) : null,
      est.local ? stat(est.local.human, t("data.time")) : null),
    rep.issues.length ? h("h3", {}, t("data.issues")) : null,
    rep.issues.map((i) => h("div", { class: `issue ${i.severity}`, testid: `issue-${i.code}` },
      h("div", {}, badge(i.severity), " ", h("code", {}, i.code), ` × ${i.count} — ${i.meaning}`),
      i.lines.length ? h("div", { class: "small" }, `${t("data.lines")}: ${i.lines.slice(0, 30).join(", ")}${i.lines_truncated ? " …" : ""}`) : null,
      i.samples.slice(0, 5).map((s) => h("div", { class: "small" },
        s.line ? `${t("data.line")} ${s.line}: ` : "", s.message,
        s.line && lines[s.line - 1] !== undefined ? h("code", { class: "snip", testid: "snippet" }, fmt.short(lines[s.line - 1], 200)) : null)),
      i.hint ? h("div", { class: "small muted" }, `${t("data.hint")}: ${i.hint}`) : null)),
    st.token_histogram ? histogram(st.token_histogram, st) : null,
    est.local ? h("p", { class: "small muted" }, t("data.estimateNote", { model: rep.tokenizer || "", tps: est.local.tokens_per_second })) : null,
    rep.ok ? h("p", {}, h("a", { href: `#/finetune?training_file=${file.id}`, testid: "train-with" }, t("data.trainWith"))) : null);
}

function histogram(hist, st) {
  const max = Math.max(...hist.counts, 1);
  return h("div", {}, h("h3", {}, t("data.histogram")),
    h("div", { class: "hist", role: "img", "aria-label": t("data.histogram"), testid: "token-histogram" },
      hist.counts.map((c, i) => h("div", { style: { height: `${(100 * c) / max}%` },
        title: `${hist.edges[i]}–${hist.edges[i + 1] - 1}: ${c}` }))),
    h("div", { class: "hist-axis" }, h("span", {}, hist.edges[0]), h("span", {}, t("data.tokensPerExample", {
      mean: fmt.num(st.tokens.mean, 1), p95: fmt.num(st.tokens.p95) })), h("span", {}, hist.edges[hist.edges.length - 1] - 1)));
}

function filesTable(files, flow, refresh) {
  if (!files.length) return h("p", { class: "muted" }, t("data.noFiles"));
  return h("table", {}, h("thead", {}, h("tr", {}, ["filename", "purpose", "size", "status", "created", ""].map((c) =>
    h("th", { class: c === "size" ? "num" : null }, c ? t(`data.col.${c}`) : "")))),
  h("tbody", {}, files.map((f) => {
    const del = h("button", { class: "danger", "aria-label": `${t("delete")} ${f.filename}` }, t("delete"));
    del.addEventListener("click", busy(del, () => guard(flow, async () => {
      if (!confirm(t("confirmDelete", { name: f.filename }))) return;
      await api(`/files/${f.id}`, { method: "DELETE" });
      refresh();
    })));
    const chk = f.purpose === "fine-tune" ? h("button", { onclick: () => guard(flow, async () => {
      const slot = h("div"); clear(flow, slot); await checkPanel(f, slot); flow.scrollIntoView();
    }) }, t("data.check")) : null;
    // A kept source file (CSV, XLSX, documents...) can be mapped and converted again later.
    const conv = f.purpose === "user_data" ? h("button", { onclick: () => guard(flow, async () => {
      const detectSlot = h("section", { class: "panel" }), checkSlot = h("div");
      clear(flow, detectSlot, checkSlot);
      await detect(f, false, null, detectSlot, checkSlot, refresh);
      flow.scrollIntoView();
    }) }, t("data.convert")) : null;
    return h("tr", {}, h("td", {}, f.filename, h("div", { class: "small muted mono" }, f.id)), h("td", {}, f.purpose),
      h("td", { class: "num" }, fmt.bytes(f.bytes)), h("td", {}, badge(f.status)), h("td", {}, fmt.date(f.created_at)),
      h("td", {}, h("div", { class: "toolbar" }, chk, conv, del)));
  })));
}
