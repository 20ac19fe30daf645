"""Retrieval benchmark: keyword-only vs vector-only vs hybrid on a bilingual document set.

    .venv/bin/python benchmarks/retrieval/run.py [--json]

Ingests ``docs/`` (English and Chinese manuals, policies and FAQs written for this project) into
two vector stores — OpenAI's ``auto`` chunking (800/400 tokens) and a finer ``static`` 200/50 —
through the same services the API uses, then asks every question in ``questions.jsonl``. A
result is a hit when it comes from the right file and its chunk contains the question's evidence
passage verbatim. Prints recall@1/@5, MRR@10 per mode and language, ingestion throughput
(chunks/s, embeddings included) and hybrid query latency (p50/p95, query embedding included),
then ``name: ratio`` lines comparing hybrid with each single retriever measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
MODES = ("keyword", "vector", "hybrid")
CONFIGS = {"auto (800/400)": {"type": "auto"},
           "static 200/50": {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}}}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from sqlalchemy import func, select

    from tuneforge.db.models import VectorStoreChunkRow
    from tuneforge.db.session import Database
    from tuneforge.files import service as files_service
    from tuneforge.projects import get_or_create_project
    from tuneforge.retrieval import embeddings
    from tuneforge.retrieval import stores as vs_service
    from tuneforge.retrieval.ingest import Ingestor
    from tuneforge.retrieval.search import search_stores
    from tuneforge.storage import LocalBlobStore

    questions = [json.loads(line) for line in (HERE / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-"))
    db = Database(f"sqlite:///{tmp / 'bench.db'}")
    db.migrate()
    blobs = LocalBlobStore(tmp / "blobs")
    embeddings.embed_query("warm-up")  # load the model outside the timings
    from tuneforge.retrieval.keyword import tokenize

    tokenize("预热 warm-up")
    from tuneforge.retrieval.chunking import count_tokens

    count_tokens("warm-up")  # builds the cl100k tables once
    with db.session() as session:
        project = get_or_create_project(session, "bench").id
        files = {}
        for path in sorted((HERE / "docs").iterdir()):
            row = files_service.create_file_from_bytes(session, blobs, project_id=project, data=path.read_bytes(),
                                                       filename=path.name, purpose="assistants")
            files[row.id] = path.name
    report: dict = {"questions": len(questions), "chinese": sum(q["lang"] == "zh" for q in questions),
                    "documents": len(files), "configs": {}}
    ingestor = Ingestor(db, blobs)
    for label, strategy in CONFIGS.items():
        started = time.perf_counter()
        with db.session() as session:
            store = vs_service.create_store(session, ingestor, project,
                                            {"name": label, "file_ids": list(files), "chunking_strategy": strategy})
        ingestor.wait_idle()
        ingest_s = time.perf_counter() - started
        with db.session() as session:
            n_chunks, n_tokens = session.execute(
                select(func.count(), func.sum(VectorStoreChunkRow.tokens))
                .where(VectorStoreChunkRow.vector_store_id == store["id"])).one()
            status = vs_service.retrieve_store(session, project, store["id"])
        assert status["file_counts"]["completed"] == len(files), status
        figures: dict = {"chunks": n_chunks, "ingest_s": round(ingest_s, 2),
                         "chunks_per_s": round(n_chunks / ingest_s, 1),
                         "tokens_per_s": round(n_tokens / ingest_s), "modes": {}}
        for mode in MODES:
            ranks, latencies = [], []
            for q in questions:
                with db.session() as session:
                    t0 = time.perf_counter()
                    results = search_stores(session, project, [store["id"]], [q["question"]], limit=10, mode=mode)
                    latencies.append((time.perf_counter() - t0) * 1000)
                rank = next((i + 1 for i, r in enumerate(results)
                             if r.filename == q["file"] and _norm(q["evidence"]) in _norm(r.text)), None)
                ranks.append(rank)
            figures["modes"][mode] = _scores(questions, ranks)
            lat = sorted(latencies)
            figures["modes"][mode]["latency_ms_p50"] = round(statistics.median(lat), 1)
            figures["modes"][mode]["latency_ms_p95"] = round(lat[int(0.95 * (len(lat) - 1))], 1)
            figures["modes"][mode]["misses_at_5"] = [q["id"] for q, r in zip(questions, ranks, strict=True)
                                                     if r is None or r > 5]
        report["configs"][label] = figures
    ingestor.close()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        _print(report)
    return 0


def _scores(questions, ranks) -> dict:
    out = {}
    for lang in ("all", "en", "zh"):
        pick = [r for q, r in zip(questions, ranks, strict=True) if lang == "all" or q["lang"] == lang]
        out[lang] = {"recall@1": round(sum(1 for r in pick if r == 1) / len(pick), 3),
                     "recall@5": round(sum(1 for r in pick if r and r <= 5) / len(pick), 3),
                     "mrr@10": round(sum(1 / r for r in pick if r) / len(pick), 3)}
    return out


def _print(report: dict) -> None:
    print(f"{report['questions']} questions ({report['chinese']} Chinese), {report['documents']} documents")
    for label, fig in report["configs"].items():
        print(f"\n## chunking {label}: {fig['chunks']} chunks, ingested in {fig['ingest_s']} s "
              f"= {fig['chunks_per_s']} chunks/s ({fig['tokens_per_s']} tokens/s)")
        print("| mode | recall@1 | recall@5 | MRR@10 | recall@5 en | recall@5 zh | p50 ms | p95 ms |")
        print("|---|---|---|---|---|---|---|---|")
        for mode, m in fig["modes"].items():
            print(f"| {mode} | {m['all']['recall@1']} | {m['all']['recall@5']} | {m['all']['mrr@10']} | "
                  f"{m['en']['recall@5']} | {m['zh']['recall@5']} | {m['latency_ms_p50']} | {m['latency_ms_p95']} |")
        for mode in ("keyword", "vector"):
            print(f"misses@5 {mode}: {fig['modes'][mode]['misses_at_5']}")
        print(f"misses@5 hybrid: {fig['modes']['hybrid']['misses_at_5']}")
        h = fig["modes"]["hybrid"]["all"]
        for base in ("keyword", "vector"):
            b = fig["modes"][base]["all"]
            print(f"hybrid_vs_{base}_recall@5: {h['recall@5'] / b['recall@5']:.3f}")
            print(f"hybrid_vs_{base}_mrr: {h['mrr@10'] / b['mrr@10']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
