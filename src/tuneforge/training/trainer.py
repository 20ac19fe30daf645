"""The LoRA training loop (SFT and DPO), our own rather than TRL's, for four reasons:

* the loss mask comes from ``training.data`` (offsets, end-of-turn included) — no template markers;
* no gradient checkpointing (TRL turns it on by default: -23..34 % speed on CPU) and no padding
  waste: batches are length-grouped and split into micro-batches by a token budget;
* the LM head runs only on positions that carry a label: on chat data half the tokens are prompt,
  and SmolLM2's 49k-word head is ~20 % of its FLOPs;
* DPO's reference log-probs are computed once, before the first step, with the starting weights
  (adapter-free base, or the parent adapter when continuing), instead of a second model per step.

Everything that decides the outcome is seeded: LoRA init, the per-epoch batch order
(``epoch_batches``) and dropout (the torch RNG state is saved in every resume state), so the same
seed and data give the same loss curve, and a resumed job replays its lost steps identically.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tuneforge.training import checkpoints as ck
from tuneforge.training.config import TrainingConfig
from tuneforge.training.data import (
    IGNORE,
    ChatFormat,
    Encoded,
    PreferencePair,
    collate,
    epoch_batches,
    micro_batches,
    prepare_dpo,
    prepare_sft,
    steps_per_epoch,
)
from tuneforge.training.flops import FlopCounter, peak_flops
from tuneforge.training.precision import autocast, peak_dtype, resolve_precision

if TYPE_CHECKING:
    from tuneforge.training.distributed import Ranks

log = logging.getLogger("tuneforge.training")


class Reporter(Protocol):
    def event(self, message: str, *, level: str = "info", data: dict | None = None, type: str = "message",
              key: str | None = None) -> None: ...

    def metrics(self, step: int, total_steps: int, data: dict, message: str) -> None: ...

    def checkpoint(self, step: int, epoch: int, folder: Path, metrics: dict) -> None: ...

    def stop_requested(self) -> bool: ...


@dataclass
class TrainResult:
    status: str  # "completed" | "stopped" (paused / shutting down; state saved)
    step: int
    total_steps: int
    trained_tokens: int
    last_checkpoint: Path | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def norm_module_names(model) -> list[str]:
    """Leaf names of normalisation layers (trained too on random tiny models, where LoRA alone plateaus)."""
    return sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
                   if name and "norm" in type(mod).__name__.lower()})


def load_model(cfg: TrainingConfig, tokenizer_source: str):
    """Base model + LoRA (fresh, or the parent adapter made trainable), and the tokenizer."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    base = AutoModelForCausalLM.from_pretrained(cfg.model_path, dtype=getattr(torch, cfg.dtype))
    base.config.use_cache = False
    torch.manual_seed(cfg.seed)  # LoRA's A matrices start random: seed them
    if cfg.parent_adapter:
        model = PeftModel.from_pretrained(base, cfg.parent_adapter, is_trainable=True)
    else:
        if cfg.extra.get("train_norms"):
            cfg.modules_to_save = norm_module_names(base) or None
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=cfg.target_modules, modules_to_save=cfg.modules_to_save,
                          bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(base, lora)
    return model, tokenizer


