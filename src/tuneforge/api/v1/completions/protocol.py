"""Wire shapes of /v1/completions (the request model is the serving service's input)."""

from tuneforge.serving.requests import CompletionRequest

__all__ = ["CompletionRequest"]
