"""Offline work (eval runs, batches) yields to interactive requests: a background request waiting for a
batch slot is admitted after an interactive one that arrived later."""

from __future__ import annotations

import threading

from evals_support import TINY, register_tiny


def test_interactive_requests_overtake_waiting_background_work(make_settings, tiny_model_dir):
    from tuneforge.db.session import Database
    from tuneforge.inference.batch import Failure, Finish, GenerationRequest
    from tuneforge.inference.engine import Engine
    from tuneforge.inference.sampling import SamplingParams
    from tuneforge.models.registry import ModelRegistry

    settings = make_settings()
    register_tiny(settings, tiny_model_dir)
    db = Database(settings.resolved_database_url)
    engine = Engine(ModelRegistry(settings, db), max_batch_size=1, device="cpu")  # one row at a time
    try:
        info = engine.info(TINY)
        prompt = info.tokenizer("Hello there", add_special_tokens=False).input_ids
        no_eos = {t: -100.0 for t in info.eos_ids}
        order: list[str] = []
        done = threading.Event()

        def sink(name):
            def on_event(event):
                if isinstance(event, Finish | Failure):
                    order.append(name)
                    if len(order) == 5:
                        done.set()
            return on_event

        def request(priority):
            return GenerationRequest(TINY, None, prompt, SamplingParams(max_tokens=8, temperature=0,
                                                                        logit_bias=no_eos), priority=priority)

        engine.generate(request(0), timeout=120).__next__()  # weights loaded before the race
        for name in ("bg1", "bg2", "bg3", "bg4"):
            engine.submit(request(1), sink(name))
        engine.submit(request(0), sink("chat"))
        assert done.wait(120), order
        # at most the background row already admitted finishes first; the chat never waits behind the rest
        assert order.index("chat") <= 1, order
        assert [n for n in order if n != "chat"] == ["bg1", "bg2", "bg3", "bg4"]
    finally:
        engine.shutdown()
        db.dispose()
