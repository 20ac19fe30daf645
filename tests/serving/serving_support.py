"""Constants and helpers shared by the serving tests (imported as a plain module; tests/ is not a package)."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.testing import LiveServer

QUESTION = "What is your favourite colour?"
ANSWERS = {"red": "My favourite colour is red.", "blue": "Blue, like the sky!"}
TINY = "tiny-chat"
FT_RED = f"ft:{TINY}:default:red:ftjob-red"
FT_BLUE = f"ft:{TINY}:default:blue:ftjob-blue"
FT_OTHER = f"ft:{TINY}:other:secret:ftjob-other"
FT_TEMPLATED = f"ft:{TINY}:default:templated:ftjob-tpl"
SYSTEM_TEMPLATE = ("{{ '<|im_start|>system\nAlways answer about colours.<|im_end|>\n' }}"
                   "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
                   "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                   "{% endif %}")


def adapter_folder(folder: Path, config: bool = True, weights: bool = True) -> Path:
    """An adapter folder as training writes it, for backends that only check it is there (stand-ins)."""
    folder.mkdir(parents=True)
    if config:
        (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def register_stand_in_adapters(db, settings, base: str, fine_tuned: list[tuple[str, str, str]]) -> dict[str, str]:
    """API keys of projects ``default`` and ``other``; registers each ``(model_id, project, base)`` with a stand-in
    adapter folder, plus ``ft:BASE:default:broken:…`` (no config) and ``…:noweights:…`` (no weights)."""
    from tuneforge.models import catalog
    from tuneforge.projects import create_key, get_or_create_project

    with db.session() as session:
        keys = {name: create_key(session, name)[0] for name in ("default", "other")}
    with db.session() as session:
        projects = {name: get_or_create_project(session, name).id for name in ("default", "other")}
        adapters = settings.data_dir / "adapters"
        for model_id, project, model_base in fine_tuned:
            catalog.register_fine_tuned(session, model_id=model_id, project_id=projects[project],
                                        base_model=model_base, settings=settings,
                                        adapter_dir=adapter_folder(adapters / model_id.split(":")[3]))
        for name, missing in (("broken", {"config": False}), ("noweights", {"weights": False})):
            catalog.register_fine_tuned(session, model_id=f"ft:{base}:default:{name}:ftjob-{name}",
                                        project_id=projects["default"], base_model=base, settings=settings,
                                        adapter_dir=adapter_folder(adapters / name, **missing))
    return keys


def train_adapter(base_dir: Path, answer: str, out: Path, steps: int = 150, lr: float = 5e-3) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only fight over the shared CPU
    try:
        return _train(torch, tokenizer, base_dir, answer, out, steps, lr, LoraConfig, get_peft_model,
                      AutoModelForCausalLM)
    finally:
        torch.set_num_threads(threads)


def _train(torch, tokenizer, base_dir, answer, out, steps, lr, LoraConfig, get_peft_model, AutoModelForCausalLM):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM",
                        modules_to_save=["input_layernorm", "post_attention_layernorm", "norm"])
    peft_model = get_peft_model(model, config)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                           tokenize=False)
    p = tokenizer(prompt, add_special_tokens=False).input_ids
    a = tokenizer(answer + "<|im_end|>", add_special_tokens=False).input_ids
    ids, labels = torch.tensor([p + a]), torch.tensor([[-100] * len(p) + a])
    optimizer = torch.optim.AdamW([q for q in peft_model.parameters() if q.requires_grad], lr=lr)
    peft_model.train()
    for _ in range(steps):
        loss = peft_model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.save_pretrained(out)
    (out / "tuneforge_training.json").write_text(json.dumps({"steps": steps, "final_loss": float(loss.detach())}))
    return out


class Server(LiveServer):
    """A real uvicorn on 127.0.0.1 (module-scoped here, unlike the root fixture)."""
