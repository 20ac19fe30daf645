// Evals: the project's evals, each eval's runs with pass rates per grader, a run's output items
// (filterable by pass/fail) and two runs of one eval side by side (e.g. base vs fine-tune).
// Routes: #/evals, #/evals/<eval>, #/evals/<eval>/<run>, #/evals/<eval>/compare?a=<run>&b=<run>.
import { api, listAll } from "../api.js";
import { t } from "../i18n.js";
import { badge, clear, field, fmt, guard, h, params, select } from "../ui.js";

const ACTIVE = new Set(["queued", "in_progress"]);

export async function render(root, { arg }) {
  const [evalId, runId] = arg.split("/");
  const page = h("div", { testid: "evals-page" });
  root.append(page);
  if (!evalId) return listEvals(page);
  const ev = await api(`/evals/${encodeURIComponent(evalId)}`);
  if (runId === "compare") return compare(page, ev, params());
  if (runId) return runPage(page, ev, runId);
  return evalPage(page, ev);
}

// Every page of a cursor-paginated list (the API caps one page at 100).
async function allPages(path) {
  const out = [];
  let after = null;
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const body = await api(`${path}${sep}limit=100&order=asc${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    out.push(...body.data);
    if (!body.has_more || !body.data.length) return out;
    after = body.last_id;
  }
}

// A jsonl run with given samples has no model: then the name alone.
const runLabel = (r) => [r.name || r.id, r.model].filter(Boolean).join(" · ");

const pct = (passed, total) => (total ? `${fmt.num((100 * passed) / total, 1)}%` : "—");

// Pass rate per grader, in the eval's testing_criteria order.
function graderRates(ev, run) {
  const by = Object.fromEntries((run.per_testing_criteria_results || []).map((r) => [r.testing_criteria, r]));
  return ev.testing_criteria.map((c) => {
    const r = by[c.name] || { passed: 0, failed: 0 };
    return { name: c.name, passed: r.passed, total: r.passed + r.failed };
  });
}

function rateCell(passed, total, testid) {
  return h("td", { class: "num", testid, title: total ? `${passed}/${total}` : null }, pct(passed, total),
    total ? h("span", { class: "muted small" }, ` (${passed}/${total})`) : null);
}

function title(ev, ...rest) {
  return h("h1", {}, h("a", { href: "#/evals" }, t("evals.title")), " / ",
    rest.length ? h("a", { href: `#/evals/${ev.id}` }, ev.name || ev.id) : ev.name || ev.id, rest.length ? " / " : null, rest);
}

async function listEvals(page) {
  const evals = await listAll("/evals?limit=100");
  page.append(h("h1", {}, t("evals.title")), h("p", { class: "muted small" }, t("evals.help")));
  if (!evals.length) { page.append(h("p", { class: "muted" }, t("evals.none"))); return; }
  page.append(h("table", { testid: "evals-list" },
    h("thead", {}, h("tr", {}, h("th", {}, t("evals.col.name")), h("th", {}, t("evals.col.graders")),
      h("th", {}, t("evals.col.created")))),
    h("tbody", {}, evals.map((ev) => h("tr", {},
      h("td", {}, h("a", { href: `#/evals/${ev.id}` }, ev.name || ev.id), h("div", { class: "mono small muted" }, ev.id)),
      h("td", { class: "small" }, ev.testing_criteria.map((c) => `${c.name} (${c.type})`).join(", ")),
      h("td", { class: "small" }, fmt.date(ev.created_at)))))));
}

async function evalPage(page, ev) {
  const table = h("div"), errors = h("div");
  let timer = null;
  const a = h("select", { testid: "compare-a" }), b = h("select", { testid: "compare-b" });
  const go = h("button", { class: "primary", type: "submit", testid: "compare-go" }, t("evals.compare"));
  const form = h("form", { onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/evals/${ev.id}/compare?a=${encodeURIComponent(a.value)}&b=${encodeURIComponent(b.value)}`;
  } }, h("div", { class: "row" }, field(t("evals.runA"), a), field(t("evals.runB"), b), h("div", { class: "field" }, go)));
  page.append(title(ev),
    h("p", { class: "small" }, h("strong", {}, t("evals.graders")), " ",
      ev.testing_criteria.map((c) => `${c.name} (${c.type})`).join(", ")),
    h("h2", {}, t("evals.runs")), errors, table, h("h2", {}, t("evals.compareTitle")), form);

  async function draw() {
    clearTimeout(timer);
    await guard(clear(errors), async () => {
      const runs = (await listAll(`/evals/${ev.id}/runs?limit=100`));
      const options = runs.map((r) => [r.id, runLabel(r)]);
      const keepA = a.value, keepB = b.value;
      clear(a, options.map(([v, l]) => h("option", { value: v }, l)));
      clear(b, options.map(([v, l]) => h("option", { value: v }, l)));
      // Newest first: by default compare the older run (often the base) with the newer one.
      a.value = keepA || (runs[1] || runs[0] || {}).id || ""; b.value = keepB || (runs[0] || {}).id || "";
      go.disabled = runs.length < 2;
      if (!runs.length) { clear(table, h("p", { class: "muted" }, t("evals.noRuns"))); return; }
      clear(table, h("table", { testid: "runs-table" },
        h("thead", {}, h("tr", {}, h("th", {}, t("evals.col.run")), h("th", {}, t("evals.col.model")),
          h("th", {}, t("evals.col.status")), h("th", { class: "num" }, t("evals.col.passed")),
          h("th", { class: "num" }, t("evals.col.failed")), h("th", { class: "num" }, t("evals.col.errored")),
          h("th", { class: "num" }, t("evals.col.overall")),
          ev.testing_criteria.map((c) => h("th", { class: "num" }, t("evals.graderRate", { name: c.name }))))),
        h("tbody", {}, runs.map((r) => h("tr", { testid: `run-${r.id}` },
          h("td", {}, h("a", { href: `#/evals/${ev.id}/${r.id}` }, r.name || r.id), h("div", { class: "mono small muted" }, r.id)),
          h("td", { class: "mono small" }, r.model || "—"),
          h("td", {}, badge(r.status), r.error && r.error.message ? h("div", { class: "small" }, r.error.message) : null),
          h("td", { class: "num" }, r.result_counts.passed), h("td", { class: "num" }, r.result_counts.failed),
          h("td", { class: "num" }, r.result_counts.errored),
          rateCell(r.result_counts.passed, r.result_counts.total, "overall-rate"),
          graderRates(ev, r).map((g) => rateCell(g.passed, g.total, `rate-${g.name}`)))))));
      if (runs.some((r) => ACTIVE.has(r.status))) timer = setTimeout(draw, 1500);  // follow runs still going
    });
  }
  await draw();
  return () => clearTimeout(timer);
}

