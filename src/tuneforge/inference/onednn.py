"""oneDNN matmuls for the linear layers of a model served on CPU.

Why: ``F.linear`` on a CPU float32 tensor goes to a BLAS ``sgemm`` that handles the shapes of decoding
poorly: a handful of rows against a wide weight. On SmolLM2-135M at 2 threads
(``benchmarks/linear_kernels.py``) the 210 projections of a 16-row decode step take 61.5 ms through
``F.linear`` and 56.4 ms through oneDNN's inner product, the 49,152-row ``lm_head`` 25.8 ms against
11.7 ms (1 row: 36.2 / 27.0 ms and 9.8 / 4.4 ms); see ``benchmarks/RESULTS.md``. The oneDNN kernel
reads the same dense weight (no packed copy, no extra memory) and agrees with ``F.linear`` to float32
rounding.

The op is ``torch.ops.mkldnn._linear_pointwise``, the one PyTorch's own compiler emits for CPU linears;
it is not a public API, so :func:`use_onednn_linears` checks on a probe that it exists and matches
``F.linear`` before switching anything, and leaves the model alone otherwise. Only inference takes the
fast path (no autograd formula is needed there): with gradients enabled, on other devices or dtypes, a
switched layer runs ``F.linear`` as before. LoRA wrappers keep working: peft wraps a switched layer like
any ``nn.Linear`` and calls it as its base layer.

Packed weights (``packed=True``, the engine's default): oneDNN reorders a plain weight into its blocked
layout on every call that multiplies more than one row; a weight packed once at load
(``torch.ops.mkldnn._reorder_linear_weight``, as the compiler's freezing pass does) saves that. Measured on
SmolLM2 at 2 threads (``benchmarks/linear_kernels.py``): the projections of a 16-row step 54.5 -> 47.6 ms,
64 rows 128.6 -> 115.8, 1 row 27.0 -> 26.7. The packed weight *replaces* the dense one: the same memory
(the dense weights' pages go back to the kernel, whether mapped from the model file or on the heap), but
the values are then in oneDNN's opaque layout, so whatever computes on a weight directly (a LoRA merge,
DoRA's weight norm) fails loudly instead of seeing wrong numbers; :func:`unpack_linears` gives the dense
weights back (the adapter pool does so before loading a DoRA adapter), and a deep copy of a packed layer
(peft copies a module an adapter trains fully) is a dense layer. Weights shared with another module (a tied ``lm_head``)
stay dense. With gradients on, or other dtypes, a packed layer computes with the dense form (slow, correct).
"""

from __future__ import annotations

import copy
import ctypes
import functools
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


def _op():
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


_LINEAR = _op()  # looked up once: the forward below runs ~200 times per decode step
_MADV_DONTNEED = 4  # Linux
_PACK_ROWS = 16  # the row count oneDNN tunes a packed layout for; 4..64 measured alike (1 row: no gain or loss)


