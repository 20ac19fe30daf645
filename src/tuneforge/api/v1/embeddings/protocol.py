"""Wire shapes of /v1/embeddings (the request model is the serving service's input)."""

from tuneforge.serving.requests import EmbeddingRequest

__all__ = ["EmbeddingRequest"]
