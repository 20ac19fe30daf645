"""Serving: chat completions, legacy completions, embeddings and the model list, on the local engine."""
