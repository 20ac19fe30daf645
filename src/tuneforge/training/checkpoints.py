"""Adapter folders on disk: checkpoints, the pause state and the final model.

Layout under ``<data_dir>/adapters/<job_id>/``::

    ckpt-step-<N>/   servable adapter (+ trainer_state.pt to resume from it)
    paused/          the same, written when a job is paused or its worker shuts down mid-epoch
    final/           the final model (no trainer state)

Each servable folder holds ``adapter_config.json`` + ``adapter_model.safetensors`` (PEFT),
``chat_template.jinja`` (the template training rendered with, so serving renders prompts the
same way) and ``tuneforge_training.json`` (the resolved config). Folders are written to a temp
name and renamed, so a process killed mid-write never leaves a half checkpoint behind.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tuneforge.training.config import TrainingConfig

STATE_FILE = "trainer_state.pt"
_CKPT = re.compile(r"^ckpt-step-(\d+)$")


def job_dir(data_dir: Path, job_id: str) -> Path:
    return data_dir / "adapters" / job_id


def write_adapter(model, folder: Path, cfg: TrainingConfig, state: dict | None = None) -> Path:
    import torch

    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if cfg.chat_template:
        (tmp / "chat_template.jinja").write_text(cfg.chat_template, encoding="utf-8")
    (tmp / "tuneforge_training.json").write_text(cfg.to_json(), encoding="utf-8")
    if state is not None:
        torch.save(state, tmp / STATE_FILE)
    if folder.exists():
        old = folder.with_name(folder.name + f".old-{os.getpid()}")
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return folder


def copy_servable(src: Path, dst: Path) -> Path:
    """A copy of an adapter folder without its trainer state (the final model)."""
    tmp = dst.with_name(dst.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(STATE_FILE))
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return dst


@dataclass
class ResumePoint:
    folder: Path
    step: int
    is_checkpoint: bool


def checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _CKPT.match(p.name)
        if m and (p / "adapter_config.json").is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_resume_point(root: Path) -> ResumePoint | None:
    """The most advanced saved state: the pause state or the last epoch checkpoint."""
    import torch

    best: ResumePoint | None = None
    for step, folder in checkpoint_dirs(root):
        if (folder / STATE_FILE).is_file():
            best = ResumePoint(folder, step, True)
    paused = root / "paused"
    if (paused / STATE_FILE).is_file():
        step = int(torch.load(paused / STATE_FILE, weights_only=False)["step"])
        if best is None or step > best.step:
            best = ResumePoint(paused, step, False)
    return best


def prune_checkpoints(root: Path, keep_steps: set[int]) -> list[int]:
    """Delete checkpoint folders not in ``keep_steps``; returns the steps removed."""
    removed = []
    for step, folder in checkpoint_dirs(root):
        if step not in keep_steps:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(step)
    return removed