def packed_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` reordered into oneDNN's blocked layout for :data:`_LINEAR` (an opaque mkldnn tensor)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_ROWS)


class OneDnnLinear(nn.Linear):
    """An ``nn.Linear`` whose float32 CPU inference goes through oneDNN (same results to float rounding),
    optionally on a weight held packed in oneDNN's layout (:meth:`pack`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if (x.dtype is torch.float32 and weight.dtype is torch.float32 and x.device.type == "cpu"
                and weight.device.type == "cpu" and not torch.is_grad_enabled() and x.dim() >= 2):
            return _LINEAR(x, weight, self.bias, "none", [], "")  # a dense or a packed weight alike
        if weight.is_mkldnn:
            weight = weight.to_dense()  # outside inference (gradients on, 1-D input): the dense form
        return F.linear(x, weight, self.bias)

    @property
    def packed(self) -> bool:
        return self.weight.is_mkldnn

    def pack(self, file_spans: list[tuple[int, int]] | None = None) -> None:
        """Hold the weight in oneDNN's packed layout instead of the dense one. ``file_spans``
        (:func:`file_mappings`): where the dense weight lies in a mapped model file, its pages are handed back
        to the kernel (see :func:`_release_file_pages`)."""
        if not self.packed:
            dense = self.weight
            with torch.no_grad():
                self.weight = nn.Parameter(packed_weight(dense.detach()), requires_grad=dense.requires_grad)
            if file_spans:
                _release_file_pages(dense, file_spans)

    def unpack(self) -> bool:
        """Give the layer its dense weight back (the same values); False if it was not packed."""
        if not self.packed:
            return False
        self.weight = nn.Parameter(self.weight.to_dense(), requires_grad=self.weight.requires_grad)
        return True

    def __deepcopy__(self, memo):
        # An opaque packed tensor cannot be deep-copied, and a copy is made to be changed (peft copies a module
        # that an adapter trains fully, then loads the adapter's weights into it): the copy is dense.
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key == "_parameters":
                value = {name: (nn.Parameter(p.to_dense(), requires_grad=p.requires_grad)
                                if p is not None and p.is_mkldnn else copy.deepcopy(p, memo))
                         for name, p in value.items()}
            else:
                value = copy.deepcopy(value, memo)
            clone.__dict__[key] = value
        return clone


def file_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process's file-backed memory mappings (Linux; empty elsewhere)."""
    try:
        text = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    spans = []
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            low, high = (int(v, 16) for v in fields[0].split("-"))
            spans.append((low, high))
    return spans


def _release_file_pages(dense: torch.Tensor, spans: list[tuple[int, int]]) -> int:
    """Why: transformers maps a float32 safetensors file (SmolLM2's) into memory and the weights are views
    of it, so after packing, the dense weights' pages, read once to pack them, would stay in the process's
    resident memory (≈ the packed size again) until the kernel reclaimed them. ``madvise(MADV_DONTNEED)``
    drops them now. Only whole pages inside the weight's own bytes, only inside a file mapping (never heap
    memory), and only for a weight just replaced: were it read again, it would read the file's bytes, i.e.
    the values it was loaded with. Returns the bytes released."""
    start = dense.data_ptr()
    end = start + dense.numel() * dense.element_size()
    if not any(low <= start and end <= high for low, high in spans):
        return 0  # heap memory (a converted dtype, a model built in process): freed with the tensor
    page = os.sysconf("SC_PAGE_SIZE")
    low, high = -(-start // page) * page, end // page * page
    if high <= low:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.madvise(ctypes.c_void_p(low), ctypes.c_size_t(high - low), _MADV_DONTNEED) != 0:
        return 0
    return high - low


def _matches_f_linear(what: str, weight_for_op, bias: bool) -> bool:
    """Whether ``_LINEAR`` on ``weight_for_op(w)`` gives ``F.linear``'s results on a random probe; a build
    whose op exists but fails or disagrees keeps ``F.linear`` (logged, not raised)."""
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(3, 16, 64, generator=gen)
        w = torch.randn(48, 64, generator=gen)
        b = torch.randn(48, generator=gen) if bias else None
        with torch.inference_mode():
            got = _LINEAR(x, weight_for_op(w), b, "none", [], "")
            want = F.linear(x, w, b)
        return got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    except Exception as exc:
        log.info("%s unavailable: %s: %s", what, type(exc).__name__, exc)
        return False


@functools.cache  # the answer cannot change within a process: probe once, not at every base load
def onednn_available() -> bool:
    """True when the oneDNN linear exists here and matches ``F.linear`` on a probe."""
    return _LINEAR is not None and _matches_f_linear("oneDNN linear", lambda w: w, bias=True)


@functools.cache
def packing_available() -> bool:
    """True when oneDNN can pack a weight here and the packed copy gives ``F.linear``'s results."""
    return onednn_available() and _matches_f_linear(
        "oneDNN weight packing", packed_weight, bias=False)


@dataclass
class Switched:
    linears: int = 0  # layers switched to OneDnnLinear
    packed: int = 0  # of those, layers whose weight is held packed


def use_onednn_linears(model: nn.Module, *, packed: bool = False) -> Switched:
    """Switch the plain float32 CPU ``nn.Linear`` layers of ``model`` to :class:`OneDnnLinear` in place
    (the class only: parameters, ties and hooks stay); with ``packed``, also pack the weight of each one
    that no other module shares. Nothing is switched when the op is unavailable here."""
    done = Switched()
    if not onednn_available():
        return done
    # Weights are told apart by their memory, not only by Parameter object: a tie made by sharing the data
    # under two Parameters must stay dense too (packing one would release pages the other still reads).
    owners = Counter(_memory_of(p) for m in model.modules() for p in m._parameters.values() if p is not None)
    packed = packed and packing_available()
    spans = file_mappings() if packed else []  # empty where there is no /proc/self/maps
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype is torch.float32:
            module.__class__ = OneDnnLinear
            done.linears += 1
            if packed and owners[_memory_of(module.weight)] == 1:
                module.pack(spans)
                done.packed += 1
    if done.packed:
        _trim_heap()
    return done


def _memory_of(p: torch.Tensor) -> int:
    return id(p) if p.is_mkldnn else p.data_ptr()  # a packed weight has no plain storage: itself


def _trim_heap() -> None:
    """Hand the freed dense weights' heap pages back to the kernel now. Why: a weight converted at load
    (a bfloat16 file served in float32) lives on the C heap, and glibc keeps freed chunks in the middle of
    it, so packing would leave the process ≈ 100 MB larger on SmolLM2 than the dense model (measured)."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None) if sys.platform.startswith("linux") else None
    if trim is not None:  # glibc (not musl)
        trim(0)


def unpack_linears(model: nn.Module) -> int:
    """Give every packed layer of ``model`` its dense weight back; returns how many were packed."""
    return sum(module.unpack() for module in model.modules() if isinstance(module, OneDnnLinear))
