// The console shell: header (project, key, language), navigation and a hash router.
import { api, auth } from "./api.js";
import { lang, setLang, t } from "./i18n.js";
import { clear, errorBox, field, h, select } from "./ui.js";

const PAGES = {
  data: () => import("./pages/data.js"),
  finetune: () => import("./pages/finetune.js"),
  job: () => import("./pages/job.js"),
  playground: () => import("./pages/playground.js"),
  knowledge: () => import("./pages/knowledge.js"),
  models: () => import("./pages/models.js"),
  evals: () => import("./pages/evals.js"),
  signin: () => import("./pages/signin.js"),
};
const NAV = ["data", "finetune", "playground", "evals", "knowledge", "models"];

const main = document.getElementById("main");
let cleanup = null;
let me = null;
let renders = 0;

function route() {
  const [path] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = path.split("/");
  return { page: PAGES[page] ? page : "data", arg: rest.map(decodeURIComponent).join("/") };
}

function renderNav(active) {
  const current = active === "job" ? "finetune" : active;
  if (!me) { clear(document.getElementById("nav")); return; }  // nothing to navigate to before signing in
  clear(document.getElementById("nav"), NAV.map((p) => h("a", {
    href: `#/${p}`, "aria-current": p === current ? "page" : null, testid: `nav-${p}` }, t(`nav.${p}`))));
}

function renderWho() {
  const who = document.getElementById("who");
  const langSelect = select([["en", "English"], ["zh-CN", "中文"]], lang(),
    { testid: "lang-switch", onchange: (e) => { setLang(e.target.value); render(); } });
  const parts = [];
  if (me) parts.push(h("span", { class: "badge", title: t("who.project") }, `${t("who.project")}: ${me.project}`));
  if (me && me.auth === "single_user") parts.push(h("span", { class: "badge" }, t("who.single")));
  if (auth.key) {
    parts.push(h("button", { class: "link", style: { color: "#cfd8e3" },
      onclick: () => { auth.key = ""; me = null; start(); } }, t("who.signout")));
  }
  clear(who, parts, field(t("who.language"), langSelect));
  const label = who.querySelector("label");
  label.classList.add("check");
}

async function render() {
  document.documentElement.lang = lang();
  document.title = t("title");
  document.querySelector(".skip").textContent = t("skip");
  const r = me ? route() : { page: "signin", arg: "" };
  renderNav(r.page);
  renderWho();
  if (cleanup) { try { cleanup(); } catch { /* a page's own teardown must not block navigation */ } }
  cleanup = null;
  clear(main, h("p", { class: "muted" }, t("loading")));
  const token = ++renders;  // a later navigation wins over a page still loading
  try {
    const mod = await PAGES[r.page]();
    const container = h("div");
    const teardown = (await mod.render(container, { arg: r.arg, me, onSignedIn: start })) || null;
    if (token !== renders) { if (teardown) teardown(); return; }
    cleanup = teardown;
    clear(main, container);
  } catch (e) {
    if (token !== renders) return;
    console.warn(e);
    clear(main, h("h1", {}, t(`nav.${r.page}`, {}, r.page)), errorBox(e));
  }
}

async function start() {
  try {
    me = await api("/me");
  } catch (e) {
    me = null;
    if (e.status !== 401) {
      renderNav("data");
      clear(main, errorBox(e));
      return;
    }
  }
  render();
}

window.addEventListener("hashchange", () => render());
start();
