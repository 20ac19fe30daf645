// The console's only way to the server: the public /v1 API, same origin, the caller's key if any.

const KEY = "tuneforge.apiKey";

export const auth = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, message, code, param) {
    super(message);
    this.status = status; this.code = code; this.param = param;
  }
}

function headers(json) {
  const out = {};
  if (auth.key) out.authorization = `Bearer ${auth.key}`;
  if (json) out["content-type"] = "application/json";
  return out;
}

async function fail(response) {
  let message = `${response.status} ${response.statusText}`, code, param;
  try {
    const body = await response.json();
    if (body && body.error) ({ message = message, code, param } = body.error);
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message, code, param);
}

async function send(path, { method = "GET", body, form, signal } = {}) {
  let response;
  try {
    response = await fetch(`/v1${path}`, {
      method, signal, headers: headers(body !== undefined),
      body: form || (body !== undefined ? JSON.stringify(body) : undefined),
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `Network error: ${e.message}`, "network_error");
  }
  if (!response.ok) throw await fail(response);
  return response;
}

export async function api(path, options) {
  return (await send(path, options)).json();
}

export async function apiText(path, options) {
  return (await send(path, options)).text();
}

export async function upload(file, purpose) {
  const form = new FormData();
  form.append("purpose", purpose);
  form.append("file", file, file.name);
  return api("/files", { method: "POST", form });
}

// Server-sent events over fetch (EventSource cannot send an Authorization header).
// Yields each `data:` payload parsed as JSON; stops at [DONE] or when the stream ends.
export async function* sse(path, { method = "GET", body, signal } = {}) {
  const response = await send(path, { method, body, signal });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        const parsed = JSON.parse(data);
        if (parsed && parsed.error) throw new ApiError(500, parsed.error.message, parsed.error.code);
        yield parsed;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

export async function listAll(path) {
  const body = await api(path);
  return body.data || [];
}
