"""A stand-in vLLM server for the fast tests: a real HTTP server on loopback that speaks the part of vLLM's
OpenAI-compatible API tuneforge uses (chat completions, completions, models, runtime LoRA loading).

It answers deterministically, naming the model that answered (``[<model>] ...``), and records every call,
so tests see which model each request reached and which adapters were loaded from which folder.
Like vLLM, it answers 404 for a model it does not serve, 400 for an adapter loaded twice, plain text
from the adapter routes, and errors as ``{"error": {..., "type": "NotFoundError", "code": 404}}``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class StandInVllm:
    def __init__(self, base_model: str):
        self.base_model = base_model
        self.loaded: dict[str, str] = {}  # lora_name -> lora_path
        self.calls: list[tuple[str, dict]] = []  # (path, body)
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> StandInVllm:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def restart(self) -> None:
        """What a vLLM restart looks like from outside: every runtime-loaded adapter is gone."""
        with self.lock:
            self.loaded.clear()

    def calls_to(self, path: str) -> list[dict]:
        with self.lock:
            return [body for p, body in self.calls if p == path]

    @staticmethod
    def answer(model: str) -> str:
        return f"[{model}] Hello from the stand-in vLLM."

    # ------------------------------------------------------------------ the HTTP side

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body, content_type="application/json"):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, type_: str, param=None):
                self._send(status, {"error": {"message": message, "type": type_, "param": param, "code": status}})

            def do_GET(self):
                if self.path != "/v1/models":
                    return self._error(404, "Not Found", "NotFoundError")
                with server.lock:
                    ids = [server.base_model, *server.loaded]
                self._send(200, {"object": "list", "data": [{"id": i, "object": "model", "owned_by": "vllm"}
                                                            for i in ids]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                with server.lock:
                    server.calls.append((self.path, body))
                if self.path == "/v1/load_lora_adapter":
                    return self._load(body)
                if self.path == "/v1/unload_lora_adapter":
                    return self._unload(body)
                if self.path in ("/v1/chat/completions", "/v1/completions"):
                    return self._generate(body, chat=self.path.endswith("chat/completions"))
                self._error(404, "Not Found", "NotFoundError")

            def _load(self, body):
                name, path = body.get("lora_name"), body.get("lora_path", "")
                with server.lock:
                    if name in server.loaded:
                        return self._error(400, f"The lora adapter '{name}' has already been loaded.",
                                           "BadRequestError")
                    if not (Path(path) / "adapter_config.json").is_file():
                        return self._error(404, f"Loading lora {name} failed: No adapter found for {path}",
                                           "NotFoundError")
                    server.loaded[name] = path
                self._send(200, f"Success: LoRA adapter '{name}' added successfully.", "text/plain")

            def _unload(self, body):
                name = body.get("lora_name")
                with server.lock:
                    if server.loaded.pop(name, None) is None:
                        return self._error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
                self._send(200, f"Success: LoRA adapter '{name}' removed successfully.", "text/plain")

            def _generate(self, body, chat: bool):
                model = body.get("model")
                with server.lock:
                    known = model == server.base_model or model in server.loaded
                if not known:
                    aliases = ", ".join([server.base_model, *server.loaded])
                    return self._error(404, f"The model `{model}` does not exist. Valid aliases: {aliases}.",
                                       "NotFoundError", "model")
                text = server.answer(model)
                words = [w + " " for w in text.split(" ")]
                words[-1] = words[-1].rstrip()
                usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
                ident, created = ("chatcmpl-standin" if chat else "cmpl-standin"), int(time.time())
                fingerprint = {"system_fingerprint": "vllm-standin"} if chat else {}
                kind = "chat.completion" if chat else "text_completion"
                if not body.get("stream"):
                    choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                               "finish_reason": "stop"} if chat else
                              {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"})
                    return self._send(200, {"id": ident, "object": kind, "created": created, "model": model,
                                            "choices": [choice], "usage": usage, **fingerprint})
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                chunk_kind = "chat.completion.chunk" if chat else "text_completion"

                def emit(choices, **extra):
                    event = {"id": ident, "object": chunk_kind, "created": created, "model": model,
                             "choices": choices, **extra}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()

                for i, word in enumerate(words):
                    last = i == len(words) - 1
                    if chat:
                        delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
                        emit([{"index": 0, "delta": delta, "logprobs": None,
                               "finish_reason": "stop" if last else None}])
                    else:
                        emit([{"index": 0, "text": word, "logprobs": None,
                               "finish_reason": "stop" if last else None}])
                if (body.get("stream_options") or {}).get("include_usage"):
                    emit([], usage=usage)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler
