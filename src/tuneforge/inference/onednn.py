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
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


def _op():
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


_LINEAR = _op()  # looked up once: the forward below runs ~200 times per decode step


class OneDnnLinear(nn.Linear):
    """An ``nn.Linear`` whose float32 CPU inference goes through oneDNN (same weight, same results)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if (x.dtype is torch.float32 and weight.dtype is torch.float32 and x.device.type == "cpu"
                and weight.device.type == "cpu" and not torch.is_grad_enabled() and x.dim() >= 2):
            return _LINEAR(x, weight, self.bias, "none", [], "")
        return F.linear(x, weight, self.bias)


@functools.cache  # the answer cannot change within a process: probe once, not at every base load
def onednn_available() -> bool:
    """True when the oneDNN linear exists here and matches ``F.linear`` on a probe."""
    if _LINEAR is None:
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(3, 5, 64, generator=gen)
        w = torch.randn(48, 64, generator=gen)
        b = torch.randn(48, generator=gen)
        with torch.inference_mode():
            got = _LINEAR(x, w, b, "none", [], "")
            want = F.linear(x, w, b)
        return got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    except Exception as exc:  # an op that exists but is broken in this build: keep F.linear
        log.info("oneDNN linear unavailable: %s: %s", type(exc).__name__, exc)
        return False


def use_onednn_linears(model: nn.Module) -> int:
    """Switch the plain float32 CPU ``nn.Linear`` layers of ``model`` to :class:`OneDnnLinear` in place
    (the class only: parameters, ties and hooks stay). Returns how many were switched (0: op unavailable)."""
    if not onednn_available():
        return 0
    switched = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype is torch.float32:
            module.__class__ = OneDnnLinear
            switched += 1
    return switched
