"""The ``file_search`` tool of responses on the project's hybrid (vector + keyword) retrieval, and the
``file_citation`` annotations of the answer.

Citations never change the text the client already streamed: an annotation points at a character
index. A marker the model wrote ([1], 【1】, [1†name]) is cited where it stands; a model that cites
nothing (small models rarely follow the rule) gets one annotation at the end of its answer for the
source whose words the answer shares most (the top-ranked one when it shares none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tuneforge.errors import InvalidRequest
from tuneforge.ids import new_id
from tuneforge.retrieval import filters as filters_mod
from tuneforge.retrieval.keyword import tokenize
from tuneforge.retrieval.search import Result, search_stores

CITE_RULE = ("Answer the user's question using the numbered sources below. Cite the source you used with its "
             "number in square brackets, like [1]. If the sources do not contain the answer, say so.")
SOURCE_CHARS = 1500  # per source in the prompt; the retrieval chunks are smaller than this already
_MARKER = re.compile(r"【(\d{1,2})(?:[:†][^】]*)?】|\[(\d{1,2})(?:†[^\]]*)?\]")


@dataclass
class Search:
    item: dict  # the file_search_call output item (results included only when asked)
    results: list[Result]


def run(session: Session, project_id: str, index: int, tool: dict, query: str, *, include_results: bool) -> Search:
    flt = tool.get("filters")
    if flt is not None:
        flt = filters_mod.validate(flt, param=f"tools[{index}].filters")
    ranking = tool.get("ranking_options") or {}
    threshold = ranking.get("score_threshold", 0.0)
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise InvalidRequest("'score_threshold' must be a number between 0 and 1.",
                             param=f"tools[{index}].ranking_options.score_threshold")
    results: list[Result] = []
    if query.strip():
        results = search_stores(session, project_id, tool["vector_store_ids"], [query],
                                limit=tool.get("max_num_results", 10), flt=flt, score_threshold=float(threshold))
    wire = [{"file_id": r.file_id, "filename": r.filename, "score": round(r.score, 6), "text": r.text,
             "attributes": r.attributes or {}} for r in results]
    item = {"id": new_id("fs_"), "type": "file_search_call", "status": "completed",
            "queries": [query] if query.strip() else [], "results": wire if include_results else None}
    return Search(item, results)


def sources_block(results: list[Result]) -> str:
    """The system-prompt part that shows the numbered sources."""
    entries = [f"[{i + 1}] ({r.filename})\n{r.text[:SOURCE_CHARS]}" for i, r in enumerate(results)]
    return CITE_RULE + "\n\nSources:\n\n" + "\n\n".join(entries)


def annotations(text: str, results: list[Result]) -> list[dict]:
    if not results:
        return []

    def cite(index: int, n: int) -> dict:
        r = results[n]
        return {"type": "file_citation", "file_id": r.file_id, "filename": r.filename, "index": index}

    found = []
    for m in _MARKER.finditer(text):
        n = int(m.group(1) or m.group(2))
        if 1 <= n <= len(results):
            found.append(cite(m.end(), n - 1))
    if found:
        return found
    answer = set(tokenize(text))
    best, best_overlap = 0, 0.0
    for i, r in enumerate(results):
        overlap = len(answer & set(tokenize(r.text))) / (len(answer) or 1)
        if overlap > best_overlap + 1e-9:
            best, best_overlap = i, overlap
    return [cite(len(text), best)]
