"""Bringing fine-tuning jobs home: recreate a provider's jobs (OpenAI or any OpenAI-compatible API) on a
tuneforge server, on an open base model.

Both sides are spoken to through the official ``openai`` SDK (two clients), so this works against OpenAI,
another tuneforge, or any compatible provider. For each provider job: its training and validation files
are downloaded (or read from a folder of local copies) and uploaded to tuneforge, and a job is created
there with the same method, mapped hyperparameters and suffix. The new job's metadata records where it
came from (``migrated_from_job``, ``migrated_from_model``), which is how a re-run recognises jobs that
are already home and skips them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.gateway.upstreams import parse_upstreams

SOURCE_JOB_KEY = "migrated_from_job"
SOURCE_MODEL_KEY = "migrated_from_model"
SOURCE_BASE_KEY = "migrated_from_base"
OUR_KEYS = (SOURCE_JOB_KEY, SOURCE_MODEL_KEY, SOURCE_BASE_KEY)
SUPPORTED_METHODS = ("supervised", "dpo")
HP_KEYS = ("n_epochs", "batch_size", "learning_rate_multiplier")
OPENAI_BASE_URL = "https://api.openai.com/v1"
# A local job in one of these states does not count as migrated: a re-run creates it again.
RETRY_STATUSES = ("failed", "cancelled")

Progress = Callable[[str, int, int | None], None]  # (label, bytes so far, total or None)


class MigrationError(Exception):
    """A problem with the request as a whole (no provider configured, both sides the same server, ...)."""


# -- where the jobs come from ----------------------------------------------------------------------
@dataclass(frozen=True)
class Provider:
    base_url: str
    api_key: str = field(repr=False)
    origin: str  # how it was chosen, for the user (never the key)


def resolve_provider(base_url: str | None = None, api_key: str | None = None, upstream: str | None = None, *,
                     upstreams_config: str | None = None, environ: dict[str, str] | None = None) -> Provider:
    """The provider to read jobs from, first match wins:

    1. ``base_url`` (``--provider-base-url``);
    2. the upstream named ``upstream`` in ``TUNEFORGE_UPSTREAMS`` (``--upstream NAME``);
    3. the upstream named ``openai`` in ``TUNEFORGE_UPSTREAMS``, when there is one: what the server already
       uses to reach OpenAI;
    4. ``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``) with ``OPENAI_API_KEY``.

    ``api_key`` (``--provider-api-key``) replaces the key in every case.
    """
    env = os.environ if environ is None else environ
    if base_url:
        return Provider(base_url, api_key or env.get("OPENAI_API_KEY", ""), "--provider-base-url")
    upstreams = parse_upstreams(upstreams_config if upstreams_config is not None else env.get("TUNEFORGE_UPSTREAMS"))
    if upstream:
        found = next((u for u in upstreams if u.name == upstream), None)
        if found is None:
            names = ", ".join(u.name for u in upstreams) or "none configured"
            raise MigrationError(f"No upstream named '{upstream}' in TUNEFORGE_UPSTREAMS ({names}).")
        return Provider(found.base_url, api_key or found.api_key, f"upstream '{found.name}' (TUNEFORGE_UPSTREAMS)")
    found = next((u for u in upstreams if u.name == "openai"), None)
    if found is not None:
        return Provider(found.base_url, api_key or found.api_key, "upstream 'openai' (TUNEFORGE_UPSTREAMS)")
    key = api_key or env.get("OPENAI_API_KEY", "")
    if not key:
        raise MigrationError("No provider key: set OPENAI_API_KEY, pass --provider-api-key, or configure an "
                             "upstream named 'openai' in TUNEFORGE_UPSTREAMS.")
    url = env.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
    return Provider(url, key, "OPENAI_BASE_URL" if env.get("OPENAI_BASE_URL") else "api.openai.com (default)")


def same_server(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


# -- what will happen to each job -----------------------------------------------------------------
@dataclass
class JobPlan:
    source_job: str
    source_status: str
    source_model: str | None  # the provider's ft: model
    source_base: str
    method: str
    hyperparameters: dict[str, Any]
    suffix: str | None
    seed: int | None
    training_file: str
    validation_file: str | None
    metadata: dict[str, str]
    action: str  # "create" (or "created" once done), "skip", "error"
    reason: str = ""
    local_job: str | None = None
    local_status: str | None = None
    local_model: str | None = None
    local_training_file: str | None = None
    local_validation_file: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)  # provider file id -> digest of the copied bytes
    comparison: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _plain(obj: Any) -> Any:
    return obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj


def map_hyperparameters(hp: dict[str, Any] | None, method: str, keep: bool = True) -> dict[str, Any]:
    """The provider's values, as they are ("auto" stays "auto"); ``keep=False`` leaves all to tuneforge."""
    if not keep:
        return {}
    keys = (*HP_KEYS, "beta") if method == "dpo" else HP_KEYS
    return {k: hp[k] for k in keys if (hp or {}).get(k) is not None}


