"""The Responses and Conversations APIs (``/v1/responses``, ``/v1/conversations``): OpenAI's successor of
Assistants, served on the same engine as chat completions, with durable per-project storage."""