// What the model answered (a completions sample, or a jsonl line's given sample in either OpenAI shape).
function outputText(sample) {
  if (!sample) return "";
  if (sample.error && sample.error.message) return `⚠ ${sample.error.message}`;
  if (Array.isArray(sample.output) && sample.output.length) return sample.output.map((m) => m.content).join("\n");
  if (typeof sample.output_text === "string") return sample.output_text;
  const choice = (sample.choices || [])[0];
  return (choice && choice.message && choice.message.content) || "";
}

const itemText = (item) => (typeof item === "string" ? item : JSON.stringify(item));

function results(item) {
  return h("ul", { class: "plain small" }, (item.results || []).map((r) => h("li", {},
    badge(r.passed ? "pass" : "fail"), ` ${r.name}`, r.score !== null && r.score !== undefined ? ` · ${fmt.num(r.score, 3)}` : "",
    r.errors ? h("span", { class: "muted" }, ` ${Object.values(r.errors).join("; ")}`) : null)));
}

async function runPage(page, ev, runId) {
  const run = await api(`/evals/${ev.id}/runs/${encodeURIComponent(runId)}`);
  const status = select([["", t("evals.all")], ["pass", t("status.pass")], ["fail", t("status.fail")],
    ["error", t("status.error")]], params().status || "", { testid: "item-filter" });
  const items = h("div"), counts = run.result_counts;
  page.append(title(ev, run.name || run.id),
    h("p", {}, badge(run.status), " ", h("span", { class: "mono small" }, run.model), " · ",
      t("evals.counts", { passed: counts.passed, failed: counts.failed, errored: counts.errored, total: counts.total })),
    h("table", { testid: "grader-rates" }, h("thead", {}, h("tr", {}, h("th", {}, t("evals.grader")),
      h("th", { class: "num" }, t("evals.passRate")))), h("tbody", {},
      h("tr", {}, h("td", {}, t("evals.col.overall")), rateCell(counts.passed, counts.total, "overall-rate")),
      graderRates(ev, run).map((g) => h("tr", {}, h("td", {}, g.name), rateCell(g.passed, g.total, `rate-${g.name}`))))),
    h("h2", {}, t("evals.items")), h("div", { class: "row" }, field(t("evals.filter"), status)), items);

  async function draw() {
    await guard(clear(items), async () => {
      const q = status.value ? `?status=${status.value}` : "";
      const rows = await allPages(`/evals/${ev.id}/runs/${run.id}/output_items${q}`);
      clear(items, rows.length ? h("table", { testid: "items-table" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, t("evals.input")),
          h("th", {}, t("evals.output")), h("th", {}, t("evals.results")), h("th", {}, t("evals.col.status")))),
        h("tbody", {}, rows.map((it) => h("tr", { testid: "item-row", "data-status": it.status },
          h("td", { class: "num" }, it.datasource_item_id),
          h("td", { class: "mono small" }, fmt.short(itemText(it.datasource_item), 200)),
          h("td", { class: "small", testid: "item-output" }, fmt.short(outputText(it.sample), 400)),
          h("td", {}, results(it)), h("td", {}, badge(it.status))))))
        : h("p", { class: "muted" }, t("evals.noItems")));
    });
  }
  status.addEventListener("change", draw);
  await draw();
}

