"""Batched LoRA for mixed-adapter batches (the punica / S-LoRA idea, in plain torch ops).

peft routes a mixed batch by looping over the adapters present in every LoRA layer (index the rows,
two small matmuls, scatter back): with 10 adapters that is ~60 small ops per layer, ~12,000 per
decode step of SmolLM2, and a step costs about twice a base-only one. Here each layer does a fixed
handful of ops whatever the mix: gather the rows into one padded group per adapter, two batched
matmuls against that layer's stacked A and B (scaling folded into B), and one gather back (an
``index_add_`` when some rows use the bare base).

peft still loads, stores and unloads the adapters; :class:`LoraRouter` only replaces the forward of
the LoRA layers (and of fully trained ``modules_to_save`` copies) while the engine runs a pass under
:meth:`LoraRouter.routing`. Layers this path does not cover (DoRA and other variants, LoRA on
embeddings or convolutions, ``lora_bias``) take peft's own per-adapter loop with the same row
routing, so every adapter peft can mix still works. The routing plan is built once per forward pass,
not per layer, and peft's per-call hook registration is skipped altogether.

Memory: each layer keeps its stacked copy of the adapters of the current batch mix (one mix at a
time, rebuilt when the set of adapters in the batch changes), so adapters in use cost about twice
their size.
"""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass

import torch

from tuneforge.inference.adapters import BASE


@dataclass
class Plan:
    """How the rows of one forward pass map onto per-adapter groups (shared by every layer)."""

    names: list[str]  # adapter per row, as peft's ``adapter_names``
    key: tuple[str, ...]  # the distinct adapters in the batch, in group order
    rows: int
    width: int  # rows per group after padding (M)
    gather: torch.Tensor | None  # [U*M] row feeding each group slot (padding repeats a real row)
    src: torch.Tensor | None  # [n] group slots holding a real row (None: every slot is real)
    dest: torch.Tensor | None  # [n] the row each of those slots belongs to
    inv: torch.Tensor | None  # [B] the slot of each row, when every row has an adapter (no scatter needed)
    single: bool  # every row uses the one adapter in ``key``: no gather/scatter at all


def make_plan(names: list[str], device) -> Plan:
    key = tuple(dict.fromkeys(n for n in names if n != BASE))
    if not key:
        return Plan(names, key, len(names), 0, None, None, None, None, False)
    if len(key) == 1 and BASE not in names:
        return Plan(names, key, len(names), len(names), None, None, None, None, True)
    groups = [[i for i, n in enumerate(names) if n == name] for name in key]
    width = max(len(g) for g in groups)
    gather, src, dest = [], [], []
    for u, group in enumerate(groups):
        for j in range(width):
            if j < len(group):
                gather.append(group[j])
                src.append(u * width + j)
                dest.append(group[j])
            else:
                gather.append(group[0])  # padding slot: computed, then dropped
    full = len(src) == len(gather)
    inv = None
    if BASE not in names:  # every row reads its slot back: a gather, cheaper than a scatter-add
        inv = [0] * len(names)
        for slot, row in zip(src, dest, strict=True):
            inv[row] = slot

    def tensor(values):
        return None if values is None else torch.tensor(values, dtype=torch.long, device=device)

    return Plan(names, key, len(names), width, tensor(gather), None if full else tensor(src), tensor(dest),
                tensor(inv), False)


