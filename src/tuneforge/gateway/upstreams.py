"""Upstream providers: models whose names match a pattern are served by another OpenAI-compatible API.

``TUNEFORGE_UPSTREAMS`` holds JSON, or the path of a JSON/YAML file, with a list of upstreams::

    [{"name": "openai", "models": ["gpt-*", "ft:gpt-*", "text-embedding-*"],
      "base_url": "https://my-proxy.example.com/v1", "api_key_env": "OPENAI_API_KEY"}]

(``api_key`` may be given inline instead of ``api_key_env``; ``list_models: false`` keeps the
upstream's models out of ``/v1/models``). The first upstream whose pattern (shell-style, ``fnmatch``)
matches a request's ``model`` gets the request, byte for byte, with its own key. Keys never appear in
logs, errors or ``repr``.

This module only reads the configuration; ``tuneforge.gateway.Gateway`` decides which upstream serves a
model and talks to it.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# Hop-by-hop and per-connection headers are never forwarded in either direction.
_DROP_HEADERS = {"host", "authorization", "content-length", "connection", "keep-alive", "transfer-encoding",
                 "te", "trailer", "upgrade", "proxy-authorization", "proxy-connection", "accept-encoding",
                 "content-encoding", "cookie", "x-request-id"}


@dataclass(frozen=True)
class Upstream:
    name: str
    patterns: tuple[str, ...]
    base_url: str
    api_key: str = field(repr=False)
    list_models: bool = True
    timeout: float = 600.0
    backend: str = "upstream"  # "vllm": a vLLM server serving a base model (tuneforge.gateway.vllm)

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
