// Fine-tuning: create a job (with an estimate from the file check) and the history of every job.
import { api, listAll } from "../api.js";
import { t } from "../i18n.js";
import { badge, busy, clear, field, fmt, guard, h, params, select } from "../ui.js";

export function servable(models) {
  return models.filter((m) => !/e5|embed/i.test(m.id));
}

export async function render(root) {
  const q = params();
  const [models, files, jobs] = await Promise.all([listAll("/models"), listAll("/files?purpose=fine-tune&limit=500"),
    listAll("/fine_tuning/jobs?limit=100")]);
  root.append(h("h1", {}, t("ft.title")), h("div", { class: "grid2" }, createForm(models, files, q), history(jobs)));
}

function numberInput(placeholder, step) {
  return h("input", { type: "number", min: 0, step, placeholder, size: 8 });
}

function createForm(models, files, q) {
  // A fine-tuned model or one of its checkpoints as the base continues training from those weights.
  const usable = servable(models);
  const label = (id) => (id.includes(":ckpt-step-") ? `${id} (${t("ft.continueCkpt")})` : id.startsWith("ft:") ? `${id} (${t("ft.continue")})` : id);
  const model = select(usable.map((m) => [m.id, label(m.id)]),
    q.model || (usable[0] && usable[0].id), { testid: "job-model" });
  const fileOpts = files.map((f) => [f.id, `${f.filename} (${f.id})`]);
  const train = select(fileOpts, q.training_file || (fileOpts[0] && fileOpts[0][0]), { testid: "job-training-file" });
  const valid = select([["", t("ft.none")], ...fileOpts], "", { testid: "job-validation-file" });
  const method = select([["supervised", "SFT"], ["dpo", "DPO"]], "supervised");
  const epochs = numberInput(t("auto"), 1), batch = numberInput(t("auto"), 1), lr = numberInput(t("auto"), "any");
  epochs.dataset.testid = "job-epochs"; batch.dataset.testid = "job-batch-size"; lr.dataset.testid = "job-lr";
  const suffix = h("input", { type: "text", maxlength: 64, size: 14, testid: "job-suffix" });
  const seed = h("input", { type: "number", step: 1, size: 8, testid: "job-seed" });
  const estimate = h("div", { class: "small", testid: "job-estimate-result" });
  const out = h("div");
  const estimateBtn = h("button", { type: "button", testid: "job-estimate" }, t("ft.estimate"));
  estimateBtn.addEventListener("click", busy(estimateBtn, () => guard(clear(estimate), async () => {
    const rep = await api(`/files/${train.value}/check`, { method: "POST",
      body: { model: model.value, method: method.value } });  // an ft: model counts with its base's tokenizer
    const e = rep.estimate || {};
    // The report estimates OpenAI's default epochs; the epochs set in the form scale it.
    const n = Number(epochs.value) || e.epochs;
    const secs = e.local && e.epochs ? (e.local.seconds * n) / e.epochs : null;
    estimate.append(h("p", { class: rep.ok ? "note" : "error-box" },
      rep.ok ? "" : `${t("data.notOk")} `,
      t("ft.estimateText", { n: fmt.num(rep.valid_examples), epochs: n || "—", tokens: fmt.num(e.tokens_per_epoch),
        time: secs === null ? "—" : fmt.duration(secs) })));
  })));
  const submit = h("button", { class: "primary", type: "submit", testid: "job-create" }, t("ft.create"));
  const form = h("form", { class: "panel", onsubmit: (ev) => {
    ev.preventDefault();
    busy(submit, () => guard(clear(out), async () => {
      const hp = {};
      if (epochs.value) hp.n_epochs = Number(epochs.value);
      if (batch.value) hp.batch_size = Number(batch.value);
      if (lr.value) hp.learning_rate_multiplier = Number(lr.value);
      const m = method.value;
      const body = { model: model.value, training_file: train.value,
        method: { type: m, [m]: { hyperparameters: hp } } };
      if (valid.value) body.validation_file = valid.value;
      if (suffix.value.trim()) body.suffix = suffix.value.trim();
      if (seed.value) body.seed = Number(seed.value);
      const job = await api("/fine_tuning/jobs", { method: "POST", body });
      location.hash = `#/job/${job.id}`;
    }))();
  } },
  h("h2", {}, t("ft.new")),
  !files.length ? h("p", { class: "note" }, t("ft.noFiles"), " ", h("a", { href: "#/data" }, t("nav.data"))) : null,
  field(t("ft.model"), model), field(t("ft.trainingFile"), train), field(t("ft.validationFile"), valid),
  h("div", { class: "row" }, field(t("ft.method"), method), field(t("ft.epochs"), epochs), field(t("ft.batch"), batch),
    field(t("ft.lr"), lr)),
  h("div", { class: "row" }, field(t("ft.suffix"), suffix), field(t("ft.seed"), seed)),
  h("div", { class: "toolbar" }, submit, estimateBtn), estimate, out);
  return form;
}

const STATUSES = ["validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"];

function history(jobs) {
  const status = select([["", t("ft.allStatuses")], ...STATUSES.map((s) => [s, t(`status.${s}`, {}, s)])], "");
  const model = h("input", { type: "search", placeholder: t("ft.modelFilter"), size: 16 });
  const body = h("div");
  const draw = () => {
    const rows = jobs.filter((j) => (!status.value || j.status === status.value) &&
      (!model.value || `${j.model} ${j.fine_tuned_model || ""}`.toLowerCase().includes(model.value.toLowerCase())));
    clear(body, rows.length ? h("table", {}, h("thead", {}, h("tr", {}, ["job", "model", "status", "created"].map((c) =>
      h("th", {}, t(`ft.col.${c}`))))), h("tbody", {}, rows.map((j) => h("tr", {},
      h("td", {}, h("a", { href: `#/job/${j.id}` }, j.id), j.user_provided_suffix ? h("div", { class: "small muted" }, j.user_provided_suffix) : null),
      h("td", {}, j.model, j.fine_tuned_model ? h("div", { class: "small muted mono" }, fmt.short(j.fine_tuned_model, 48)) : null),
      h("td", {}, badge(j.status)), h("td", { class: "small" }, fmt.date(j.created_at))))))
      : h("p", { class: "muted" }, t("ft.noJobs")));
  };
  status.addEventListener("change", draw);
  model.addEventListener("input", draw);
  draw();
  return h("section", { class: "panel" }, h("h2", {}, t("ft.history")),
    h("div", { class: "row" }, field(t("ft.status"), status), field(t("ft.model"), model)), body);
}
