// Knowledge: vector stores — create, add files (ingestion status), and a search tester that shows
// each chunk's hybrid, vector and keyword scores side by side.
import { api, listAll, upload } from "../api.js";
import { t } from "../i18n.js";
import { badge, busy, clear, field, fmt, guard, h } from "../ui.js";

export async function render(root) {
  const stores = await listAll("/vector_stores?limit=100");
  const list = h("div"), detail = h("div"), errors = h("div");
  let timer = null;
  const name = h("input", { type: "text", size: 18, testid: "store-name" });
  const create = h("button", { class: "primary", type: "submit" }, t("kb.create"));
  const form = h("form", { onsubmit: (e) => {
    e.preventDefault();
    busy(create, () => guard(clear(errors), async () => {
      const store = await api("/vector_stores", { method: "POST", body: { name: name.value.trim() || undefined } });
      stores.unshift(store); name.value = ""; drawList(); open(store);
    }))();
  } }, h("div", { class: "row" }, field(t("kb.name"), name), h("div", { class: "field" }, create)));

  function drawList() {
    clear(list, stores.length ? h("ul", {}, stores.map((s) => h("li", {}, h("button", { class: "link", onclick: () => open(s) },
      s.name || s.id), " ", h("span", { class: "badge", title: t("kb.files") }, s.file_counts ? s.file_counts.completed : 0))))
      : h("p", { class: "muted" }, t("kb.none")));
  }

  async function open(store) {
    clearTimeout(timer);
    const files = h("div"), results = h("div"), slot = h("div");
    const fileInput = h("input", { type: "file", testid: "kb-upload" });
    fileInput.addEventListener("change", () => guard(slot, async () => {
      const f = await upload(fileInput.files[0], "assistants");
      await api(`/vector_stores/${store.id}/files`, { method: "POST", body: { file_id: f.id } });
      fileInput.value = "";
      drawFiles();
    }));
    async function drawFiles() {
      clearTimeout(timer);
      await guard(clear(files), async () => {
        const rows = await listAll(`/vector_stores/${store.id}/files?limit=100`);
        clear(files, rows.length ? h("table", {}, h("tbody", {}, rows.map((r) => h("tr", {}, h("td", { class: "mono small" }, r.id),
          h("td", {}, badge(r.status)), h("td", { class: "small" }, r.last_error ? r.last_error.message : fmt.bytes(r.usage_bytes))))))
          : h("p", { class: "muted" }, t("kb.noFiles")));
        if (rows.some((r) => r.status === "in_progress")) timer = setTimeout(drawFiles, 1500);
        else Object.assign(store, await api(`/vector_stores/${store.id}`)) && drawList();  // fresh file counts
      });
    }
    const query = h("input", { type: "search", size: 30, testid: "kb-query" });
    const k = h("input", { type: "number", min: 1, max: 50, value: "5", size: 4 });
    const go = h("button", { class: "primary", type: "submit" }, t("kb.search"));
    const searchForm = h("form", { onsubmit: (e) => {
      e.preventDefault();
      busy(go, () => guard(clear(results), async () => {
        const modes = ["hybrid", "vector", "keyword"];
        const pages = await Promise.all(modes.map((mode) => api(`/vector_stores/${store.id}/search`, { method: "POST",
          body: { query: query.value, max_num_results: Number(k.value), tuneforge_mode: mode } })));
        const chunks = new Map();
        pages.forEach((p, i) => p.data.forEach((r, rank) => {
          const key = `${r.file_id}\u0000${r.content[0].text}`;
          if (!chunks.has(key)) chunks.set(key, { r, scores: {}, order: i * 100 + rank });
          chunks.get(key).scores[modes[i]] = r.score;
        }));
        const rows = [...chunks.values()].sort((a, b) => a.order - b.order);
        clear(results, rows.length ? h("table", { testid: "kb-results" }, h("thead", {}, h("tr", {},
          h("th", {}, t("kb.chunk")), modes.map((m) => h("th", { class: "num" }, t(`kb.mode.${m}`))))),
        h("tbody", {}, rows.map(({ r, scores }) => h("tr", {}, h("td", {}, h("div", { class: "small muted" }, r.filename),
          fmt.short(r.content[0].text, 400)), modes.map((m) => h("td", { class: "num" }, scores[m] === undefined ? "—" : scores[m].toFixed(3)))))))
          : h("p", { class: "muted" }, t("kb.noResults")));
      }))();
    } }, h("div", { class: "row" }, field(t("kb.query"), query), field(t("kb.k"), k), h("div", { class: "field" }, go)));
    const del = h("button", { class: "danger" }, t("delete"));
    del.addEventListener("click", busy(del, () => guard(slot, async () => {
      if (!confirm(t("confirmDelete", { name: store.name || store.id }))) return;
      await api(`/vector_stores/${store.id}`, { method: "DELETE" });
      stores.splice(stores.indexOf(store), 1); drawList(); clear(detail);
    })));
    clear(detail, h("section", { class: "panel" }, h("h2", {}, store.name || store.id, " ", h("span", { class: "small muted mono" }, store.id)),
      h("div", { class: "toolbar" }, field(t("kb.addFile"), fileInput), h("button", { onclick: drawFiles }, t("refresh")), del), slot, files),
    h("section", { class: "panel" }, h("h2", {}, t("kb.tester")), searchForm, results));
    drawFiles();
  }

  drawList();
  root.append(h("h1", {}, t("kb.title")), h("div", { class: "grid-side" },
    h("aside", { class: "panel" }, h("h2", {}, t("kb.stores")), form, errors, list), detail));
  if (stores[0]) open(stores[0]);
  return () => clearTimeout(timer);
}
