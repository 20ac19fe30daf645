"""The training configuration: one dataclass, resolved from a job's request, saved with every adapter.

``"auto"`` hyperparameters are resolved here, from the dataset size, and the reasons are below so
the numbers can be argued with:

* ``n_epochs``: OpenAI's published rule (target ~3 passes; at least 100 example-visits for tiny
  sets, at most 25,000 for huge ones) via the data toolkit's ``default_epochs``.
* ``batch_size``: LoRA needs *optimizer steps* more than large batches to move its small matrices
  (a few hundred steps is typical), while a CPU wants enough tokens per step to keep its matmuls
  efficient. We aim for ~64 steps per epoch: ``n_examples / 64`` rounded to a power of two, at
  least 2 and at most 32 — 100 chats train with batch 2 (50 steps/epoch), 2,000 with 32.
* ``learning_rate_multiplier``: multiplies ``BASE_LEARNING_RATE`` = 2e-4, the usual LoRA rate
  (≈10x a full fine-tune's, since LoRA's B matrix starts at zero and the update is scaled by
  alpha/r). Adam with bigger batches tolerates a larger rate; we scale by sqrt(batch/8), within
  [1, 2] — the square-root rule, kept conservative.
  Small supervised sets get a boost on top: x sqrt(1000 / n_examples), between 1 and 5 (so 1e-3 at
  most). Measured (benchmarks/RESULTS.md, "Defaults that teach"): 96 support answers trained for 36
  steps (batch 8) at 2e-4 lowered the validation loss yet never wrote the trained sign-off on unseen
  questions, at 1e-3 always; at the auto batch 2 (144 steps), 6.5e-4 wrote it in 100 % of answers
  sampled at temperature 1.0 (2e-4: 94 %). A small set gives few distinct steps' worth of signal, so
  each step must move the adapter further; sets of 1,000 examples or more keep the rate above
  unchanged (they teach by volume, and a higher rate would only risk forgetting).
* DPO ``beta``: 0.1, the value of the DPO paper and of TRL.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

BASE_LEARNING_RATE = 2e-4
DPO_BASE_LEARNING_RATE = 5e-5  # DPO moves a model that already answers well; a gentler rate
DEFAULT_BETA = 0.1
MAX_BATCH_SIZE = 256
MAX_EPOCHS = 50
SMALL_SET_EXAMPLES = 1000  # supervised sets this large or larger get no small-set boost
MAX_SMALL_SET_BOOST = 5.0  # 5 x 2e-4 = 1e-3, the highest rate measured to train SmolLM2 stably


def auto_epochs(n_examples: int) -> int:
    from tuneforge.data import default_epochs

    return default_epochs(n_examples)


def auto_batch_size(n_examples: int) -> int:
    target = max(1.0, n_examples / 64)
    return int(min(32, max(2, 2 ** round(math.log2(target)))))


def small_set_boost(n_examples: int) -> float:
    """x sqrt(1000 / n) within [1, 5]: 1 from 1,000 examples up, 3.2 for 96, 5 below 40."""
    if n_examples <= 0 or n_examples >= SMALL_SET_EXAMPLES:
        return 1.0
    return min(MAX_SMALL_SET_BOOST, math.sqrt(SMALL_SET_EXAMPLES / n_examples))


def auto_lr_multiplier(batch_size: int, n_examples: int = 0, method: str = "supervised") -> float:
    batch_rule = min(2.0, max(1.0, math.sqrt(batch_size / 8)))
    # DPO starts from a model that already answers well (and its own gentler base rate): no boost.
    boost = small_set_boost(n_examples) if method == "supervised" else 1.0
    return round(batch_rule * boost, 4)


@dataclass
class TrainingConfig:
    """Everything that determines a training run. Saved as ``tuneforge_training.json``."""

    job_id: str
    method: str  # "supervised" | "dpo"
    base_model: str
    model_path: str  # what from_pretrained loads
    parent_adapter: str | None  # continue training from this adapter folder
    seed: int
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float
    beta: float | None
    max_seq_len: int
    n_train_examples: int
    n_valid_examples: int
    lora_r: int = 16
    lora_alpha: int = 32
    # 0: peft then skips a dropout copy of every LoRA input (~10 % of a CPU step, measured);
    # with a handful of epochs on small data, LoRA's low rank is regularisation enough.
    lora_dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"
    modules_to_save: list[str] | None = None  # e.g. norm layers for random tiny models
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    dtype: str = "float32"  # storage of the base weights; the matmuls follow ``precision``
    # "auto": bf16 autocast where the CPU (AVX512-BF16/AMX) or GPU runs it natively, else fp32.
    precision: str = "auto"
    threads: int | None = None
    chat_template: str | None = None
    end_of_turn_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def hyperparameters(self) -> dict:
        hp: dict[str, Any] = {"n_epochs": self.n_epochs, "batch_size": self.batch_size,
                              "learning_rate_multiplier": self.learning_rate_multiplier}
        if self.method == "dpo":
            hp["beta"] = self.beta
        return hp

    def to_json(self) -> str:
        data = asdict(self)
        data["format"] = "tuneforge.training/1"
        return json.dumps(data, indent=2, ensure_ascii=False)


def resolve_hyperparameters(requested: dict, method: str, n_examples: int) -> dict:
    """Turn a request's values (numbers or ``"auto"``) into numbers, following the module notes."""
    def pick(name: str, auto):
        value = requested.get(name, "auto")
        return auto() if value in (None, "auto") else value

    n_epochs = int(pick("n_epochs", lambda: auto_epochs(n_examples)))
    batch_size = int(pick("batch_size", lambda: auto_batch_size(n_examples)))
    # A batch larger than the data set would only repeat examples within a step.
    batch_size = max(1, min(batch_size, n_examples)) if n_examples else batch_size
    lr_mult = float(pick("learning_rate_multiplier", lambda: auto_lr_multiplier(batch_size, n_examples, method)))
    out: dict[str, Any] = {"n_epochs": n_epochs, "batch_size": batch_size, "learning_rate_multiplier": lr_mult}
    if method == "dpo":
        out["beta"] = float(pick("beta", lambda: DEFAULT_BETA))
    return out


def base_learning_rate(method: str) -> float:
    return DPO_BASE_LEARNING_RATE if method == "dpo" else BASE_LEARNING_RATE
