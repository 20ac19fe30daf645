// Playground: streaming chat with any served model, masks, sampling settings, JSON mode,
// and compare — one prompt to 2–4 models side by side with their tokens/s.
import { api, listAll, sse } from "../api.js";
import { t } from "../i18n.js";
import { chatModels, modelSelect } from "../models.js";
import { busy, clear, download, errorBox, field, fmt, guard, h, params, select } from "../ui.js";

export async function render(root) {
  const q = params();
  const [models, masks] = await Promise.all([chatModels(), listAll("/masks?limit=100")]);
  const controller = { current: null };
  let columns = [];

  const system = h("textarea", { rows: 3, testid: "system-prompt" });
  const maskSel = select([["", t("pg.noMask")], ...masks.map((m) => [m.id, m.name])], "", { testid: "mask-select" });
  const temperature = h("input", { type: "number", min: 0, max: 2, step: 0.1, value: "0.7", size: 5 });
  const maxTokens = h("input", { type: "number", min: 1, max: 32768, step: 1, value: "256", size: 6 });
  const seed = h("input", { type: "number", step: 1, size: 6, testid: "seed" });
  const jsonMode = h("input", { type: "checkbox" });
  const compare = h("input", { type: "checkbox", testid: "compare-toggle" });
  const modelsBox = h("div");
  const output = h("div", { class: "chat-cols", testid: "chat-output", "aria-live": "polite" });
  const input = h("textarea", { rows: 2, testid: "chat-input", placeholder: t("pg.placeholder") });
  const send = h("button", { class: "primary", testid: "chat-send" }, t("pg.send"));
  const stop = h("button", { disabled: true }, t("pg.stop"));
  const errors = h("div");
  let fewShot = [];

  maskSel.addEventListener("change", () => {
    const m = masks.find((x) => x.id === maskSel.value);
    fewShot = m ? m.messages : [];
    if (!m) return;
    system.value = m.system_prompt || "";
    if (m.settings.temperature != null) temperature.value = m.settings.temperature;
    if (m.settings.max_tokens != null) maxTokens.value = m.settings.max_tokens;
    if (m.model && models.some((x) => x.id === m.model)) columns[0].select.value = m.model;
  });

  const makeColumn = (value) => {
    const col = { select: modelSelect(models, value, { testid: "model-select" }), messages: [], box: h("div"),
      stats: h("span", { class: "small", testid: "tps" }) };
    col.el = h("section", { class: "chat-col" }, h("header", {}, field(t("pg.model"), col.select), col.stats), col.box);
    return col;
  };
  const layout = () => {
    clear(modelsBox, compare.checked && columns.length < 4 ? h("button", { onclick: () => { columns.push(makeColumn(models[0] && models[0].id)); layout(); }, testid: "add-model" }, t("pg.addModel")) : null,
      compare.checked && columns.length > 2 ? h("button", { onclick: () => { columns.pop(); layout(); } }, t("pg.removeModel")) : null);
    output.style.setProperty("--cols", String(columns.length));
    clear(output, columns.map((c) => c.el));
  };
  compare.addEventListener("change", () => {
    if (compare.checked) {
      while (columns.length < 2) {
        const base = models.find((m) => m.id !== columns[0].select.value && !m.id.includes(":ckpt-step-"));
        columns.push(makeColumn(base ? base.id : models[0].id));
      }
    } else columns = columns.slice(0, 1);
    layout();
  });
  columns = [makeColumn(q.model || (models[0] && models[0].id))];
  layout();

  const bubble = (role, text) => h("div", { class: `msg ${role}` }, h("span", { class: "role" }, t(`pg.role.${role}`)), text);

  async function runColumn(col, signal) {
    const body = { model: col.select.value, stream: true, stream_options: { include_usage: true },
      messages: [...(system.value.trim() ? [{ role: "system", content: system.value }] : []), ...fewShot, ...col.messages],
      temperature: Number(temperature.value), max_tokens: Number(maxTokens.value) };
    if (seed.value !== "") body.seed = Number(seed.value);
    if (jsonMode.checked) body.response_format = { type: "json_object" };
    const text = h("span", { class: "content" });
    const el = h("div", { class: "msg assistant" }, h("span", { class: "role" }, `${t("pg.role.assistant")} · ${body.model}`), text);
    col.box.append(el);
    let answer = "", usage = null;
    const started = performance.now();
    try {
      for await (const chunk of sse("/chat/completions", { method: "POST", body, signal })) {
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) { answer += delta.content; text.textContent = answer; }
        if (chunk.usage) usage = chunk.usage;
      }
    } catch (e) {
      if (e.name === "AbortError") { text.textContent = answer; return; }
      el.append(errorBox(e));
      return;
    }
    const secs = (performance.now() - started) / 1000;
    col.messages.push({ role: "assistant", content: answer });
    if (usage) col.stats.textContent = `${fmt.num(usage.completion_tokens / secs, 1)} ${t("pg.tps")} · ${usage.completion_tokens} ${t("pg.tokens")}`;
    el.dataset.done = "true";
  }

  const doSend = async () => {
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    errors.replaceChildren();
    controller.current = new AbortController();
    send.disabled = true; stop.disabled = false;
    for (const col of columns) {
      col.messages.push({ role: "user", content: text });
      col.box.append(bubble("user", text));
    }
    await Promise.all(columns.map((c) => runColumn(c, controller.current.signal)));
    send.disabled = false; stop.disabled = true;
    input.focus();
  };
  send.addEventListener("click", doSend);
  stop.addEventListener("click", () => controller.current && controller.current.abort());
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); doSend(); } });

  const exportBtn = h("button", { testid: "export-chat" }, t("pg.export"));
  exportBtn.addEventListener("click", () => download(`conversation-${Date.now()}.json`, JSON.stringify({
    system: system.value, settings: { temperature: Number(temperature.value), max_tokens: Number(maxTokens.value),
      seed: seed.value === "" ? null : Number(seed.value), json_mode: jsonMode.checked },
    conversations: columns.map((c) => ({ model: c.select.value, messages: [
      ...(system.value.trim() ? [{ role: "system", content: system.value }] : []), ...c.messages] })) }, null, 2)));
  const clearBtn = h("button", { onclick: () => { for (const c of columns) { c.messages = []; clear(c.box); c.stats.textContent = ""; } } }, t("pg.clear"));
  const saveMask = h("button", {}, t("pg.saveMask"));
  saveMask.addEventListener("click", busy(saveMask, () => guard(errors, async () => {
    const name = prompt(t("pg.maskName"));
    if (!name) return;
    const mask = await api("/masks", { method: "POST", body: { name, system_prompt: system.value,
      model: columns[0].select.value, messages: fewShot,
      settings: { temperature: Number(temperature.value), max_tokens: Number(maxTokens.value) } } });
    masks.push(mask);
    maskSel.append(h("option", { value: mask.id }, mask.name));
    maskSel.value = mask.id;
  })));

  root.append(h("h1", {}, t("pg.title")), h("div", { class: "grid-side" },
    h("aside", { class: "panel" }, h("h2", {}, t("pg.settings")), field(t("pg.mask"), maskSel),
      field(t("pg.system"), system), h("div", { class: "row" }, field(t("pg.temperature"), temperature),
        field(t("pg.maxTokens"), maxTokens), field(t("pg.seed"), seed)),
      field(t("pg.json"), jsonMode, { cls: "check" }), field(t("pg.compare"), compare, { cls: "check" }), modelsBox,
      h("div", { class: "toolbar" }, exportBtn, clearBtn, saveMask)),
    h("section", {}, output, errors, h("div", { class: "composer" }, h("label", { class: "skip", for: "chat-in" }, t("pg.message")),
      Object.assign(input, { id: "chat-in" }), h("div", { class: "toolbar", style: { flexDirection: "column" } }, send, stop)))));
  return () => controller.current && controller.current.abort();
}
