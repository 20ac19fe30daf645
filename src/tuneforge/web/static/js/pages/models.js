// Models, keys and masks: list / delete models and adapters; the project's API keys (create, revoke);
// masks with NextChat import/export.
import { api, auth, listAll } from "../api.js";
import { t } from "../i18n.js";
import { group } from "../models.js";
import { busy, clear, download, field, fmt, guard, h } from "../ui.js";

export async function render(root, { me }) {
  const modelsSlot = h("div"), masksSlot = h("div"), keysSlot = h("div"), errors = h("div");

  async function drawKeys() {
    await guard(clear(keysSlot), async () => {
      const keys = (await api("/keys")).data;
      clear(keysSlot, keys.length ? h("table", { testid: "keys-table" }, h("thead", {}, h("tr", {},
        ["name", "prefix", "created", "used", "status", ""].map((c) => h("th", {}, c ? t(`keys.col.${c}`) : "")))),
      h("tbody", {}, keys.map((k) => {
        const revoke = k.revoked_at ? null : h("button", { class: "danger", "aria-label": `${t("keys.revoke")} ${k.prefix}` },
          t("keys.revoke"));
        if (revoke) revoke.addEventListener("click", busy(revoke, () => guard(errors, async () => {
          if (!confirm(t("keys.confirmRevoke", { name: k.name || k.prefix }))) return;
          await api(`/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
          drawKeys();
        })));
        return h("tr", {}, h("td", {}, k.name || "—"), h("td", { class: "mono small" }, `${k.prefix}…`),
          h("td", { class: "small" }, fmt.date(k.created_at)),
          h("td", { class: "small" }, k.last_used_at ? fmt.date(k.last_used_at) : "—"),
          h("td", {}, k.revoked_at ? t("keys.revoked") : t("keys.active")), h("td", {}, revoke));
      }))) : h("p", { class: "muted" }, t("keys.none")));
    });
  }

  const keyName = h("input", { type: "text", maxlength: "128", testid: "key-name" });
  const newKey = h("div");
  const createKey = h("button", { testid: "key-create" }, t("keys.create"));
  createKey.addEventListener("click", busy(createKey, () => guard(clear(errors), async () => {
    if (me.auth !== "key" && !confirm(t("keys.confirmFirst"))) return;
    const created = await api("/keys", { method: "POST", body: { name: keyName.value.trim() || null } });
    if (me.auth !== "key") auth.key = created.key;  // authentication is on now: keep using the console
    clear(newKey, h("p", { class: "success" }, t("keys.created")), h("pre", { testid: "new-key" }, created.key));
    keyName.value = "";
    drawKeys();
  })));

  async function drawModels() {
    await guard(clear(modelsSlot), async () => {
      const models = await listAll("/models");
      clear(modelsSlot, h("table", {}, h("thead", {}, h("tr", {}, ["id", "kind", "owner", "created", ""].map((c) =>
        h("th", {}, c ? t(`models.col.${c}`) : "")))), h("tbody", {}, models.map((m) => {
        const kind = group(m);
        const deletable = kind === "finetuned" || kind === "checkpoints" || (m.tuneforge && m.tuneforge.source === "local");
        const del = deletable ? h("button", { class: "danger", "aria-label": `${t("delete")} ${m.id}` }, t("delete")) : null;
        if (del) del.addEventListener("click", busy(del, () => guard(errors, async () => {
          if (!confirm(t("confirmDelete", { name: m.id }))) return;
          await api(`/models/${encodeURIComponent(m.id)}`, { method: "DELETE" });
          drawModels();
        })));
        return h("tr", {}, h("td", { class: "mono small" }, m.id), h("td", {}, t(`models.kind.${kind}`)),
          h("td", {}, m.owned_by), h("td", { class: "small" }, fmt.date(m.created)),
          h("td", {}, kind !== "embeddings" ? h("a", { href: `#/playground?model=${encodeURIComponent(m.id)}` }, t("job.chat")) : null, " ", del));
      }))));
    });
  }

  async function drawMasks() {
    await guard(clear(masksSlot), async () => {
      const masks = await listAll("/masks?limit=100");
      clear(masksSlot, masks.length ? h("table", {}, h("tbody", {}, masks.map((m) => {
        const del = h("button", { class: "danger" }, t("delete"));
        del.addEventListener("click", busy(del, () => guard(errors, async () => {
          await api(`/masks/${m.id}`, { method: "DELETE" }); drawMasks();
        })));
        return h("tr", {}, h("td", {}, h("b", {}, m.name), h("div", { class: "small muted" }, fmt.short(m.system_prompt || "", 120))),
          h("td", { class: "small" }, m.model || ""), h("td", {}, del));
      }))) : h("p", { class: "muted" }, t("masks.none")));
    });
  }

  const importInput = h("input", { type: "file", accept: ".json,application/json", testid: "mask-import" });
  importInput.addEventListener("change", () => guard(clear(errors), async () => {
    const data = JSON.parse(await importInput.files[0].text());
    const items = Array.isArray(data) ? data : data.masks || [data];
    let n = 0;
    for (const nm of items) {
      const ctx = nm.context || [];
      const cfg = nm.modelConfig || {};
      const settings = {};
      if (typeof cfg.temperature === "number") settings.temperature = cfg.temperature;
      if (typeof cfg.max_tokens === "number") settings.max_tokens = Math.min(32768, Math.max(1, cfg.max_tokens));
      await api("/masks", { method: "POST", body: { name: nm.name, model: cfg.model || null, settings,
        system_prompt: ctx.filter((c) => c.role === "system").map((c) => c.content).join("\n\n") || null,
        messages: ctx.filter((c) => c.role === "user" || c.role === "assistant").map((c) => ({ role: c.role, content: c.content })) } });
      n++;
    }
    importInput.value = "";
    errors.append(h("p", { class: "success" }, t("masks.imported", { n })));
    drawMasks();
  }));
  const exportBtn = h("button", { testid: "mask-export" }, t("masks.export"));
  exportBtn.addEventListener("click", busy(exportBtn, () => guard(clear(errors), async () => {
    const masks = await listAll("/masks?limit=100");
    // NextChat's mask JSON: the system prompt and few-shot messages are its "context".
    const out = masks.map((m) => ({ id: m.id, avatar: "1f916", name: m.name, lang: "en", builtin: false,
      createdAt: m.created_at * 1000,
      context: [...(m.system_prompt ? [{ role: "system", content: m.system_prompt }] : []), ...m.messages]
        .map((c, i) => ({ id: `${m.id}-${i}`, date: "", ...c })),
      modelConfig: { model: m.model || "", temperature: m.settings.temperature ?? 0.7,
        max_tokens: m.settings.max_tokens ?? 1024, top_p: m.settings.top_p ?? 1 } }));
    download("tuneforge-masks.json", JSON.stringify(out, null, 2));
  })));

  root.append(h("h1", {}, t("models.title")), errors,
    h("section", { class: "panel" }, h("h2", {}, t("models.models")), modelsSlot),
    h("div", { class: "grid2" },
      h("section", { class: "panel" }, h("h2", {}, t("masks.title")), h("div", { class: "toolbar" },
        field(t("masks.import"), importInput), exportBtn), masksSlot),
      h("section", { class: "panel" }, h("h2", {}, t("keys.title")),
        h("p", {}, me.auth === "key" ? t("keys.signedIn", { project: me.project, key: me.key_id }) : t("keys.single")),
        me.auth !== "key" ? h("p", { class: "muted" }, t("keys.firstWarning")) : null,
        h("div", { class: "toolbar" }, field(t("keys.name"), keyName), createKey), newKey, keysSlot)));
  await Promise.all([drawModels(), drawMasks(), drawKeys()]);
}
