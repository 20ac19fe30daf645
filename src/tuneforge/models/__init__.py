"""The model catalog: base models the server knows (registry) and what a model id resolves to (catalog)."""
