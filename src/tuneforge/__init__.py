"""tuneforge: train your own ChatGPT, self-hosted, behind OpenAI's HTTP API."""

__version__ = "0.1.0"
