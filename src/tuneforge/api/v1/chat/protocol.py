"""Wire shapes of /v1/chat/completions (the request model is the serving service's input)."""

from tuneforge.serving.requests import UNSUPPORTED, ChatCompletionRequest

__all__ = ["UNSUPPORTED", "ChatCompletionRequest"]
