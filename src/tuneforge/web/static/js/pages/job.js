// One job: status, live loss chart from the streamed events, tokens/s and MFU, events, checkpoints, controls.
import { api, listAll, sse } from "../api.js";
import { drawLineChart } from "../chart.js";
import { t } from "../i18n.js";
import { badge, busy, clear, fmt, guard, h } from "../ui.js";

const FINAL = ["succeeded", "failed", "cancelled"];

export async function render(root, { arg: id }) {
  let job = await api(`/fine_tuning/jobs/${id}`);
  const controller = new AbortController();
  const head = h("div"), controls = h("div", { class: "toolbar" }), errors = h("div");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart"); svg.setAttribute("role", "img"); svg.setAttribute("aria-label", t("job.chart"));
  svg.dataset.testid = "loss-chart";
  const live = h("div", { class: "stats" });
  const log = h("div", { class: "events", role: "log", "aria-live": "polite" });
  const ckpts = h("div");
  const series = { train: [], valid: [], full: [] };
  let last = null, finalStats = null;

  const redraw = () => drawLineChart(svg, [
    { name: "train", color: "#ea580c", points: series.train },
    { name: "valid", color: "#2563eb", points: series.valid, dots: true },
    { name: "full", color: "#15803d", points: series.full, dots: true, dashed: true },
  ], { xLabel: t("job.step"), yLabel: t("job.loss"), empty: t("job.noMetrics") });

  const drawHead = () => {
    clear(head, h("h1", {}, t("job.title"), " ", h("span", { class: "mono" }, job.id), " ", badge(job.status)),
      h("dl", { class: "kv" },
        h("dt", {}, t("ft.model")), h("dd", {}, job.model),
        h("dt", {}, t("job.ftModel")), h("dd", { class: "mono", testid: "ft-model" }, job.fine_tuned_model || "—"),
        h("dt", {}, t("ft.trainingFile")), h("dd", { class: "mono" }, job.training_file),
        job.validation_file ? [h("dt", {}, t("ft.validationFile")), h("dd", { class: "mono" }, job.validation_file)] : null,
        h("dt", {}, t("job.hyper")), h("dd", { class: "mono" }, JSON.stringify(job.hyperparameters || {})),
        h("dt", {}, t("job.created")), h("dd", {}, fmt.date(job.created_at)),
        job.finished_at ? [h("dt", {}, t("job.finished")), h("dd", {}, fmt.date(job.finished_at))] : null,
        job.trained_tokens ? [h("dt", {}, t("job.trainedTokens")), h("dd", {}, fmt.num(job.trained_tokens))] : null),
      job.error && job.error.message ? h("div", { class: "error-box", role: "alert" }, job.error.message) : null);
    const act = (name, enabled) => {
      const b = h("button", { disabled: !enabled, testid: `job-${name}`, class: name === "cancel" ? "danger" : null }, t(`job.${name}`));
      b.addEventListener("click", busy(b, () => guard(errors, async () => {
        job = await api(`/fine_tuning/jobs/${id}/${name}`, { method: "POST" });
        drawHead();
        if (name === "resume") follow();
      })));
      return b;
    };
    clear(controls, act("cancel", !FINAL.includes(job.status)),
      act("pause", ["running", "queued", "validating_files"].includes(job.status)), act("resume", job.status === "paused"),
      job.fine_tuned_model ? h("a", { href: `#/playground?model=${encodeURIComponent(job.fine_tuned_model)}`,
        testid: "open-playground" }, t("job.openPlayground")) : null);
  };

  const drawLive = () => {
    const stat = (v, label) => h("div", { class: "stat" }, h("b", {}, v), h("span", {}, label));
    clear(live, stat(last ? `${last.step}/${last.total_steps}` : "—", t("job.step")),
      stat(last ? fmt.num(last.train_loss, 4) : "—", t("job.trainLoss")),
      stat(last && last.valid_loss != null ? fmt.num(last.valid_loss, 4) : "—", t("job.validLoss")),
      stat(fmt.num((finalStats || last || {}).tokens_per_second, 1), t("job.tps")),
      stat(finalStats && finalStats.mfu != null ? `${(finalStats.mfu * 100).toFixed(2)}%` : "—", t("job.mfu")));
  };

  const drawCheckpoints = async () => guard(clear(ckpts), async () => {
    const list = await listAll(`/fine_tuning/jobs/${id}/checkpoints?limit=50`);
    clear(ckpts, list.length ? h("table", {}, h("thead", {}, h("tr", {}, ["step", "trainLoss", "validLoss", "model", ""].map((c) =>
      h("th", {}, c ? t(`job.${c}`) : "")))), h("tbody", {}, list.map((c) => h("tr", {},
      h("td", {}, c.step_number), h("td", {}, fmt.num(c.metrics.train_loss, 4)),
      h("td", {}, fmt.num(c.metrics.full_valid_loss ?? c.metrics.valid_loss, 4)),
      h("td", { class: "mono small" }, c.fine_tuned_model_checkpoint),
      h("td", {}, h("a", { href: `#/playground?model=${encodeURIComponent(c.fine_tuned_model_checkpoint)}` }, t("job.chat")), " · ",
        h("a", { href: `#/finetune?model=${encodeURIComponent(c.fine_tuned_model_checkpoint)}&training_file=${job.training_file}`,
          testid: "continue-from" }, t("job.continue")))))))
      : h("p", { class: "muted" }, t("job.noCheckpoints")));
  });

  const onEvent = (e) => {
    log.prepend(h("div", { class: e.level === "error" || e.level === "warn" ? e.level : null }, h("span", { class: "muted" }, `${fmt.date(e.created_at)} `), e.message));
    if (e.type === "metrics" && e.data) {
      last = e.data;
      series.train.push([e.data.step, e.data.train_loss]);
      if (e.data.valid_loss != null) series.valid.push([e.data.step, e.data.valid_loss]);
      if (e.data.full_valid_loss != null) series.full.push([e.data.step, e.data.full_valid_loss]);
      redraw(); drawLive();
    } else if (e.data && e.data.mfu !== undefined) {
      finalStats = e.data; drawLive();
    }
  };

  let refreshing = null;
  const refreshJob = async () => {
    if (refreshing) return;
    refreshing = guard(errors, async () => { job = await api(`/fine_tuning/jobs/${id}`); drawHead(); });
    await refreshing; refreshing = null;
  };

  async function follow() {
    clear(log); series.train = []; series.valid = []; series.full = []; last = null;
    redraw();
    await guard(errors, async () => {
      for await (const e of sse(`/fine_tuning/jobs/${id}/events?stream=true`, { signal: controller.signal })) {
        onEvent(e);
        if (e.type !== "metrics") refreshJob();
      }
    });
    if (controller.signal.aborted) return;
    await refreshJob();
    drawCheckpoints();
  }

  drawHead(); redraw(); drawLive();
  root.append(head, controls, errors,
    h("section", { class: "panel" }, h("h2", {}, t("job.chart")),
      h("div", { class: "legend" }, h("span", {}, h("i", { style: { background: "#ea580c" } }), t("job.trainLoss")),
        h("span", {}, h("i", { style: { background: "#2563eb" } }), t("job.validLoss")),
        h("span", {}, h("i", { style: { background: "#15803d" } }), t("job.fullValidLoss"))), svg, live),
    h("div", { class: "grid2" }, h("section", { class: "panel" }, h("h2", {}, t("job.events")), log),
      h("section", { class: "panel" }, h("h2", {}, t("job.checkpoints")), ckpts)));
  drawCheckpoints();
  follow();
  return () => controller.abort();
}
