"""Batched LoRA for mixed-adapter batches (the punica / S-LoRA idea, in plain torch ops).

peft routes a mixed batch by looping over the adapters present in every LoRA layer (index the rows,
two small matmuls, scatter back): with 10 adapters that is ~60 small ops per layer, ~12,000 per
decode step of SmolLM2, and a step costs about twice a base-only one. Here each layer does a fixed
handful of ops whatever the mix: gather the rows into one padded group per adapter, two batched
matmuls against that layer's stacked A and B (scaling folded into B), and one gather back (an
``index_add_`` when some rows use the bare base). On CPU, decode steps (one token per row) instead run each
layer as one fused kernel over the same stacks (:mod:`tuneforge.inference.lora_kernel`), where numba is there.

peft still loads, stores and unloads the adapters; :class:`LoraRouter` only replaces the forward of
the LoRA layers (and of fully trained ``modules_to_save`` copies) while the engine runs a pass under
:meth:`LoraRouter.routing`. Layers this path does not cover (DoRA and other variants, LoRA on
embeddings or convolutions, ``lora_bias``) take peft's own per-adapter loop with the same row
routing, so every adapter peft can mix still works. The routing plan (and each layout of it) is
built once per forward pass, not per layer; sibling layers that read the same input (q/k/v, gate/up)
share one gather of it; peft's per-call hook registration is skipped altogether. A batch whose rows
all use one adapter runs that adapter's own two matmuls, no stack.

Stacks: each layer keeps one stacked copy of adapters, so adapters in use cost about twice their size.
Rebuilding it costs over half a decode step (≈ 90 ms to copy ~190 MB for ten r16 all-linear adapters on SmolLM2),
so it is not rebuilt for every change of the batch's mix, which under continuous batching changes as
each prefill group joins: it grows by the newcomers (a prefill pass adds them, the decode steps after
it need them too), smaller mixes run on it with the absent adapters' groups computed and dropped, a
prefill pass over a few of its adapters takes their slices for that pass, and only a mix using under
half of it for ``SHRINK_AFTER`` decode steps in a row gets a stack of its own. Unloading an adapter
drops the stacks.
"""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from tuneforge.inference import lora_kernel
from tuneforge.inference.adapters import BASE

SHRINK_AFTER = 16  # decode steps on an oversized stack before it is rebuilt for the batch's mix


class Stack(NamedTuple):
    """One layer's stacked adapters: A [U, in, r], B [U, r, out] with scaling folded in (None: some adapter of
    ``key`` needs peft's own path here), and their numpy views for the fused kernel (None: not float32 CPU)."""

    key: tuple[str, ...]
    a: torch.Tensor | None
    b: torch.Tensor | None
    arrays: tuple | None = None


@dataclass
class Layout:
    """How the rows of one pass map onto the groups of a stack (one group per stacked adapter)."""

    width: int  # rows per group after padding (M)
    gather: torch.Tensor  # [U*M] row feeding each group slot (padding and empty groups repeat a real row)
    src: torch.Tensor | None  # [n] group slots holding a real row (None: every slot is real)
    dest: torch.Tensor  # [n] the row each of those slots belongs to
    inv: torch.Tensor | None  # [B] the slot of each row, when every row has an adapter (no scatter needed)