class Trainer:
    def __init__(self, cfg: TrainingConfig, model, fmt: ChatFormat, train_examples: list[dict],
                 valid_examples: list[dict], reporter: Reporter, out_root: Path, *, cache_dir: Path,
                 micro_batch_tokens: int = 4096, eval_every: int | None = None, ranks: Ranks | None = None):
        """``ranks``: data-parallel training over several processes (``training.distributed``); None: alone."""
        import torch

        self.torch = torch
        # Adam's second moments of LoRA weights drift into denormal floats, which x86 handles in
        # microcode: measured here, steps slowed 10x after ~20 steps without this.
        torch.set_flush_denormal(True)
        self.cfg, self.model, self.fmt, self.reporter = cfg, model, fmt, reporter
        self.out_root, self.cache_dir = out_root, cache_dir
        self.micro_tokens = micro_batch_tokens
        self.ranks = ranks
        self.main = ranks is None or ranks.is_main  # the rank that evaluates and writes
        self.precision = resolve_precision(cfg.precision, str(next(model.parameters()).device))
        self.dpo = cfg.method == "dpo"
        tok = fmt.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        if self.dpo:
            self.train_pairs, prepared = prepare_dpo(fmt, train_examples, cfg.max_seq_len)
            self.valid_pairs, vprep = (prepare_dpo(fmt, valid_examples, cfg.max_seq_len, label="validation")
                                       if valid_examples else ([], None))
            self.lengths = [len(p.chosen.input_ids) + len(p.rejected.input_ids) for p in self.train_pairs]
        else:
            prepared = prepare_sft(fmt, train_examples, cfg.max_seq_len)
            vprep = prepare_sft(fmt, valid_examples, cfg.max_seq_len, label="validation") if valid_examples else None
            self.train_set, self.valid_set = prepared.examples, (vprep.examples if vprep else [])
            self.lengths = [len(e.input_ids) for e in self.train_set]
        self.prepared, self.valid_prepared = prepared, vprep
        self.n_train = len(self.lengths)
        self.steps_per_epoch = steps_per_epoch(self.n_train, cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.n_epochs
        n_valid = len(self.valid_pairs if self.dpo else self.valid_set)
        self.eval_every = eval_every or max(1, self.steps_per_epoch // 4)
        self.n_valid = n_valid
        causal = model.get_base_model()
        self.causal = causal
        self.backbone = getattr(causal, causal.base_model_prefix, None)
        self.head = causal.get_output_embeddings()
        # Models that post-process logits (soft-capping, scaling) take the plain forward path.
        cfgm = causal.config
        self.fast_head = (self.backbone is not None and self.head is not None
                          and not getattr(cfgm, "final_logit_softcapping", None)
                          and not getattr(cfgm, "logit_scale", None))
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        warmup = max(1, round(cfg.warmup_ratio * self.total_steps))
        total = self.total_steps

        def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total - step) / max(1, total - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.flops = FlopCounter(model)
        if ranks is not None:  # what this rank trains: per (epoch, example), and totals
            self.seen = torch.zeros(cfg.n_epochs, self.n_train, dtype=torch.int32)
            self.rank_examples = self.rank_tokens = 0
        self.ref: dict[str, Any] = {}

    # -- forward passes --------------------------------------------------------------------------
    def _forward(self, encs: list[Encoded]):
        """(per-token log-likelihood of labelled tokens, their row index, #correct)."""
        torch = self.torch
        ids, labels, mask = collate(encs, self.pad_id)
        y = labels[:, 1:]
        sel = y != IGNORE
        # No padding → no mask: SDPA then takes its causal (flash) kernel instead of the math path,
        # which stores batch x heads x L² attention weights per layer for the backward pass.
        attn = None if bool(mask.all()) else mask
        with autocast(self.precision):  # bf16 matmuls where native; the loss below stays fp32
            if self.fast_head:
                hidden = self.backbone(input_ids=ids, attention_mask=attn, use_cache=False).last_hidden_state
                logits = self.head(hidden[:, :-1][sel])
            else:
                logits = self.causal(input_ids=ids, attention_mask=attn, use_cache=False).logits[:, :-1][sel]
        logits = logits.float()
        target = y[sel]
        token_ll = -torch.nn.functional.cross_entropy(logits, target, reduction="none")
        correct = int((logits.detach().argmax(-1) == target).sum())
        rows = sel.nonzero()[:, 0]
        tokens = int(mask.sum())
        sum_sq = sum(len(e.input_ids) ** 2 for e in encs)
        return token_ll, rows, correct, len(encs), tokens, sum_sq, int(sel.sum())

    def _seq_logps(self, encs: list[Encoded], *, grad: bool):
        torch = self.torch
        token_ll, rows, correct, n, tokens, sum_sq, lab = self._forward(encs)
        self.flops.add_step(tokens, sum_sq, lab, forward_only=not grad)
        return torch.zeros(n).index_add(0, rows, token_ll), correct, lab, tokens

    # -- SFT ---------------------------------------------------------------------------------------
    @staticmethod
    def _n_labelled(encs: list[Encoded]) -> int:
        return max(1, sum(e.n_trained - (e.labels[0] != IGNORE) for e in encs))  # first token has no prediction

    def _sft_batch(self, encs: list[Encoded], *, train: bool, n_lab: int | None = None) -> tuple[float, float, int]:
        """``n_lab``: the whole batch's labelled tokens when ``encs`` is one rank's shard of it."""
        lengths = [len(e.input_ids) for e in encs]
        if n_lab is None:
            n_lab = self._n_labelled(encs)
        loss_sum = correct = tokens = 0
        for mb in micro_batches(list(range(len(encs))), lengths, self.micro_tokens):
            part = [encs[i] for i in mb]
            token_ll, _rows, c, _n, t, sum_sq, lab = self._forward(part)
            self.flops.add_step(t, sum_sq, lab, forward_only=not train)
            loss = -token_ll.sum()
            if train:
                (loss / n_lab).backward()
            loss_sum += float(loss.detach())
            correct += c
            tokens += t
        return loss_sum / n_lab, correct / n_lab, tokens

    # -- DPO ---------------------------------------------------------------------------------------
    def _ref_logps(self, pairs: list[PreferencePair]):
        torch = self.torch
        out = torch.zeros(len(pairs), 2)
        self.model.eval()
        with torch.no_grad():
            for k, s in enumerate(range(0, len(pairs), max(1, self.cfg.batch_size))):
                if self.ranks is not None and k % self.ranks.world_size != self.ranks.rank:
                    continue  # another rank's chunk: the sum below brings it here
                chunk = pairs[s:s + self.cfg.batch_size]
                lp, *_ = self._seq_logps([p.chosen for p in chunk] + [p.rejected for p in chunk], grad=False)
                out[s:s + len(chunk), 0] = lp[:len(chunk)]
                out[s:s + len(chunk), 1] = lp[len(chunk):]
        self.model.train()
        if self.ranks is not None:
            self.ranks.all_reduce_(out)
        return out

    def _dpo_batch(self, idx: list[int], pairs: list[PreferencePair], ref, *, train: bool, n: int | None = None):
        """``n``: the whole batch's pairs when ``idx`` is one rank's shard of it (possibly empty)."""
        torch = self.torch
        beta = float(self.cfg.beta or 0.1)
        n = n or len(idx)
        loss_total = 0.0
        wins = correct = labelled = tokens = 0
        margins = 0.0
        size = max(1, self.micro_tokens // max(1, max((self.lengths_of(pairs, i) for i in idx), default=1)))
        for s in range(0, len(idx), size):
            part = idx[s:s + size]
            encs = [pairs[i].chosen for i in part] + [pairs[i].rejected for i in part]
            lp, c, lab, t = self._seq_logps(encs, grad=train)
            pc, pr = lp[:len(part)], lp[len(part):]
            rc, rr = ref[part, 0], ref[part, 1]
            logits = beta * ((pc - rc) - (pr - rr))
            loss = -torch.nn.functional.logsigmoid(logits).sum() / n
            if train:
                loss.backward()
            loss_total += float(loss.detach())
            wins += int((logits.detach() > 0).sum())
            margins += float(logits.detach().sum()) / beta
            correct += c  # chosen and rejected tokens: the policy's token accuracy on both answers
            labelled += lab
            tokens += t
        self.last_dpo_counts = (correct, labelled)
        return loss_total, correct / max(1, labelled), tokens, wins / n, margins / n

    @staticmethod
    def lengths_of(pairs: list[PreferencePair], i: int) -> int:
        return max(len(pairs[i].chosen.input_ids), len(pairs[i].rejected.input_ids))

    # -- data parallelism (training.distributed) --------------------------------------------------------
    def _sharded_step(self, idx: list[int], epoch: int) -> tuple[float, float, int, dict]:
        """This rank's shard of batch ``idx``, its gradients summed with the other ranks': the whole batch's
        (loss, accuracy, tokens, extra metrics), the same on every rank."""
        ranks = self.ranks
        mine = ranks.shard(idx)
        if self.dpo:
            loss, _acc, tokens, wins, margin = self._dpo_batch(mine, self.train_pairs, self.ref["train"], train=True,
                                                               n=len(idx))
            mine_tokens = tokens
            loss, tokens, wins, margin, correct, labelled = ranks.sum([loss, tokens, wins, margin,
                                                                       *self.last_dpo_counts])
            acc = correct / max(1, labelled)
            extra = {"train_reward_accuracy": round(wins, 6), "train_reward_margin": round(margin, 6)}
        else:
            n_lab = self._n_labelled([self.train_set[i] for i in idx])
            loss, acc, tokens = self._sft_batch([self.train_set[i] for i in mine], train=True, n_lab=n_lab)
            mine_tokens = tokens
            loss, acc, tokens = ranks.sum([loss, acc, tokens])
            extra = {}
        ranks.all_reduce_grads(self.params)
        self.rank_examples += len(mine)
        self.rank_tokens += mine_tokens
        self.seen[epoch, mine] += 1
        return loss, acc, int(round(tokens)), extra

    def _distributed_stats(self) -> dict:
        """What each rank trained this run; ``shard_overlap`` counts (epoch, example) pairs trained by more than
        one rank (0: the shards were disjoint)."""
        ranks = self.ranks
        ranks.all_reduce_(self.seen)
        return {"world_size": ranks.world_size, "backend": ranks.backend,
                "examples_per_rank": [int(x) for x in ranks.per_rank(self.rank_examples)],
                "tokens_per_rank": [int(x) for x in ranks.per_rank(self.rank_tokens)],
                "shard_overlap": int((self.seen > 1).sum())}

    def _stop_requested(self) -> bool:
        """Rank 0's reporter decides; every rank must stop at the same step, so the answer is shared."""
        flag = self.reporter.stop_requested()
        return flag if self.ranks is None else self.ranks.any(flag)

    # -- evaluation --------------------------------------------------------------------------------
    def _evaluate(self, which: str, start: int = 0, count: int | None = None) -> dict:
        torch = self.torch
        self.model.eval()
        try:
            with torch.no_grad():
                if self.dpo:
                    n = len(self.valid_pairs)
                    idx = list(range(n)) if count is None else [(start + k) % n for k in range(min(count, n))]
                    loss, acc, *_ = self._dpo_batch(idx, self.valid_pairs, self.ref["valid"], train=False)
                else:
                    n = len(self.valid_set)
                    idx = list(range(n)) if count is None else [(start + k) % n for k in range(min(count, n))]
                    loss, acc, _ = self._sft_batch([self.valid_set[i] for i in idx], train=False)
        finally:
            self.model.train()
        return {f"{which}_loss": round(loss, 6), f"{which}_mean_token_accuracy": round(acc, 6)}

    # -- state ---------------------------------------------------------------------------------
    def _state(self, step: int, epoch: int, batch_index: int, trained_tokens: int) -> dict:
        torch = self.torch
        return {"step": step, "epoch": epoch, "batch_index": batch_index, "trained_tokens": trained_tokens,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(), "ref": self.ref}

    def _restore(self, point: ck.ResumePoint) -> dict:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = torch.load(point.folder / ck.STATE_FILE, weights_only=False)
        set_peft_model_state_dict(self.model, load_file(str(point.folder / "adapter_model.safetensors")))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        self.ref = state.get("ref") or {}
        return state

    # -- the loop ------------------------------------------------------------------------------
    def run(self, resume: ck.ResumePoint | None = None) -> TrainResult:
        torch = self.torch
        cfg, rep = self.cfg, self.reporter
        step = epoch = batch_index = trained_tokens = 0
        if self.ranks is not None:
            self.ranks.broadcast_(self.params)
        if resume is not None:
            state = self._restore(resume)
            step, epoch, batch_index = state["step"], state["epoch"], state["batch_index"]
            trained_tokens = state["trained_tokens"]
        elif self.dpo:
            started = time.perf_counter()
            self.ref = {"train": self._ref_logps(self.train_pairs),
                        "valid": self._ref_logps(self.valid_pairs) if self.valid_pairs else None}
            rep.event(f"Computed reference log-probabilities for {len(self.train_pairs)} preference pairs "
                      f"in {time.perf_counter() - started:.1f} s.", key="dpo-reference")
        self.model.train()
        self.flops.total = 0.0
        t0 = time.perf_counter()
        tokens_this_run = 0
        last_ckpt: Path | None = resume.folder if resume and resume.is_checkpoint else None
        while epoch < cfg.n_epochs:
            batches = epoch_batches(self.lengths, cfg.batch_size, cfg.seed, epoch)
            while batch_index < len(batches):
                idx = batches[batch_index]
                if self.ranks is not None:
                    loss, acc, tokens, extra = self._sharded_step(idx, epoch)
                elif self.dpo:
                    loss, acc, tokens, wins, margin = self._dpo_batch(idx, self.train_pairs, self.ref["train"],
                                                                      train=True)
                    extra = {"train_reward_accuracy": round(wins, 6), "train_reward_margin": round(margin, 6)}
                else:
                    loss, acc, tokens = self._sft_batch([self.train_set[i] for i in idx], train=True)
                    extra = {}
                if not math.isfinite(loss):
                    raise FloatingPointError(f"The training loss became {loss} at step {step + 1}; "
                                             "lower learning_rate_multiplier.")
                torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                lr = self.scheduler.get_last_lr()[0]
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                batch_index += 1
                trained_tokens += tokens
                tokens_this_run += tokens
                data = {"step": step, "total_steps": self.total_steps, "train_loss": round(loss, 6),
                        "train_mean_token_accuracy": round(acc, 6), "valid_loss": None,
                        "valid_mean_token_accuracy": None}
                if self.main and self.n_valid and (step % self.eval_every == 0 or step == self.total_steps):
                    data.update(self._evaluate("valid", start=step * cfg.batch_size, count=cfg.batch_size))
                epoch_end = batch_index == len(batches)
                if epoch_end and self.main and self.n_valid:
                    data.update(self._evaluate("full_valid"))
                data.update(extra)
                data["learning_rate"] = lr
                elapsed = time.perf_counter() - t0
                data["tokens_per_second"] = round(tokens_this_run / elapsed, 2) if elapsed else None
                msg = f"Step {step}/{self.total_steps}: training loss={loss:.4f}"
                if data.get("valid_loss") is not None:
                    msg += f", validation loss={data['valid_loss']:.4f}"
                if data.get("full_valid_loss") is not None:
                    msg += f", full validation loss={data['full_valid_loss']:.4f}"
                rep.metrics(step, self.total_steps, data, msg)
                if epoch_end:
                    epoch += 1
                    batch_index = 0
                    folder = self.out_root / f"ckpt-step-{step}"
                    if self.main:
                        ck.write_adapter(self.model, folder, cfg, self._state(step, epoch, 0, trained_tokens))
                        stale = self.out_root / "paused"
                        if stale.exists():
                            import shutil

                            shutil.rmtree(stale, ignore_errors=True)
                        metrics = {k: data.get(k) for k in ("step", "train_loss", "train_mean_token_accuracy",
                                                             "valid_loss", "valid_mean_token_accuracy",
                                                             "full_valid_loss", "full_valid_mean_token_accuracy")}
                        rep.checkpoint(step, epoch, folder, metrics)
                    last_ckpt = folder
                if self._stop_requested() and step < self.total_steps:
                    if not epoch_end and self.main:  # an epoch end just wrote a checkpoint with the same state
                        ck.write_adapter(self.model, self.out_root / "paused", cfg,
                                         self._state(step, epoch, batch_index, trained_tokens))
                    return TrainResult("stopped", step, self.total_steps, trained_tokens, last_ckpt)
                if epoch_end:
                    break
        elapsed = time.perf_counter() - t0
        stats = {"train_seconds": round(elapsed, 2), "tokens_this_run": tokens_this_run, "precision": self.precision,
                 "tokens_per_second": round(tokens_this_run / elapsed, 2) if elapsed else None}
        if self.ranks is not None:
            stats.update(self._distributed_stats())
            self.flops.total = self.ranks.sum([self.flops.total])[0]
        if self.main and elapsed > 0 and self.flops.total:
            achieved = self.flops.total / elapsed
            peak = peak_flops(self.cache_dir, peak_dtype(self.precision))
            if self.ranks is not None:  # each rank's measured peak (CPUs of one machine shared: an upper bound)
                peak *= self.ranks.world_size
            stats.update({"achieved_flops": round(achieved), "peak_flops": round(peak),
                          "mfu": round(achieved / peak, 4) if peak else None})
        return TrainResult("completed", step, self.total_steps, trained_tokens, last_ckpt, stats)
