"""vLLM servers as the serving backend of chosen base models and of every adapter fine-tuned on them.

``TUNEFORGE_VLLM_SERVERS`` maps a base model id to the vLLM OpenAI-compatible server that serves it (JSON,
or the path of a JSON file)::

    {"smollm2-135m-instruct": "http://127.0.0.1:8001"}
    {"smollm2-135m-instruct": {"url": "http://gpu-box:8001/v1", "api_key_env": "VLLM_API_KEY"}}

The server must be started with ``--served-model-name <that base id> --enable-lora`` and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, and must see tuneforge's data dir at the same path (it loads
adapter folders by path). A fine-tuned model is loaded into vLLM on first use under its own id as the
``lora_name``, so the request's ``model`` goes to vLLM unchanged; deleting the model unloads it.

The gateway decides (``Gateway.route``); this module only reads the configuration and keeps track of
which adapters this process has loaded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.gateway.errors import UpstreamError
from tuneforge.gateway.upstreams import Upstream

log = logging.getLogger("tuneforge.gateway")

VLLM = "vllm"
# Absolute paths in a vLLM error text (its adapter-loading errors name the folder): kept from clients.
_PATH = re.compile(r"(?<![\w:/])/(?:[\w.@+-]+/)*[\w.@+-]+")


@dataclass(frozen=True)
class Route:
    """Where a request for one model goes. ``upstream`` None: this server's built-in engine."""

    upstream: Upstream | None = None
    adapter: str | None = None  # vLLM: the lora_name (the fine-tuned model's id) to load before forwarding
    adapter_dir: Path | None = None
    # llama.cpp: fields set in the forwarded JSON body (its per-request "lora" list), and the model id its
    # answers must name (llama-server names its own alias, the base, whichever adapter answered)
    body: dict | None = field(default=None, compare=False)
    model: str | None = None

    @property
    def backend(self) -> str:
        if self.upstream is None:
            return "local"
        return self.upstream.backend if self.upstream.backend in (VLLM, "llamacpp") else "upstream"


def _api_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def parse_vllm_servers(value: str | None, timeout: float = 600.0) -> dict[str, Upstream]:
    """{base model id: the vLLM server as an ``Upstream``} from TUNEFORGE_VLLM_SERVERS."""
    if not value or not value.strip():
        return {}
    text = value.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {text}: {exc.strerror}") from None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("it must be a JSON object mapping base model ids to vLLM server URLs")
    out: dict[str, Upstream] = {}
    for base, spec in data.items():
        if isinstance(spec, str):
            spec = {"url": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str) or not spec["url"].strip():
            raise ValueError(f"[{base!r}] needs a URL (a string, or an object with 'url')")
        key = spec.get("api_key")
        if key is None and spec.get("api_key_env"):
            key = os.environ.get(str(spec["api_key_env"]), "")
        out[str(base)] = Upstream(name=f"vLLM server for {base}", patterns=(str(base),),
                                  base_url=_api_base(spec["url"]), api_key=str(key or ""), list_models=False,
                                  timeout=float(spec.get("timeout", timeout)), backend=VLLM)
    return out


def clean_message(text: str, adapter_dir: Path | None = None) -> str:
    """A vLLM error text without server paths (adapter folders, the data dir)."""
    if adapter_dir is not None:
        for form in {str(adapter_dir), str(Path(adapter_dir).resolve())}:
            text = text.replace(form, "[adapter]")
    return _PATH.sub("[path]", text)


class LoadedAdapters:
    """The adapters this process has loaded into each vLLM server, with the weights' identity at load time
    (a re-trained folder is reloaded). One lock per adapter: concurrent first requests load it once."""

    def __init__(self):
        self._loaded: dict[tuple[str, str], str] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, server: Upstream, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((server.name, name), threading.Lock())

    def get(self, server: Upstream, name: str) -> str | None:
        with self._guard:
            return self._loaded.get((server.name, name))

    def set(self, server: Upstream, name: str, key: str | None) -> None:
        with self._guard:
            if key is None:
                self._loaded.pop((server.name, name), None)
            else:
                self._loaded[(server.name, name)] = key


def load_error(server: Upstream, model: str, exc: UpstreamError, adapter_dir: Path) -> UpstreamError:
    """vLLM refused to load an adapter: say which model, keep vLLM's reason, drop its paths."""
    status = exc.status_code if exc.status_code >= 500 else 502
    return UpstreamError(f"The {server.name} could not load the fine-tuned model '{model}': "
                         f"{clean_message(str(exc), adapter_dir)}", status=status, type="server_error",
                         code="adapter_load_failed")


def already_loaded(exc: UpstreamError) -> bool:
    """vLLM answers 400 when the name is loaded already (another tuneforge process loaded it)."""
    return exc.status_code == 400 and "already been loaded" in str(exc)
