"""One gateway for every model: local (this process's engine), upstream (another OpenAI-compatible API),
vLLM (a vLLM server configured for the model's base, fine-tuned adapters included) or llama.cpp (llama-server
processes this gateway runs for GGUF bases, fine-tuned adapters included).

``Gateway.resolve(model)`` decides for upstream providers, ``Gateway.route(model, lookup)`` for generation
requests (upstream, else vLLM, else llama.cpp, else local); nothing else decides. Everything that talks to
a provider goes through this object's two pooled httpx clients (async for request pass-through and streaming,
sync for worker threads: fine-tuning jobs, file copies, assistant runs), and every failure is an
``UpstreamError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tuneforge.errors import NotFound, ServerError
from tuneforge.gateway.errors import UpstreamError, redact
from tuneforge.gateway.llamacpp import LLAMACPP, base_gguf, convert_adapter, parse_llamacpp_models
from tuneforge.gateway.llamacpp_servers import LlamaCppServers
from tuneforge.gateway.upstreams import Upstream, parse_upstreams
from tuneforge.gateway.vllm import (
    VLLM,
    LoadedAdapters,
    Route,
    already_loaded,
    clean_message,
    load_error,
    parse_vllm_servers,
)

if TYPE_CHECKING:
    from tuneforge.models.catalog import ServedModel
    from tuneforge.models.registry import ModelRegistry

log = logging.getLogger("tuneforge.gateway")
_ALIASES = re.compile(r"\s*Valid aliases:.*", re.S)


class Gateway:
    def __init__(self, upstreams_config: str | None, *, timeout: float = 600.0, models_ttl: float = 60.0,
                 vllm_servers: str | None = None, llamacpp_models: str | None = None,
                 llamacpp_home: Path | None = None, work_dir: Path | None = None, threads: int | None = None,
                 registry: ModelRegistry | None = None):
        self._config, self._timeout, self.models_ttl = upstreams_config, timeout, models_ttl
        self._upstreams: list[Upstream] | None = None
        self._vllm_config = vllm_servers
        self._vllm: dict[str, Upstream] | None = None
        self._llamacpp_config, self._llamacpp_home = llamacpp_models, llamacpp_home
        self._work_dir, self._threads, self.registry = work_dir, threads, registry
        self._llamacpp: LlamaCppServers | None = None
        self.adapters = LoadedAdapters()
        self._models: dict[str, tuple[float, list[dict]]] = {}
        self._lock = threading.Lock()
        self._async: httpx.AsyncClient | None = None
        self._sync: httpx.Client | None = None

    @classmethod
    def from_settings(cls, settings, registry: ModelRegistry | None = None) -> Gateway:
        return cls(settings.upstreams, timeout=settings.upstream_timeout_s, models_ttl=settings.upstream_models_ttl_s,
                   vllm_servers=settings.vllm_servers, llamacpp_models=settings.llamacpp_models,
                   llamacpp_home=settings.llamacpp_dir, work_dir=settings.data_dir, threads=settings.serve_threads,
                   registry=registry)

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

    @property
    def vllm_servers(self) -> dict[str, Upstream]:
        """{base model id: its vLLM server}; parsed on first use, like the upstreams."""
        if self._vllm is None:
            try:
                self._vllm = parse_vllm_servers(self._vllm_config, self._timeout)
            except (ValueError, json.JSONDecodeError) as exc:
                raise ServerError(f"Server misconfiguration (TUNEFORGE_VLLM_SERVERS): {exc}") from None
        return self._vllm

    @property
    def llamacpp(self) -> LlamaCppServers | None:
        """The llama-server processes of the bases in TUNEFORGE_LLAMACPP_MODELS (none started yet)."""
        if self._llamacpp is None and self._llamacpp_config:
            try:
                models = parse_llamacpp_models(self._llamacpp_config)
            except (ValueError, json.JSONDecodeError) as exc:
                raise ServerError(f"Server misconfiguration (TUNEFORGE_LLAMACPP_MODELS): {exc}") from None
            from tuneforge.gateway.llamacpp import default_home

            work = Path(self._work_dir or ".")
            self._llamacpp = LlamaCppServers(models, home=Path(self._llamacpp_home or default_home()),
                                             log_dir=work / "logs", default_threads=self._threads,
                                             timeout=self._timeout)
        return self._llamacpp

    @property
    def serves_bases(self) -> bool:
        """Whether some base model is served by a backend (vLLM or llama.cpp) rather than the engine."""
        return bool(self.vllm_servers) or bool(self.llamacpp)

    def backend_of(self, base_model: str) -> str | None:
        if base_model in self.vllm_servers:
            return VLLM
        servers = self.llamacpp
        return LLAMACPP if servers is not None and base_model in servers else None

    def route(self, model: Any, lookup: Callable[[str], ServedModel | None]) -> Route:
        """Where a chat completions or completions request for ``model`` goes: the upstream provider whose
        pattern matches, else the vLLM server of the model's base, else its llama.cpp server, else this
        server's engine.

        ``lookup`` resolves the model for the calling project (it raises the 404 for another project's
        model, and returns None for ids the local path answers itself). Blocking: a fine-tuned model is
        loaded into vLLM here on first use, so call it from a worker thread."""
        upstream = self.resolve(model)
        if upstream is not None:
            return Route(upstream)
        if not self.serves_bases or not isinstance(model, str):
            return Route()
        served = lookup(model)
        if served is None:
            return Route()
        servers = self.llamacpp
        if servers is not None and served.base_model in servers and served.base_model not in self.vllm_servers:
            return self._llamacpp_route(servers, served)
        server = self.vllm_servers.get(served.base_model)
        if server is None:
            return Route()
        if served.adapter_dir is None:
            return Route(server)
        route = Route(server, served.id, served.adapter_dir)
        self.load_adapter(route)
        return route

    def load_adapter(self, route: Route, *, force: bool = False) -> None:
        """Load ``route``'s adapter into its vLLM server unless this process already did with the same
        weights (a re-trained folder is replaced: unload, then load)."""
        from tuneforge.inference.adapters import adapter_key  # also checks the weights are there (404)

        server, name, folder = route.upstream, route.adapter, route.adapter_dir
        assert server is not None and name is not None and folder is not None
        with self.adapters.lock(server, name):
            try:
                key = adapter_key(folder)
            except NotFound:  # its message names the folder
                raise NotFound(f"The weights of the fine-tuned model '{name}' are missing on the server.",
                               param="model", code="model_not_found") from None
            known = self.adapters.get(server, name)
            if known == key and not force:
                return
            if known is not None or force:
                self._unload(server, name)
            try:
                self.request(server, "POST", "load_lora_adapter",
                             json={"lora_name": name, "lora_path": str(Path(folder).resolve())})
                log.info("vLLM: loaded adapter %s into the %s", name, server.name)
            except UpstreamError as exc:
                if exc.code == "backend_unavailable":
                    raise
                if not already_loaded(exc):
                    raise load_error(server, name, exc, folder) from None
            self.adapters.set(server, name, key)

    def _llamacpp_route(self, servers: LlamaCppServers, served: ServedModel) -> Route:
        """The base's llama-server (started, or replaced by one that has this adapter), and the body fields
        that select the adapter. Every request names every adapter's scale (0 for the others): a request
        without a "lora" list would reuse a slot's cached prompt computed with another adapter."""
        from tuneforge.inference.adapters import adapter_key

        base = served.base_model
        if self.registry is None:
            raise ServerError("Server misconfiguration: the llama.cpp backend needs the model registry.")
        cfg = servers.models[base]
        try:
            gguf = base_gguf(cfg.gguf or self.registry.resolve(base).location)
        except ValueError as exc:
            raise ServerError(f"Server misconfiguration (TUNEFORGE_LLAMACPP_MODELS): {base}: {exc}") from None
        lora = None
        if served.adapter_dir is not None:
            try:
                key = adapter_key(served.adapter_dir)
            except NotFound:  # its message names the folder
                raise NotFound(f"The weights of the fine-tuned model '{served.id}' are missing on the server.",
                               param="model", code="model_not_found") from None
            lora = convert_adapter(servers.home, served.id, served.adapter_dir, key, self.registry.materialize(base),
                                   Path(self._work_dir or ".") / "cache" / "llamacpp-loras")
        server, lora_id = servers.ensure(base, gguf, lora)
        scales = [{"id": i, "scale": 1.0 if i == lora_id else 0.0} for i in range(len(server.loras))]
        body = {"model": base, "lora": scales} if scales else {"model": base}
        # llama-server answers with its alias, the base id: only an adapter's answers need the id put back
        return Route(server.upstream, served.id if lora else None, served.adapter_dir, body=body,
                     model=served.id if served.id != base else None)

    def unload_adapter(self, base_model: str, name: str) -> None:
        """Unload a deleted fine-tuned model from its base's vLLM server (best effort: a server that is
        down or never had it changes nothing for the caller)."""
        servers = self.llamacpp
        if servers is not None and base_model in servers:
            servers.forget(base_model, name)
            return
        server = self.vllm_servers.get(base_model)
        if server is None:
            return
        with self.adapters.lock(server, name):
            self._unload(server, name)
            self.adapters.set(server, name, None)

    def _unload(self, server: Upstream, name: str) -> None:
        try:
            self.request(server, "POST", "unload_lora_adapter", json={"lora_name": name})
            log.info("vLLM: unloaded adapter %s from the %s", name, server.name)
        except UpstreamError as exc:  # not loaded there (e.g. vLLM restarted), or vLLM is down
            log.info("vLLM: unloading %s from the %s: %s", name, server.name, exc.status_code)

    def secrets(self) -> tuple[str, ...]:
        try:
            vllm = list(self.vllm_servers.values())
        except ServerError:  # a bad TUNEFORGE_VLLM_SERVERS must not break upstream error handling
            vllm = []
        return tuple(u.api_key for u in [*self.upstreams, *vllm] if u.api_key)

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
            raise self._unreachable(upstream, exc) from None
        if response.status_code >= 400:
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            log.info("upstream %s answered %s on %s", upstream.name, response.status_code, path)
            raise self._error(upstream, response.status_code, content)
        return response

    async def open_route(self, route: Route, path: str, body: bytes,
                         headers: dict[str, str] | None = None) -> httpx.Response:
        """``open`` for a routed request. A vLLM server that no longer knows a fine-tuned model (it was
        restarted since the adapter was loaded) gets the adapter again, and the request once more."""
        assert route.upstream is not None
        if route.body is not None:
            payload = json.loads(body)
            payload.update(route.body)
            body = json.dumps(payload).encode()
        if route.upstream.backend == LLAMACPP:
            return await self.open(route.upstream, path, body, headers)
        try:
            return await self.open(route.upstream, path, body, headers)
        except UpstreamError as exc:
            if route.adapter is None or exc.status_code != 404:
                raise
        log.info("vLLM: %s is unknown to the %s; loading it again", route.adapter, route.upstream.name)
        await asyncio.to_thread(self.load_adapter, route, force=True)
        return await self.open(route.upstream, path, body, headers)

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

    def request(self, upstream: Upstream, method: str, path: str, **kwargs) -> httpx.Response:
        """One call, any body (vLLM's adapter routes answer plain text); an error status raises."""
        if "params" in kwargs:
            kwargs["params"] = {k: v for k, v in (kwargs["params"] or {}).items() if v is not None}
        try:
            response = self._sync_client().request(method, upstream.url(path), headers=upstream.headers(),
                                                   timeout=upstream.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(upstream, exc) from None
        if response.status_code >= 400:
            raise self._error(upstream, response.status_code, response.content)
        return response

    def call(self, upstream: Upstream, method: str, path: str, **kwargs) -> dict:
        """A JSON API call (``json=``, ``params=``, ``files=``/``data=`` as httpx takes them)."""
        response = self.request(upstream, method, path, **kwargs)
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
                    raise self._error(upstream, response.status_code, response.read())
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
            raise self._unreachable(upstream, exc) from None

    # ------------------------------------------------------------------ errors

    async def relay(self, route: Route, response: httpx.Response):
        """The routed response's body as it arrives. A llama.cpp answer names the base (its alias) whichever
        adapter answered: each JSON object, or each server-sent event's, gets the requested model back."""
        if route.upstream is None or route.upstream.backend != LLAMACPP or route.model is None:
            async for part in response.aiter_raw():
                yield part
            return
        if "text/event-stream" not in response.headers.get("content-type", ""):
            yield _renamed(await response.aread(), route.model)
            return
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                line = "data: " + _renamed(line[6:].encode(), route.model).decode()
            yield (line + "\n").encode()

    def _unreachable(self, upstream: Upstream, exc: Exception) -> UpstreamError:
        if upstream.backend in (VLLM, LLAMACPP):
            return UpstreamError.backend_unavailable(upstream.name, exc)
        return UpstreamError.unreachable(upstream.name, exc)

    def _error(self, upstream: Upstream, status: int, content: bytes) -> UpstreamError:
        error = UpstreamError.from_response(upstream.name, status, content, self.secrets())
        if upstream.backend == LLAMACPP:  # its codes are HTTP statuses, its types OpenAI's
            error.message = clean_message(error.message)
            error.args = (error.message,)
            error.type = "server_error" if status >= 500 else "invalid_request_error"
            if error.code is None or error.code.isdigit() or error.code == "upstream_error":
                error.code = "llamacpp_error"
            return error
        if upstream.backend != VLLM:
            return error
        # vLLM's errors name exception classes as types and HTTP statuses as codes, and may name server
        # paths: put them in OpenAI's terms.
        # Its 404 lists every name it serves ("Valid aliases: ..."), other projects' fine-tuned models too.
        error.message = clean_message(_ALIASES.sub("", error.message))
        error.args = (error.message,)
        error.type = "server_error" if status >= 500 else "invalid_request_error"
        if status == 404:
            error.code = "model_not_found"
        elif error.code is None or error.code.isdigit() or error.code == "upstream_error":
            error.code = "vllm_error"
        return error

    async def aclose(self) -> None:
        if self._llamacpp is not None:
            await asyncio.to_thread(self._llamacpp.close)
        if self._async is not None:
            await self._async.aclose()
        if self._sync is not None:
            self._sync.close()


def _renamed(body: bytes, model: str) -> bytes:
    try:
        obj = json.loads(body)
    except ValueError:
        return body
    if isinstance(obj, dict) and "model" in obj:
        obj["model"] = model
        return json.dumps(obj, ensure_ascii=False).encode()
    return body
