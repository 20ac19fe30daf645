"""One gateway for every model: local (served by this process) or upstream (another OpenAI-compatible API).

``Gateway.resolve(model)`` is the only place that decides; everything that talks to a provider goes
through this object's two pooled httpx clients (async for request pass-through and streaming, sync for
worker threads: fine-tuning jobs, file copies, assistant runs), and every failure is an ``UpstreamError``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from tuneforge.errors import ServerError
from tuneforge.gateway.errors import UpstreamError, redact
from tuneforge.gateway.upstreams import Upstream, parse_upstreams

log = logging.getLogger("tuneforge.gateway")


class Gateway:
    def __init__(self, upstreams_config: str | None, *, timeout: float = 600.0, models_ttl: float = 60.0):
        self._config, self._timeout, self.models_ttl = upstreams_config, timeout, models_ttl
        self._upstreams: list[Upstream] | None = None
        self._models: dict[str, tuple[float, list[dict]]] = {}
        self._lock = threading.Lock()
        self._async: httpx.AsyncClient | None = None
        self._sync: httpx.Client | None = None

    @classmethod
    def from_settings(cls, settings) -> Gateway:
        return cls(settings.upstreams, timeout=settings.upstream_timeout_s, models_ttl=settings.upstream_models_ttl_s)

    # ------------------------------------------------------------------ configuration and routing

    @property
    def upstreams(self) -> list[Upstream]:
        """Parsed on first use, so a bad TUNEFORGE_UPSTREAMS fails the requests that need it, not start-up."""
        if self._upstreams is None:
            try:
                self._upstreams = parse_upstreams(self._config, self._timeout)
            except (ValueError, json.JSONDecodeError) as exc:
                raise ServerError(f"Server misconfiguration (TUNEFORGE_UPSTREAMS): {exc}") from None
        return self._upstreams

    def resolve(self, model: Any) -> Upstream | None:
        """The upstream that serves ``model``, or None when this server serves it itself (or it is unknown:
        the local catalog answers 404 for those, per project)."""
        if not isinstance(model, str):
            return None
        return next((u for u in self.upstreams if u.matches(model)), None)

    def by_name(self, name: str) -> Upstream | None:
        return next((u for u in self.upstreams if u.name == name), None)

    def secrets(self) -> tuple[str, ...]:
        return tuple(u.api_key for u in self.upstreams if u.api_key)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets())

    # ------------------------------------------------------------------ model listing

    def list_models(self, timeout: float = 2.0) -> list[dict]:
        """Models of every reachable upstream that match its patterns (cached; a dead upstream adds none)."""
        out: list[dict] = []
        for upstream in self.upstreams:
            if upstream.list_models:
                out.extend(self._upstream_models(upstream, timeout))
        return out

    def find_model(self, model_id: str) -> dict | None:
        upstream = self.resolve(model_id)
        if upstream is None:
            return None
        return next((m for m in self._upstream_models(upstream, 2.0) if m["id"] == model_id), None)

    def _upstream_models(self, upstream: Upstream, timeout: float) -> list[dict]:
        now = time.monotonic()
        with self._lock:
            cached = self._models.get(upstream.name)
            if cached and now - cached[0] < self.models_ttl:
                return cached[1]
        models: list[dict] = []
        try:
            response = self._sync_client().get(upstream.url("models"), headers=upstream.headers(), timeout=timeout)
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

    # ------------------------------------------------------------------ async: pass-through

    def _async_client(self) -> httpx.AsyncClient:
        if self._async is None:  # created inside the running event loop, on first use
            self._async = httpx.AsyncClient(timeout=None, follow_redirects=False)
        return self._async

    async def open(self, upstream: Upstream, path: str, body: bytes,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``body`` to the upstream's ``path``; the response comes back with its body unread (the caller
        streams it with ``aiter_raw`` and closes it). An error status raises ``UpstreamError``."""
        out_headers = upstream.headers(headers)
        out_headers["content-type"] = "application/json"
        client = self._async_client()
        request = client.build_request("POST", upstream.url(path), content=body, headers=out_headers,
                                       timeout=httpx.Timeout(upstream.timeout, connect=10.0))
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("upstream %s unreachable for %s (%s)", upstream.name, path, type(exc).__name__)
            raise UpstreamError.unreachable(upstream.name, exc) from None
        if response.status_code >= 400:
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            log.info("upstream %s answered %s on %s", upstream.name, response.status_code, path)
            raise UpstreamError.from_response(upstream.name, response.status_code, content, self.secrets())
        return response

    async def post_json(self, upstream: Upstream, path: str, payload: dict) -> dict:
        response = await self.open(upstream, path, json.dumps(payload).encode())
        try:
            return json.loads(await response.aread())
        except ValueError:
            raise UpstreamError(f"The upstream '{upstream.name}' sent a body that is not JSON.") from None
        finally:
            await response.aclose()

    # ------------------------------------------------------------------ sync: worker threads

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._sync is None:
                self._sync = httpx.Client(follow_redirects=False)
            return self._sync

    def call(self, upstream: Upstream, method: str, path: str, **kwargs) -> dict:
        """A JSON API call (``json=``, ``params=``, ``files=``/``data=`` as httpx takes them)."""
        if "params" in kwargs:
            kwargs["params"] = {k: v for k, v in (kwargs["params"] or {}).items() if v is not None}
        try:
            response = self._sync_client().request(method, upstream.url(path), headers=upstream.headers(),
                                                   timeout=upstream.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamError.unreachable(upstream.name, exc) from None
        if response.status_code >= 400:
            raise UpstreamError.from_response(upstream.name, response.status_code, response.content, self.secrets())
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(f"The upstream '{upstream.name}' sent a body that is not JSON.") from None

    def stream(self, upstream: Upstream, path: str, payload: dict) -> Iterator[dict]:
        """POST a streaming request and yield each server-sent event's JSON; closing the iterator hangs up,
        which stops the generation at the provider."""
        client = self._sync_client()
        try:
            with client.stream("POST", upstream.url(path), json=payload, headers=upstream.headers(),
                               timeout=httpx.Timeout(upstream.timeout, connect=10.0)) as response:
                if response.status_code >= 400:
                    raise UpstreamError.from_response(upstream.name, response.status_code, response.read(),
                                                      self.secrets())
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    event = json.loads(data)
                    if isinstance(event, dict) and isinstance(event.get("error"), dict):
                        raise UpstreamError.from_response(upstream.name, 502, data.encode(), self.secrets())
                    yield event
        except httpx.HTTPError as exc:
            raise UpstreamError.unreachable(upstream.name, exc) from None

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
        if self._sync is not None:
            self._sync.close()
