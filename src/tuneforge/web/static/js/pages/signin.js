// Sign-in: paste an API key (kept in sessionStorage for this browser session only).
import { api, auth } from "../api.js";
import { t } from "../i18n.js";
import { errorBox, field, h } from "../ui.js";

export async function render(root, { onSignedIn }) {
  const input = h("input", { type: "password", autocomplete: "off", testid: "key-input", size: 48 });
  const slot = h("div");
  const form = h("form", { class: "panel", onsubmit: async (e) => {
    e.preventDefault();
    slot.replaceChildren();
    auth.key = input.value.trim();
    try {
      await api("/me");
      onSignedIn();
    } catch (err) {
      auth.key = "";
      slot.append(errorBox(err));
    }
  } },
  h("h1", {}, t("signin.title")),
  h("p", { class: "muted" }, t("signin.help")),
  h("div", { class: "row" }, field(t("signin.key"), input), h("button", { class: "primary", type: "submit" },
    t("signin.submit"))),
  slot);
  root.append(form);
  setTimeout(() => input.focus(), 0);
}