def metadata_for(job: dict[str, Any]) -> dict[str, str]:
    """The job's own metadata (up to the 13 pairs that fit beside ours) plus where it came from."""
    own = {k: str(v) for k, v in (job.get("metadata") or {}).items() if k not in OUR_KEYS}
    out = dict(list(own.items())[:16 - len(OUR_KEYS)])
    out[SOURCE_JOB_KEY] = job["id"]
    out[SOURCE_BASE_KEY] = str(job.get("model") or "")[:512]
    if job.get("fine_tuned_model"):
        out[SOURCE_MODEL_KEY] = str(job["fine_tuned_model"])[:512]
    return out


def plan_job(job: dict[str, Any], *, existing: dict[str, dict[str, Any]] | None = None,
             keep_hyperparameters: bool = True) -> JobPlan:
    """Decide what to do with one provider job (a plain dict of the job object)."""
    method_obj = job.get("method") or {}
    method = method_obj.get("type") or "supervised"  # jobs from before `method` only have `hyperparameters`
    hp = (method_obj.get(method) or {}).get("hyperparameters") or job.get("hyperparameters") or {}
    plan = JobPlan(source_job=job["id"], source_status=job.get("status", ""), source_model=job.get("fine_tuned_model"),
                   source_base=str(job.get("model") or ""), method=method,
                   hyperparameters=map_hyperparameters(hp, method, keep_hyperparameters),
                   suffix=job.get("user_provided_suffix"), seed=job.get("seed"),
                   training_file=job.get("training_file") or "", validation_file=job.get("validation_file"),
                   metadata=metadata_for(job), action="create")
    done = (existing or {}).get(job["id"])
    if method not in SUPPORTED_METHODS:
        plan.action, plan.reason = "skip", (f"method '{method}' is not supported by tuneforge "
                                            f"(only {' and '.join(SUPPORTED_METHODS)})")
    elif not plan.training_file:
        plan.action, plan.reason = "skip", "the job has no training file"
    elif done is not None:
        plan.action, plan.reason = "skip", f"already migrated as {done['id']} ({done.get('status')})"
        plan.local_job, plan.local_status = done["id"], done.get("status")
        plan.local_model = done.get("fine_tuned_model")
    return plan


def source_jobs(provider, job_ids: Iterable[str] | None = None, *, statuses: tuple[str, ...] | None = ("succeeded",),
                page_size: int = 100) -> list[dict[str, Any]]:
    """The provider's jobs, oldest first: the named ones, or every page of the list filtered by status
    (``statuses=None`` keeps all)."""
    if job_ids:
        return [_plain(provider.fine_tuning.jobs.retrieve(i)) for i in job_ids]
    jobs = [_plain(j) for j in provider.fine_tuning.jobs.list(limit=page_size)]  # the SDK follows `after`
    jobs = [j for j in jobs if statuses is None or j.get("status") in statuses]
    return sorted(jobs, key=lambda j: (j.get("created_at") or 0, j["id"]))


def migrated_jobs(local, page_size: int = 100) -> dict[str, dict[str, Any]]:
    """Local jobs made by earlier runs, by the provider job they came from (a finished-or-live one wins
    over a failed or cancelled one, which a re-run replaces)."""
    out: dict[str, dict[str, Any]] = {}
    for job in local.fine_tuning.jobs.list(limit=page_size):
        job = _plain(job)
        source = (job.get("metadata") or {}).get(SOURCE_JOB_KEY)
        if source and job.get("status") not in RETRY_STATUSES:
            out.setdefault(source, job)
    return out


