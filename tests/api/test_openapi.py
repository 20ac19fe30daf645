"""/openapi.json is a true contract: request bodies are described and error statuses documented."""

from tuneforge.api.app import build_app
from tuneforge.settings import Settings


def _spec(tmp_path):
    return build_app(Settings(data_dir=tmp_path)).openapi()


def test_every_v1_post_has_a_request_body_schema(tmp_path):
    spec = _spec(tmp_path)
    posts = [(path, item["post"]) for path, item in spec["paths"].items() if path.startswith("/v1") and "post" in item]
    assert len(posts) > 25
    def described(schema: dict) -> bool:
        if schema.get("anyOf"):  # an optional body: the model or null
            return any(described(s) for s in schema["anyOf"] if s.get("type") != "null")
        return bool(schema.get("$ref") or schema.get("properties") or schema.get("type") == "object")

    def named(schema: dict) -> bool:
        return "$ref" in schema or any("$ref" in s for s in schema.get("anyOf", []))

    for path, op in posts:
        content = op.get("requestBody", {}).get("content", {})
        assert content, path
        assert described(next(iter(content.values()))["schema"]), path
    typed = [p for p, op in posts if named(next(iter(op["requestBody"]["content"].values()))["schema"])]
    # bodies that carry parameters point at a named model (the cancel-style ones take none)
    for path in ("/v1/vector_stores", "/v1/assistants", "/v1/threads/{thread_id}/messages", "/v1/masks",
                 "/v1/threads/{thread_id}/runs", "/v1/vector_stores/{store_id}/search"):
        assert path in typed, path


def test_operations_document_errors_with_the_envelope_and_never_422(tmp_path):
    spec = _spec(tmp_path)
    assert "ErrorEnvelope" in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert "422" not in op["responses"], (method, path)
            if path == "/health":
                continue
            for status in ("400", "401", "404"):
                ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorEnvelope"), (method, path, status)