@dataclass
class Plan:
    """The rows of one forward pass and their adapters (shared by every layer)."""

    names: list[str]  # adapter per row, as peft's ``adapter_names``
    key: tuple[str, ...]  # the distinct adapters in the batch
    rows: int
    single: bool  # every row uses the one adapter in ``key``: its own weights, no stack
    device: torch.device | str | None = None
    may_shrink: bool = True  # an oversized stack may be rebuilt for this mix (see _stack_key)
    oversized: bool | None = None  # this decode step found a stack over twice its mix (None: not asked)
    gathered: tuple | None = None  # (input, layout, its rows gathered into groups) of the last LoRA layer
    # Per stack key, once per pass rather than per layer: the key to stack next, this batch's slots, its Layout.
    next_keys: dict = field(default_factory=dict)
    indexes: dict = field(default_factory=dict)
    layouts: dict = field(default_factory=dict)
    groupings: dict = field(default_factory=dict)

    def stack_key(self, cached: tuple[str, ...] | None) -> tuple[str, ...]:
        if cached not in self.next_keys:
            self.next_keys[cached] = self._stack_key(cached)
        return self.next_keys[cached]

    def _stack_key(self, cached: tuple[str, ...] | None) -> tuple[str, ...]:
        """The adapters a layer should stack for this decode step: the cached stack, plus the batch's
        newcomers if any (stacks grow as streams with other adapters join a running batch, instead of being
        rebuilt at every change). A stack more than twice the batch's mix computes groups for absent
        adapters for nothing: after ``SHRINK_AFTER`` such steps in a row (not during a ramp-up, when the
        batch's first streams run while others still wait for their prefill) it is rebuilt for the mix."""
        grown = self.grown(cached)
        if len(grown) <= 2 * len(self.key):
            self.oversized = False
            return grown
        self.oversized = True
        return self.key if self.may_shrink else grown

    def grown(self, cached: tuple[str, ...] | None) -> tuple[str, ...]:
        """The cached stack's adapters plus this batch's newcomers."""
        return (cached or ()) + tuple(name for name in self.key if name not in (cached or ()))

    def index_in(self, stacked: tuple[str, ...]) -> torch.Tensor | None:
        """The slots of this batch's adapters in a stack of ``stacked``, when it holds all of them."""
        if stacked not in self.indexes:
            slot = {name: u for u, name in enumerate(stacked)}
            found = None
            if all(name in slot for name in self.key):
                found = torch.tensor([slot[name] for name in self.key], dtype=torch.long, device=self.device)
            self.indexes[stacked] = found
        return self.indexes[stacked]

    def grouping(self, stacked: tuple[str, ...]) -> tuple:
        """(starts [U+1], rows) for the fused kernel: the rows of stacked adapter u are ``rows[starts[u]:
        starts[u + 1]]`` (none for stacked adapters this batch does not use; base rows are in no group)."""
        if stacked not in self.groupings:
            slot = {name: u for u, name in enumerate(stacked)}
            pairs = sorted((slot[name], row) for row, name in enumerate(self.names) if name != BASE)
            counts = np.bincount(np.array([u for u, _ in pairs], dtype=np.int64), minlength=len(stacked))
            starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
            self.groupings[stacked] = starts, np.array([row for _, row in pairs], dtype=np.int64)
        return self.groupings[stacked]

    def layout(self, stacked: tuple[str, ...]) -> Layout:
        if stacked not in self.layouts:
            self.layouts[stacked] = _layout(self.names, stacked, self.device)
        return self.layouts[stacked]


def make_plan(names: list[str], device) -> Plan:
    key = tuple(dict.fromkeys(n for n in names if n != BASE))
    return Plan(names, key, len(names), len(key) == 1 and BASE not in names, device)


def _layout(names: list[str], stacked: tuple[str, ...], device) -> Layout:
    groups = [[i for i, n in enumerate(names) if n == name] for name in stacked]
    width = max(len(g) for g in groups)
    filler = next(i for i, n in enumerate(names) if n != BASE)
    gather, src, dest = [], [], []
    for u, group in enumerate(groups):
        for j in range(width):
            if j < len(group):
                gather.append(group[j])
                src.append(u * width + j)
                dest.append(group[j])
            else:
                gather.append(group[0] if group else filler)  # padding slot: computed, then dropped
    full = len(src) == len(gather)
    inv = None
    if BASE not in names:  # every row reads its slot back: a gather, cheaper than a scatter-add
        inv = [0] * len(names)
        for slot, row in zip(src, dest, strict=True):
            inv[row] = slot

    def tensor(values):
        return None if values is None else torch.tensor(values, dtype=torch.long, device=device)

    return Layout(width, tensor(gather), None if full else tensor(src), tensor(dest), tensor(inv))


class LoraRouter:
    """Row-wise adapter routing for one peft model, without peft's per-call hooks."""

    def __init__(self, fused: bool = True):
        self.plan: Plan | None = None
        self.fused = fused  # decode steps through the fused kernel (lora_kernel.py) where it is available
        self.kernel = None  # that kernel, once install() found it
        self.fused_calls = 0  # layer forwards the kernel ran (tests check that it really ran)
        self.oversized_steps = 0  # decode steps in a row whose stacks were over twice their mix

    def install(self, model) -> None:
        """Take over the forward of every LoRA layer and trained-module wrapper (idempotent; call after
        each adapter load, which may add layers)."""
        from peft.tuners.lora import Linear as LoraLinear
        from peft.tuners.lora import LoraLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        if self.fused and self.kernel is None:
            self.kernel = lora_kernel.load()
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
        self.plan = plan = make_plan(names, device)
        if self.kernel is not None and plan.key and not plan.single:
            lora_kernel.match_threads(torch.get_num_threads())
        plan.may_shrink = self.oversized_steps >= SHRINK_AFTER
        try:
            yield plan
        finally:
            self.plan = None
            if plan.oversized is not None:  # decode steps with adapters count; other passes leave it
                self.oversized_steps = self.oversized_steps + 1 if plan.oversized else 0


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


