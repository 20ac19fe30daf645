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
