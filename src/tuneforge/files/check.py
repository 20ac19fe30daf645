"""``POST /v1/files/{id}/check`` — a tuneforge extension (OpenAI has no such endpoint).

Runs the data toolkit's checks on an uploaded training file and returns its JSON report, so people
see format problems, token counts and epoch/cost estimates before they start a job.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.errors import InvalidRequest
from tuneforge.files import service as files_service
from tuneforge.models import catalog

OPENAI_ENCODINGS = ("cl100k_base", "o200k_base")


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Count tokens with this model's tokenizer and check its "
                                                "context length (default: the server's default model)")
    tokenizer: str | None = Field(None, description="'cl100k_base' or 'o200k_base' for OpenAI-hosted jobs")
    method: Literal["supervised", "dpo", "auto"] = "auto"
    max_tokens: int | None = Field(None, ge=16, description="Per-example token limit (default: the context)")




def check_uploaded_file(state, project_id: str, file_id: str, request: CheckRequest) -> dict:
    from tuneforge.data import check_file
    from tuneforge.data.estimate import parse_params

    with state.db.session() as session:
        row = files_service.get_file(session, project_id, file_id)
        path = files_service.file_path(state.store, row)
        filename = row.filename
        if request.tokenizer:
            if request.tokenizer not in OPENAI_ENCODINGS:
                raise InvalidRequest(f"'tokenizer' must be one of {', '.join(OPENAI_ENCODINGS)}.", param="tokenizer")
            tokenizer_key, context = request.tokenizer, None
        else:
            served = catalog.resolve(session, state.registry, state.settings,
                                     request.model or state.settings.default_model, project_id)
            tokenizer_key, context = served.base_model, served.context_length

    cache = state.tokenizers
    if tokenizer_key in OPENAI_ENCODINGS:
        tokenizer: Any = tokenizer_key
    else:
        tokenizer = cache.get(tokenizer_key, lambda: state.registry.load_tokenizer(tokenizer_key))
    # Fine-tuning files are JSONL whatever they are called (as on OpenAI); blobs have no extension.
    # A size in the model's name ("135m") gives a local training-time estimate; unknown sizes give none.
    params = parse_params(tokenizer_key) if tokenizer_key not in OPENAI_ENCODINGS else None
    report = check_file(path, tokenizer=tokenizer, max_tokens=request.max_tokens or context,
                        method=request.method, assume_jsonl=True, params=params)
    body = report.relabel(filename).to_dict()
    body["tokenizer"] = tokenizer_key  # the model's name, not the folder it was loaded from
    body["object"] = "tuneforge.file_check"
    body["file_id"] = file_id
    body["filename"] = filename
    return body