# -- doing it -------------------------------------------------------------------------------------
class FileCopier:
    """Copies provider files to the local server once each (two jobs often share a training file)."""

    def __init__(self, provider, local, *, files_dir: Path | None = None, progress: Progress | None = None,
                 keep: bool = False):
        self.provider, self.local, self.files_dir, self.progress = provider, local, files_dir, progress
        self.copied: dict[str, tuple[str, str]] = {}  # provider id -> (local id, sha256)
        self.kept: dict[str, bytes] = {}  # provider id -> bytes, when ``keep`` (for --compare)
        self.keep = keep

    def _local_copy(self, file_id: str, filename: str) -> Path | None:
        if self.files_dir is None:
            return None
        for name in (filename, file_id, f"{file_id}.jsonl"):
            path = self.files_dir / Path(name).name
            if name and path.is_file():
                return path
        return None

    def copy(self, file_id: str) -> tuple[str, str]:
        """(local file id, sha256 of the bytes) for the provider's ``file_id``."""
        if file_id not in self.copied:
            with tempfile.SpooledTemporaryFile(max_size=64 << 20) as buf:
                filename, digest = self._fetch(file_id, buf)
                buf.seek(0)
                if self.keep:
                    self.kept[file_id] = buf.read()
                    buf.seek(0)
                uploaded = self.local.files.create(file=(filename, buf), purpose="fine-tune")  # streamed
            self.copied[file_id] = (uploaded.id, digest)
        return self.copied[file_id]

    def _fetch(self, file_id: str, buf) -> tuple[str, str]:
        """Write the file's bytes into ``buf`` (from ``files_dir`` or downloaded); its name and digest."""
        import openai

        digest = hashlib.sha256()
        try:
            info = _plain(self.provider.files.retrieve(file_id))
            filename = Path(info.get("filename") or f"{file_id}.jsonl").name
            path = self._local_copy(file_id, filename)
            if path is not None:
                with path.open("rb") as fh:
                    while chunk := fh.read(1 << 20):
                        buf.write(chunk)
                        digest.update(chunk)
                return filename, digest.hexdigest()
            done, total = 0, info.get("bytes")
            with self.provider.files.with_streaming_response.content(file_id) as response:
                for chunk in response.iter_bytes(1 << 16):
                    buf.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if self.progress:
                        self.progress(filename, done, total)
        except openai.APIStatusError as exc:
            hint = "" if self.files_dir else (" If the provider does not let you download it, save it from its "
                                              "dashboard into a folder and pass --files-dir.")
            raise MigrationError(f"the provider refused file {file_id} ({_api_message(exc)}).{hint}") from None
        return filename, digest.hexdigest()


def create_local_job(plan: JobPlan, local, copier: FileCopier, base_model: str) -> JobPlan:
    """Copy the plan's files and create its job on ``local``; errors end up in the plan, not raised."""
    import openai

    try:
        plan.local_training_file, plan.sha256[plan.training_file] = copier.copy(plan.training_file)
        if plan.validation_file:
            plan.local_validation_file, plan.sha256[plan.validation_file] = copier.copy(plan.validation_file)
        body: dict[str, Any] = {"model": base_model, "training_file": plan.local_training_file,
                                "method": {"type": plan.method, plan.method: {"hyperparameters": plan.hyperparameters}},
                                "metadata": plan.metadata}
        for key, value in (("validation_file", plan.local_validation_file), ("suffix", plan.suffix),
                           ("seed", plan.seed)):
            if value is not None:
                body[key] = value
        job = _plain(local.fine_tuning.jobs.create(**body))
    except openai.APIStatusError as exc:
        plan.action, plan.reason = "error", _api_message(exc)
        return plan
    except openai.APIConnectionError as exc:
        plan.action, plan.reason = "error", f"connection failed: {exc.__cause__ or exc}"
        return plan
    except MigrationError as exc:
        plan.action, plan.reason = "error", str(exc)
        return plan
    plan.action, plan.local_job, plan.local_status = "created", job["id"], job["status"]
    return plan


def _api_message(exc) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    return f"{exc.status_code}: {message or exc.message}"


def wait_for_jobs(local, plans: list[JobPlan], *, poll_s: float = 2.0, timeout_s: float | None = None,
                  on_update: Callable[[JobPlan], None] | None = None) -> None:
    """Poll the created local jobs until each ends, updating ``local_status``/``local_model``."""
    import time

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    live = [p for p in plans if p.local_job and p.local_status not in ("succeeded", *RETRY_STATUSES)]
    while live:
        for plan in live:
            job = _plain(local.fine_tuning.jobs.retrieve(plan.local_job))
            changed = job["status"] != plan.local_status
            plan.local_status, plan.local_model = job["status"], job.get("fine_tuned_model")
            if changed and on_update:
                on_update(plan)
        live = [p for p in live if p.local_status not in ("succeeded", *RETRY_STATUSES)]
        if live and deadline is not None and time.monotonic() > deadline:
            return
        if live:
            time.sleep(poll_s)
