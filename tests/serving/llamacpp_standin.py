"""A stand-in llama.cpp build for the fast tests: ``make_home`` writes a ``build/bin/llama-server`` and a
``src/convert_lora_to_gguf.py`` that are this file run as a program, so tuneforge starts, supervises, replaces
and talks to real child processes on loopback exactly as it does with the real build.

The stand-in server takes llama-server's flags (``--port``, ``--api-key``, ``--alias``, ``--lora`` ...),
records each start in ``starts.jsonl``, answers ``/health``, and answers chat completions and completions
naming its alias as the model (as llama-server does) and, in the text, which adapter the request's
``"lora"`` scales selected: ``[<alias>+<adapter file's content>]`` or ``[<alias>]``. The stand-in converter
writes ``lora:<adapter folder name>`` and fails, like the real one, on a folder without adapter_config.json.
The real build is exercised by ``test_llamacpp_real.py`` (marker ``llamacpp``, opt-in).
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_home(home: Path) -> Path:
    (home / "build" / "bin").mkdir(parents=True)
    (home / "src").mkdir()
    here = Path(__file__).resolve()
    server = home / "build" / "bin" / "llama-server"
    server.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{here}" server --home "{home}" "$@"\n')
    server.chmod(0o755)
    (home / "src" / "convert_lora_to_gguf.py").write_text(
        f"import runpy, sys\nsys.argv[1:1] = ['convert']\nrunpy.run_path({str(here)!r}, run_name='__main__')\n")
    return home


def starts(home: Path) -> list[dict]:
    path = home / "starts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def requests(home: Path) -> list[dict]:
    path = home / "requests.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def conversions(home: Path) -> list[str]:
    path = home / "conversions.txt"
    return path.read_text().splitlines() if path.exists() else []


def _flags(argv: list[str]) -> dict:
    out: dict = {"lora": []}
    i = 0
    while i < len(argv):
        name = argv[i].lstrip("-").replace("-", "_")
        if name == "lora":
            out["lora"].append(argv[i + 1])
            i += 2
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out[name] = argv[i + 1]
            i += 2
        else:
            out[name] = True
            i += 1
    return out


def _convert(argv: list[str]) -> int:
    flags = _flags(argv[:-1])
    adapter = Path(argv[-1])
    with open(Path.cwd().parent / "conversions.txt", "a") as f:
        f.write(adapter.name + "\n")
    if not (adapter / "adapter_config.json").is_file():
        print(f"FileNotFoundError: {adapter}/adapter_config.json not found", file=sys.stderr)
        return 1
    Path(flags["outfile"]).write_text(f"lora:{adapter.name}")
    return 0


def _serve(argv: list[str]) -> None:
    flags = _flags(argv)
    home = Path(flags["home"])
    alias, key = flags["alias"], flags["api_key"]
    adapters = [Path(p).read_text() for p in flags["lora"]]
    with open(home / "starts.jsonl", "a") as f:
        f.write(json.dumps({k: v for k, v in flags.items() if k != "api_key"}) + "\n")
    record = home / "requests.jsonl"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _json(self, status: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                return self._json(200, {"status": "ok"})
            return self._json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

        def do_POST(self):
            if self.headers.get("authorization") != f"Bearer {key}":
                return self._json(401, {"error": {"code": 401, "message": "Invalid API Key",
                                                  "type": "authentication_error"}})
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            with record.open("a") as f:
                f.write(json.dumps({"path": self.path, "port": flags["port"], "body": body}) + "\n")
            if body.get("max_tokens") == 999999:  # llama-server's own validation, as an error to relay
                return self._json(400, {"error": {"code": 400, "message": f"bad max_tokens in {Path.cwd()}",
                                                  "type": "invalid_request_error"}})
            on = [adapters[e["id"]] for e in body.get("lora", []) if e["scale"] != 0]
            text = f"[{alias}{'+' + '+'.join(on) if on else ''}]"
            chat = self.path.endswith("/chat/completions")
            usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
            base = {"id": "chatcmpl-x", "created": int(time.time()), "model": alias,
                    "system_fingerprint": "b1-stand-in"}
            if not body.get("stream"):
                choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                          if chat else {"index": 0, "text": text, "finish_reason": "stop"})
                return self._json(200, {**base, "object": "chat.completion" if chat else "text_completion",
                                        "choices": [choice], "usage": usage})
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            obj = "chat.completion.chunk" if chat else "text_completion"
            events = []
            for i, piece in enumerate((text[:3], text[3:])):
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                choice = {"index": 0, "delta": delta, "finish_reason": None} if chat else \
                    {"index": 0, "text": piece, "finish_reason": None}
                events.append({**base, "object": obj, "choices": [choice]})
            last = {"index": 0, "delta": {}, "finish_reason": "stop"} if chat else \
                {"index": 0, "text": "", "finish_reason": "stop"}
            events.append({**base, "object": obj, "choices": [last]})
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append({**base, "object": obj, "choices": [], "usage": usage})
            for event in events:
                self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")

    ThreadingHTTPServer((flags["host"], int(flags["port"])), Handler).serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "convert":
        sys.exit(_convert(sys.argv[2:]))
    _serve(sys.argv[2:])
