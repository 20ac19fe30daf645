// Sorting /v1/models into the groups people pick from.
import { listAll } from "./api.js";
import { h } from "./ui.js";
import { t } from "./i18n.js";

export function group(m) {
  if (/e5|embed/i.test(m.id)) return "embeddings";
  if (m.id.startsWith("ft:")) return m.id.includes(":ckpt-step-") ? "checkpoints" : "finetuned";
  if (m.tuneforge) return "base";
  return "upstream";
}

export async function chatModels() {
  return (await listAll("/models")).filter((m) => group(m) !== "embeddings");
}

export function modelSelect(models, value, attrs = {}) {
  const el = h("select", attrs);
  for (const g of ["base", "finetuned", "checkpoints", "upstream"]) {
    const items = models.filter((m) => group(m) === g);
    if (!items.length) continue;
    el.append(h("optgroup", { label: t(`models.group.${g}`) }, items.map((m) => h("option", { value: m.id }, m.id))));
  }
  if (value && models.some((m) => m.id === value)) el.value = value;
  return el;
}