def _build_stack(layer, key: tuple[str, ...]) -> Stack:
    present = [name for name in key if name in layer.lora_A]
    if not present or any(not _vanilla(layer, name) for name in present) or layer.merged:
        return Stack(key, None, None)
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
    arrays = (a.numpy(), b.numpy()) if a.dtype == torch.float32 and a.device.type == "cpu" else None
    return Stack(key, a, b, arrays)


def _stack_for(layer, plan: Plan, steps: int) -> Stack:
    """The stack for this pass. The layer keeps one stack that grows as adapters join the running
    batch (a prefill pass adds its newcomers, which the decode steps after it need too) and serves smaller
    mixes (see :meth:`Plan.stack_key`); a prefill pass over some of its adapters takes their slices for that
    pass only (multiplying every prompt token by absent adapters would cost more than the copy)."""
    cached = layer._tf_stack
    if steps == 1:
        key = plan.stack_key(None if cached is None else cached.key)
    elif cached is None or cached.a is None or plan.index_in(cached.key) is None:
        key = plan.grown(None if cached is None else cached.key)
    else:
        key = cached.key
    if cached is None or cached.key != key:
        layer._tf_stack = None  # free the old stack before building the new one
        cached = layer._tf_stack = _build_stack(layer, key)
    if steps == 1 or cached.a is None or cached.key == plan.key:
        return cached
    index = plan.index_in(cached.key)
    return Stack(plan.key, cached.a.index_select(0, index), cached.b.index_select(0, index))


def _fits_kernel(flat: torch.Tensor, result: torch.Tensor) -> bool:
    """Input and output the kernel can read and write in place: float32 tensors over contiguous memory, no
    gradients (their device is the stacks', which have numpy views only on CPU). Runs ~200 times a step."""
    return (flat.dtype is torch.float32 and result.dtype is torch.float32 and flat.is_contiguous()
            and result.is_contiguous() and not flat.requires_grad and not result.requires_grad)


def _single(layer, x, args, kwargs, plan: Plan):
    """Every row uses one adapter: its own two matmuls, no stack (so a one-adapter prefill group leaves
    the stack of the running batch alone)."""
    name = plan.key[0]
    if name not in layer.lora_A:
        return layer.base_layer(x, *args, **kwargs)
    if not _vanilla(layer, name) or layer.merged:
        return type(layer).forward(layer, x, *args, adapter_names=plan.names, **kwargs)
    result = layer.base_layer(x, *args, **kwargs)
    lora_a, lora_b = layer.lora_A[name], layer.lora_B[name]
    low = lora_b(lora_a(x.to(lora_a.weight.dtype)))
    return result.add_(low.to(result.dtype), alpha=layer.scaling[name])


def _make_linear_forward(router: LoraRouter):
    def forward(self, x, *args, **kwargs):
        plan = router.plan
        if plan is None:
            return type(self).forward(self, x, *args, **kwargs)
        if not plan.key or self.disable_adapters:
            return self.base_layer(x, *args, **kwargs)
        if plan.single:
            return _single(self, x, args, kwargs, plan)
        rows = plan.rows
        flat = x.reshape(rows, -1, x.shape[-1])  # [B, T, in]
        steps = flat.shape[1]
        key, a, b, arrays = _stack_for(self, plan, steps)
        if a is None:  # DoRA or another variant in the mix: peft's loop for this layer
            return type(self).forward(self, x, *args, adapter_names=plan.names, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        if steps == 1 and arrays is not None and router.kernel is not None and _fits_kernel(flat, result):
            starts, order = plan.grouping(key)
            router.kernel(flat.view(rows, -1).numpy(), result.view(rows, -1).numpy(), *arrays, starts, order)
            router.fused_calls += 1
            return result
        layout = plan.layout(key)
        out, width, groups = result.shape[-1], layout.width, len(key)
        shared = plan.gathered
        if shared is not None and shared[0] is x and shared[1] is layout:
            grouped = shared[2]  # q/k/v (and gate/up) read the same input: gathered once for all of them
        else:
            if flat.dtype is not a.dtype:
                flat = flat.to(a.dtype)
            grouped = flat.index_select(0, layout.gather).view(groups, width * steps, -1)
            plan.gathered = (x, layout, grouped)
        delta = torch.bmm(torch.bmm(grouped, a), b).view(groups * width, steps, out)
        if delta.dtype is not result.dtype:
            delta = delta.to(result.dtype)
        if layout.inv is not None:
            return result.add_(delta.index_select(0, layout.inv).view_as(result))
        if layout.src is not None:
            delta = delta.index_select(0, layout.src)
        result.view(rows, steps, out).index_add_(0, layout.dest, delta)
        return result

    return forward
