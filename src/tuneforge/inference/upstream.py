"""Upstream providers: models whose names match a pattern are served by another OpenAI-compatible API.

``TUNEFORGE_UPSTREAMS`` holds JSON, or the path of a JSON/YAML file, with a list of upstreams::

    [{"name": "openai", "models": ["gpt-*", "ft:gpt-*", "text-embedding-*"],
      "base_url": "https://my-proxy.example.com/v1", "api_key_env": "OPENAI_API_KEY"}]

(``api_key`` may be given inline instead of ``api_key_env``; ``list_models: false`` keeps the
upstream's models out of ``/v1/models``). The first upstream whose pattern (shell-style, ``fnmatch``)
matches a request's ``model`` gets the request, byte for byte, with its own key. Keys never appear in
logs, errors or ``repr``.

For other subsystems (fine-tuning jobs and files for upstream models)::

    router = get_router(settings)
    upstream = router.match("ft:gpt-4o-mini:acme:x:abc")   # Upstream | None
    client = upstream.client()                             # openai.OpenAI for that upstream
    client.fine_tuning.jobs.create(...)
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tuneforge.errors import ServerError, TuneforgeError

log = logging.getLogger("tuneforge.upstream")

# Hop-by-hop and per-connection headers are never forwarded in either direction.
_DROP_HEADERS = {"host", "authorization", "content-length", "connection", "keep-alive", "transfer-encoding",
                 "te", "trailer", "upgrade", "proxy-authorization", "proxy-connection", "accept-encoding",
                 "content-encoding", "cookie", "x-request-id"}


class UpstreamUnavailable(TuneforgeError):
    status_code = 502
    type = "server_error"
    default_code = "upstream_unavailable"


@dataclass(frozen=True)
class Upstream:
    name: str
    patterns: tuple[str, ...]
    base_url: str
    api_key: str = field(repr=False)
    list_models: bool = True
    timeout: float = 600.0

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"Upstream(name={self.name!r}, base_url={self.base_url!r}, patterns={list(self.patterns)!r})"

    def matches(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, p) for p in self.patterns)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def headers(self, incoming: dict[str, str] | None = None) -> dict[str, str]:
        out = {k: v for k, v in (incoming or {}).items() if k.lower() not in _DROP_HEADERS}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out

    def client(self, **kwargs):
        """An ``openai.OpenAI`` client for this upstream (for fine-tuning jobs, files, ...)."""
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.api_key or "none", timeout=self.timeout, **kwargs)

    def async_client(self, **kwargs):
        from openai import AsyncOpenAI

        return AsyncOpenAI(base_url=self.base_url, api_key=self.api_key or "none", timeout=self.timeout, **kwargs)


def parse_upstreams(value: str | None, timeout: float = 600.0) -> list[Upstream]:
    if not value or not value.strip():
        return []
    text = value.strip()
    if not text.startswith(("[", "{")):
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"TUNEFORGE_UPSTREAMS: cannot read {path}: {exc.strerror}") from None
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    else:
        data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("upstreams", [data] if "base_url" in data else [])
    if not isinstance(data, list):
        raise ValueError("TUNEFORGE_UPSTREAMS must be a list of upstream objects")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not item.get("base_url") or not item.get("models"):
            raise ValueError(f"TUNEFORGE_UPSTREAMS[{i}] needs 'base_url' and 'models' (a list of patterns)")
        patterns = item["models"]
        patterns = (patterns,) if isinstance(patterns, str) else tuple(str(p) for p in patterns)
        key = item.get("api_key")
        if key is None and item.get("api_key_env"):
            key = os.environ.get(str(item["api_key_env"]), "")
        out.append(Upstream(name=str(item.get("name") or f"upstream{i}"), patterns=patterns,
                            base_url=str(item["base_url"]), api_key=str(key or ""),
                            list_models=bool(item.get("list_models", True)),
                            timeout=float(item.get("timeout", timeout))))
    return out


class UpstreamRouter:
    def __init__(self, upstreams: list[Upstream], models_ttl: float = 60.0):
        self.upstreams = upstreams
        self.models_ttl = models_ttl
        self._models: dict[str, tuple[float, list[dict]]] = {}
        self._lock = threading.Lock()

    def match(self, model: str | None) -> Upstream | None:
        if not isinstance(model, str):
            return None
        return next((u for u in self.upstreams if u.matches(model)), None)

    def list_models(self, timeout: float = 2.0) -> list[dict]:
        """Models of every reachable upstream that match its patterns (cached; a dead upstream adds none)."""
        out: list[dict] = []
        for upstream in self.upstreams:
            if upstream.list_models:
                out.extend(self._upstream_models(upstream, timeout))
        return out

    def _upstream_models(self, upstream: Upstream, timeout: float) -> list[dict]:
        now = time.monotonic()
        with self._lock:
            cached = self._models.get(upstream.name)
            if cached and now - cached[0] < self.models_ttl:
                return cached[1]
        models: list[dict] = []
        try:
            response = httpx.get(upstream.url("models"), headers=upstream.headers(), timeout=timeout)
            response.raise_for_status()
            for obj in response.json().get("data", []):
                if isinstance(obj, dict) and isinstance(obj.get("id"), str) and upstream.matches(obj["id"]):
                    obj = dict(obj)
                    obj.setdefault("object", "model")
                    obj.setdefault("created", 0)
                    obj.setdefault("owned_by", upstream.name)
                    obj["tuneforge"] = {"source": "upstream", "upstream": upstream.name}
                    models.append(obj)
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("upstream %s: listing models failed (%s)", upstream.name, type(exc).__name__)
        with self._lock:
            self._models[upstream.name] = (now, models)
        return models

    def find_model(self, model_id: str) -> dict | None:
        upstream = self.match(model_id)
        if upstream is None:
            return None
        return next((m for m in self._upstream_models(upstream, 2.0) if m["id"] == model_id), None)


_routers: dict[tuple, UpstreamRouter] = {}
_routers_lock = threading.Lock()


def get_router(settings) -> UpstreamRouter:
    """The router for these settings (cached, so the model-list cache is shared by all callers)."""
    key = (settings.upstreams, settings.upstream_timeout_s, settings.upstream_models_ttl_s)
    with _routers_lock:
        router = _routers.get(key)
        if router is None:
            try:
                upstreams = parse_upstreams(settings.upstreams, settings.upstream_timeout_s)
            except (ValueError, json.JSONDecodeError) as exc:
                raise ServerError(f"Server misconfiguration (TUNEFORGE_UPSTREAMS): {exc}") from None
            router = _routers[key] = UpstreamRouter(upstreams, settings.upstream_models_ttl_s)
        return router


async def open_upstream(client: httpx.AsyncClient, upstream: Upstream, path: str, body: bytes,
                        headers: dict[str, str] | None = None) -> httpx.Response:
    """Send ``body`` to the upstream's ``path`` and return the response with its body still unread
    (``aiter_raw`` streams it through; the caller closes it)."""
    out_headers = upstream.headers(headers)
    out_headers["content-type"] = "application/json"
    request = client.build_request("POST", upstream.url(path), content=body, headers=out_headers,
                                   timeout=httpx.Timeout(upstream.timeout, connect=10.0))
    try:
        return await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        log.warning("upstream %s unreachable for %s (%s)", upstream.name, path, type(exc).__name__)
        raise UpstreamUnavailable(f"The upstream provider '{upstream.name}' for this model could not be reached "
                                  f"({type(exc).__name__}).") from None


def error_envelope(status: int, content: bytes, upstream: Upstream) -> bytes:
    """Upstream errors pass through as they are when already in OpenAI's envelope, else get wrapped."""
    try:
        body = json.loads(content)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return content
    except ValueError:
        pass
    text = content.decode("utf-8", "replace")[:2000] or f"HTTP {status}"
    return json.dumps({"error": {"message": f"Upstream '{upstream.name}' answered {status}: {text}",
                                 "type": "server_error" if status >= 500 else "invalid_request_error",
                                 "param": None, "code": "upstream_error"}}).encode()
