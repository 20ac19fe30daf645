"""LoRA adapters on one shared base model: load on first use, keep an LRU, unload cleanly.

All adapters of a base live in one ``peft.PeftModel`` wrapped around the single copy of the base
weights; each request row names its adapter (``adapter_names`` in the forward pass, peft's mixed-batch
routing), so rows with different adapters share forward passes and never see each other's weights.
Only the engine thread touches this object.

Adapter folder contract (written by training): ``adapter_config.json`` + ``adapter_model.safetensors``
(PEFT LoRA), optional ``chat_template.jinja`` or tokenizer files, optional ``tuneforge_training.json``.
"""

from __future__ import annotations

import gc
import json
import logging
import warnings
from collections import OrderedDict
from pathlib import Path

from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.inference.onednn import unpack_linears

log = logging.getLogger("tuneforge.inference")

BASE = "__base__"  # peft's name for "no adapter" in mixed batches
_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def adapter_key(adapter_dir: Path) -> str:
    """Identity of an adapter's current weights: a retrained folder gets a new key and is reloaded."""
    adapter_dir = Path(adapter_dir)
    for name in _WEIGHT_FILES:
        path = adapter_dir / name
        if path.is_file():
            st = path.stat()
            return f"{adapter_dir.resolve()}@{st.st_mtime_ns}:{st.st_size}"
    raise NotFound(f"The adapter weights for this model are missing on the server ({adapter_dir}).",
                   param="model", code="model_not_found")


def check_adapter_dir(adapter_dir: Path) -> dict:
    """Read ``adapter_config.json``; refuse anything that is not a LoRA-style PEFT adapter."""
    try:
        config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    except (OSError, ValueError):
        raise NotFound(f"The adapter for this model is missing or unreadable on the server ({adapter_dir}).",
                       param="model", code="model_not_found") from None
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type not in ("LORA",):
        raise InvalidRequest(f"Adapters of type {peft_type} cannot be served (LoRA only).", param="model")
    adapter_key(adapter_dir)
    return config


def _reads_base_weights(config: dict) -> bool:
    """Whether peft computes on the base layers' weights to load this adapter: DoRA's magnitude starts from
    the weight norm, and initialisations such as PiSSA or OLoRA decompose the weight. A packed weight
    (inference/onednn.py) cannot serve them, so the pool makes the base dense first."""
    init = config.get("init_lora_weights", True)
    return bool(config.get("use_dora")) or (isinstance(init, str) and init.lower() not in ("gaussian", "eva"))


class AdapterPool:
    """LRU of adapters loaded into one base model. ``capacity`` is a soft cap: adapters still used by
    running rows are never evicted, so the pool may exceed it until those rows finish."""

    def __init__(self, base_model, capacity: int, stats, fused_lora: bool = True):
        self.model = base_model  # becomes a PeftModel on the first adapter
        self.capacity = max(1, capacity)
        self.stats = stats
        self._loaded: OrderedDict[str, str] = OrderedDict()  # key -> peft adapter name
        self._refs: dict[str, int] = {}
        self._counter = 0
        from tuneforge.inference.lora_batch import LoraRouter  # torch: only once an engine exists

        self.router = LoraRouter(fused_lora)  # batched LoRA for mixed-adapter passes (see lora_batch)

    @property
    def is_peft(self) -> bool:
        return bool(self._loaded) or hasattr(self.model, "peft_config")

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    def acquire(self, adapter_dir: Path | None) -> str:
        """The peft adapter name for a row (loading the adapter if needed); ``release`` it when done."""
        if adapter_dir is None:
            return BASE
        key = adapter_key(adapter_dir)
        name = self._loaded.get(key)
        if name is None:
            name = self._load(adapter_dir, key)
        self._loaded.move_to_end(key)
        self._refs[name] = self._refs.get(name, 0) + 1
        self._evict()  # after taking the reference, so the adapter just loaded is never the victim
        return name

    def release(self, name: str) -> None:
        if name != BASE and name in self._refs:
            self._refs[name] -= 1
            if self._refs[name] <= 0:
                del self._refs[name]
        self._evict()

    def _load(self, adapter_dir: Path, key: str) -> str:
        from peft import PeftModel

        config = check_adapter_dir(adapter_dir)
        if _reads_base_weights(config):
            unpacked = unpack_linears(self.model)
            if unpacked:
                log.info("%s: %d packed base layers made dense again (this adapter reads the base weights)",
                         adapter_dir.name, unpacked)
        self._counter += 1
        name = f"adapter{self._counter}"
        # A folder retrained in place has a new key: drop the stale copy first.
        for old_key, old_name in list(self._loaded.items()):
            if old_key.split("@")[0] == key.split("@")[0] and old_name not in self._refs:
                self._unload(old_key)
        if not hasattr(self.model, "peft_config"):
            self.model = PeftModel.from_pretrained(self.model, str(adapter_dir), adapter_name=name,
                                                   is_trainable=False)
        else:
            self.model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
        self.model.eval()
        try:
            _enable_rowwise_routing(self.model)
        except InvalidRequest:
            self._loaded[key] = name
            self._unload(key)
            raise
        self._loaded[key] = name
        self.router.install(self.model)
        self.stats.adapter_loads += 1
        log.info("loaded adapter %s from %s", name, adapter_dir)
        return name

    def _evict(self) -> None:
        while len(self._loaded) > self.capacity:
            victim = next((k for k, n in self._loaded.items() if n not in self._refs), None)
            if victim is None:
                return
            self._unload(victim)

    def _unload(self, key: str) -> None:
        name = self._loaded.pop(key)
        self.router.drop_stacks(self.model)
        if len(self.model.peft_config) > 1:
            with warnings.catch_warnings():  # "adapter X was active ...": we route per row, never by "active"
                warnings.simplefilter("ignore", UserWarning)
                self.model.delete_adapter(name)
        else:
            # peft refuses to delete the last adapter: strip the LoRA layers and get the plain base back.
            self.model = self.model.unload()
        self.stats.adapter_evictions += 1
        gc.collect()
        log.info("unloaded adapter %s", name)

    def clear(self) -> None:
        for key in list(self._loaded):
            self._unload(key)


def _rowwise_mixed_forward(self, input, *args, adapter_names, **kwargs):
    """peft's mixed-batch loop for a fully trained module (``modules_to_save``): each row goes through
    its own adapter's copy. peft only allows it for Linear/Embedding/Conv; a norm layer normalises each
    token on its own, so routing rows through different copies is exact for it too."""
    import torch

    results = [None] * len(input)
    for adapter in set(adapter_names):
        index = [i for i, a in enumerate(adapter_names) if a == adapter]
        sub = input[index]
        if adapter == BASE or adapter not in self.modules_to_save:
            out = self.original_module(sub, *args, **kwargs)
        else:
            out = self.modules_to_save[adapter](sub, *args, **kwargs)
        for j, i in enumerate(index):
            results[i] = out[j]
    return torch.stack(results)


def _enable_rowwise_routing(model) -> None:
    import types

    import torch
    from peft.utils.other import ModulesToSaveWrapper

    supported = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    for module_name, module in model.named_modules():
        if not isinstance(module, ModulesToSaveWrapper) or isinstance(module.original_module, supported):
            continue
        kind = type(module.original_module).__name__
        if "Norm" in kind and "Batch" not in kind and "Group" not in kind:
            module._mixed_batch_forward = types.MethodType(_rowwise_mixed_forward, module)
        else:
            raise InvalidRequest(f"This adapter fully trains '{module_name}' ({kind}), which cannot share a batch "
                                 "with other adapters; retrain it without that module in modules_to_save.",
                                 param="model")