async function compare(page, ev, q) {
  const [ra, rb] = await Promise.all([q.a, q.b].map((id) => api(`/evals/${ev.id}/runs/${encodeURIComponent(id || "")}`)));
  const [ia, ib] = await Promise.all([ra, rb].map((r) => allPages(`/evals/${ev.id}/runs/${r.id}/output_items`)));
  const label = runLabel;
  const ga = graderRates(ev, ra), gb = graderRates(ev, rb);
  const delta = (pa, ta, pb, tb) => {
    if (!ta || !tb) return h("td", { class: "num" }, "—");
    const d = (100 * pb) / tb - (100 * pa) / ta;
    return h("td", { class: `num ${d > 0 ? "better" : d < 0 ? "worse" : ""}`, testid: "delta" },
      `${d > 0 ? "+" : ""}${fmt.num(d, 1)} pt`);
  };
  const rates = h("table", { testid: "compare-rates" },
    h("thead", {}, h("tr", {}, h("th", {}, t("evals.grader")), h("th", { class: "num" }, `A: ${label(ra)}`),
      h("th", { class: "num" }, `B: ${label(rb)}`), h("th", { class: "num" }, t("evals.delta")))),
    h("tbody", {},
      h("tr", {}, h("td", {}, t("evals.col.overall")), rateCell(ra.result_counts.passed, ra.result_counts.total, "rate-a"),
        rateCell(rb.result_counts.passed, rb.result_counts.total, "rate-b"),
        delta(ra.result_counts.passed, ra.result_counts.total, rb.result_counts.passed, rb.result_counts.total)),
      ga.map((g, i) => h("tr", { testid: `compare-${g.name}` }, h("td", {}, g.name), rateCell(g.passed, g.total, "rate-a"),
        rateCell(gb[i].passed, gb[i].total, "rate-b"), delta(g.passed, g.total, gb[i].passed, gb[i].total)))));

  // Items are paired by their line in the data source; runs on different data simply show gaps.
  const byIndex = new Map();
  for (const it of ia) byIndex.set(it.datasource_item_id, { a: it });
  for (const it of ib) byIndex.set(it.datasource_item_id, { ...(byIndex.get(it.datasource_item_id) || {}), b: it });
  const pairs = [...byIndex.entries()].sort((x, y) => x[0] - y[0]);
  const changed = (p) => !p.a || !p.b || p.a.status !== p.b.status;
  const onlyDiff = h("input", { type: "checkbox", testid: "only-changed" });
  const body = h("tbody");
  const draw = () => clear(body, pairs.filter(([, p]) => !onlyDiff.checked || changed(p)).map(([i, p]) => {
    const kind = !p.a || !p.b ? "" : p.a.status === p.b.status ? "" : p.b.status === "pass" ? "better" : p.a.status === "pass" ? "worse" : "";
    return h("tr", { testid: "compare-row", class: kind, "data-changed": changed(p) ? "yes" : "no" },
      h("td", { class: "num" }, i), h("td", { class: "mono small" }, fmt.short(itemText((p.a || p.b).datasource_item), 160)),
      h("td", { class: "small" }, p.a ? [badge(p.a.status), " ", fmt.short(outputText(p.a.sample), 300)] : "—"),
      h("td", { class: "small" }, p.b ? [badge(p.b.status), " ", fmt.short(outputText(p.b.sample), 300)] : "—"));
  }));
  onlyDiff.addEventListener("change", draw);
  draw();
  const nChanged = pairs.filter(([, p]) => changed(p)).length;
  page.append(title(ev, t("evals.compareTitle")), rates,
    h("h2", {}, t("evals.itemDiffs")),
    h("p", { class: "small", testid: "changed-count" }, t("evals.changed", { n: nChanged, total: pairs.length })),
    field(t("evals.onlyChanged"), onlyDiff, { cls: "check" }),
    h("table", { testid: "compare-items" }, h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"),
      h("th", {}, t("evals.input")), h("th", {}, `A: ${label(ra)}`), h("th", {}, `B: ${label(rb)}`))), body));
}
