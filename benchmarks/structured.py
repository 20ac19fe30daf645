"""Decode speed with a strict JSON-schema constraint vs unconstrained, on SmolLM2-135M-Instruct, in one
process on the generation engine itself (not a test).

Both sides generate from the same prompts with the same seeds, end-of-sequence suppressed by
``logit_bias`` so unconstrained rows run to ``--tokens``; the constrained rows follow a schema with a long
free-text field, so they decode most of ``--tokens`` too (they end once the object is closed), with the
grammar mask (llguidance) computed and applied at every step and the budget-closing walk in the last
steps. tok/s = generated tokens / wall time of each side. Runs alternate (A B A B ...) so machine noise hits both
sides alike. Prints tokens/s of each side and ``structured_vs_unconstrained`` (goal >= 0.9), at batch 1
and with ``--batch`` concurrent rows.

    .venv/bin/python benchmarks/structured.py [--tokens 128] [--rounds 3] [--batch 4] [--models-cache ~/.tuneforge/models]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

MODEL = "smollm2-135m-instruct"
PROMPTS = ["Tell me a long story about a dragon, as JSON.", "Describe the ocean in JSON.",
           "Write a poem about autumn as a JSON object.", "Explain how a bicycle works, in JSON."]
SCHEMA = {"type": "object", "properties": {
    "title": {"type": "string", "maxLength": 40},
    "story": {"type": "string"},
    "words": {"type": "integer"}},
    "required": ["title", "story", "words"], "additionalProperties": False}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models-cache", default="~/.tuneforge/models")
    args = ap.parse_args()

    from tuneforge.db.session import Database
    from tuneforge.inference import grammar as G
    from tuneforge.inference.batch import Finish, GenerationRequest
    from tuneforge.inference.engine import Engine
    from tuneforge.inference.prompts import render_chat
    from tuneforge.inference.sampling import SamplingParams
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.settings import Settings

    # A scratch data dir; converted base weights are reused from the usual models folder.
    settings = Settings(data_dir=tempfile.mkdtemp(prefix="tf-bench-"),
                        models_cache_dir=Path(args.models_cache).expanduser())
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    engine = Engine(ModelRegistry(settings, db), threads=args.threads)
    info = engine.info(MODEL)
    constraint = G.json_schema(SCHEMA, G.tokenizer_for(info.tokenizer, info.vocab_size, info.eos_ids))
    no_eos = {t: -100.0 for t in info.eos_ids}
    prompts = [render_chat(info.tokenizer, [{"role": "user", "content": p}], None) for p in PROMPTS]

    def run(constrained: bool, batch: int, seed: int) -> tuple[int, float]:
        params = SamplingParams(max_tokens=args.tokens, temperature=0.7, seed=seed, logit_bias=no_eos,
                                constraint=constraint if constrained else None)
        requests = [GenerationRequest(MODEL, None, prompts[(seed + i) % len(prompts)], params) for i in range(batch)]
        started = time.perf_counter()
        handles, done = [], []
        import queue

        q: queue.Queue = queue.Queue()
        for request in requests:
            handles.append(engine.submit(request, q.put))
        while len(done) < batch:
            event = q.get()
            if isinstance(event, Finish):
                done.append(event)
        return sum(f.completion_tokens for f in done), time.perf_counter() - started

    run(False, 1, 0)  # load weights, warm up
    run(True, 1, 0)
    for batch in (1, args.batch):
        totals = {False: [0, 0.0], True: [0, 0.0]}
        for r in range(args.rounds):
            for constrained in (False, True):
                tokens, seconds = run(constrained, batch, r)
                totals[constrained][0] += tokens
                totals[constrained][1] += seconds
        free = totals[False][0] / totals[False][1]
        fixed = totals[True][0] / totals[True][1]
        print(f"batch {batch}: unconstrained {free:.1f} tok/s ({totals[False][0]} tokens), json_schema "
              f"{fixed:.1f} tok/s ({totals[True][0]} tokens)")
        print(f"structured_vs_unconstrained_batch{batch}: {fixed / free:.3f}")
    engine.shutdown()
    db.dispose()


if __name__ == "__main__":
    main()