class LoraRouter:
    """Row-wise adapter routing for one peft model, without peft's per-call hooks."""

    def __init__(self):
        self.plan: Plan | None = None

    def install(self, model) -> None:
        """Take over the forward of every LoRA layer and trained-module wrapper (idempotent; call after
        each adapter load, which may add layers)."""
        from peft.tuners.lora import Linear as LoraLinear
        from peft.tuners.lora import LoraLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        for module in model.modules():
            if getattr(module, "_tf_router", None) is self:
                continue
            if type(module) is LoraLinear:
                module.forward = types.MethodType(_make_linear_forward(self), module)
            elif isinstance(module, (LoraLayer, AuxiliaryTrainingWrapper)):
                module.forward = types.MethodType(_make_routed_forward(self), module)
            else:
                continue
            module._tf_router = self
            module._tf_stack = None

    def drop_stacks(self, model) -> None:
        """Free the stacked copies (an adapter was unloaded; the next pass rebuilds what it needs)."""
        for module in model.modules():
            if getattr(module, "_tf_router", None) is self:
                module._tf_stack = None

    @contextlib.contextmanager
    def routing(self, names: list[str], device):
        self.plan = make_plan(names, device)
        try:
            yield self.plan
        finally:
            self.plan = None


def _make_routed_forward(router: LoraRouter):
    """peft's own mixed-batch forward, fed the plan's row routing (layers without a batched path)."""

    def forward(self, *args, **kwargs):
        plan = router.plan
        if plan is not None:
            kwargs["adapter_names"] = plan.names
        return type(self).forward(self, *args, **kwargs)

    return forward


def _vanilla(layer, name: str) -> bool:
    return name not in layer.lora_variant and not layer.lora_bias.get(name, False)


def _build_stack(layer, key: tuple[str, ...]):
    """(key, A [U, in, r], B [U, r, out] with scaling folded in) for this layer, or (key, None, None)
    when some adapter of the mix needs peft's own path here."""
    present = [name for name in key if name in layer.lora_A]
    if not present or any(not _vanilla(layer, name) for name in present) or layer.merged:
        return key, None, None
    weight = layer.lora_A[present[0]].weight
    rank = max(layer.lora_A[name].weight.shape[0] for name in present)
    a = torch.zeros(len(key), layer.in_features, rank, dtype=weight.dtype, device=weight.device)
    b = torch.zeros(len(key), rank, layer.out_features, dtype=weight.dtype, device=weight.device)
    for u, name in enumerate(key):
        if name not in layer.lora_A:  # this adapter does not target this layer: its slot stays zero
            continue
        wa, wb = layer.lora_A[name].weight, layer.lora_B[name].weight  # [r, in], [out, r]
        r = wa.shape[0]
        a[u, :, :r] = wa.t()
        b[u, :r, :] = wb.t() * layer.scaling[name]  # zero-padded ranks add exactly nothing
    return key, a, b


def _make_linear_forward(router: LoraRouter):
    def forward(self, x, *args, **kwargs):
        plan = router.plan
        if plan is None:
            return type(self).forward(self, x, *args, **kwargs)
        if not plan.key or self.disable_adapters:
            return self.base_layer(x, *args, **kwargs)
        stack = self._tf_stack
        if stack is None or stack[0] != plan.key:
            stack = self._tf_stack = None  # free the old mix before building the new one
            stack = self._tf_stack = _build_stack(self, plan.key)
        _, a, b = stack
        if a is None:  # DoRA or another variant in the mix: peft's loop for this layer
            return type(self).forward(self, x, *args, adapter_names=plan.names, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        lora_x = x.to(a.dtype)
        if plan.single:
            return result.add_(((lora_x @ a[0]) @ b[0]).to(result.dtype))
        rows, out = plan.rows, result.shape[-1]
        width, groups = plan.width, len(plan.key)
        flat = lora_x.reshape(rows, -1, lora_x.shape[-1])  # [B, T, in]
        steps = flat.shape[1]
        grouped = flat.index_select(0, plan.gather).view(groups, width * steps, -1)
        delta = torch.bmm(torch.bmm(grouped, a), b).view(groups * width, steps, out)
        if plan.inv is not None:
            return result.add_(delta.index_select(0, plan.inv).view_as(result).to(result.dtype))
        if plan.src is not None:
            delta = delta.index_select(0, plan.src)
        result.view(rows, steps, out).index_add_(0, plan.dest, delta.to(result.dtype))
        return result

    return forward
