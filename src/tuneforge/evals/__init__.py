"""Evals, graders and batches: OpenAI's graders (run alone or as an eval's testing criteria), the
``/v1/evals`` resource with durable runs, and the Batch API, sharing one offline runner."""
