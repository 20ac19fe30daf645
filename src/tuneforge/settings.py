"""The one settings object. Every knob has an env var with the ``TUNEFORGE_`` prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
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
    log_level: str = "INFO"
    log_format: str = Field(default="text", description="'text' or 'json'")

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

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
