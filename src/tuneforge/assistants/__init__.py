"""Assistants that answer from documents: OpenAI Assistants v2 objects, the run executor,
prompt building (history summaries, retrieved chunks within a budget), citations and masks.

No FastAPI here; routers in ``tuneforge.api.v1.{assistants,threads,masks}`` translate HTTP only.
"""
