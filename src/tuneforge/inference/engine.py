"""The generation engine: one thread, one queue, continuous batching over a base model and its adapters.

Requests are tokenized by the caller (the service, in a worker thread) and submitted here; the engine
thread admits them into the running batch of their base model between decode steps (prefill, then
merge into the shared KV cache), samples each row with its own parameters, detokenizes, applies stop
strings and streams events back through the request's sink. The event loop never runs a forward pass,
so the server stays responsive while generating. Cancelled requests (client gone) leave the batch at
the next step.

Nothing loads at construction: a base model's tokenizer loads on the first request that names it
(``info``), its weights on the first generation, its adapters on first use (``AdapterPool``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, fields

import torch

from tuneforge.errors import NotFound, ServerError, TuneforgeError
from tuneforge.inference.adapters import AdapterPool
from tuneforge.inference.base_info import BaseInfo, load_base_info, unloadable
from tuneforge.inference.batch import (
    Batch,
    Delta,
    Failure,
    Finish,
    GenerationRequest,
    RequestHandle,
    Row,
    left_pad,
)
from tuneforge.inference.onednn import use_onednn_linears
from tuneforge.inference.prefill import PrefixCache, prefill_groups
from tuneforge.inference.sampling import SamplerState, choose
from tuneforge.inference.tokens import Detokenizer, StopText

log = logging.getLogger("tuneforge.inference")

@dataclass
class EngineStats:
    requests_submitted: int = 0
    requests_finished: int = 0
    rows_cancelled: int = 0
    requests_failed: int = 0
    tokens_generated: int = 0
    prefills: int = 0
    prefix_tokens_reused: int = 0  # prompt tokens taken from the prefix cache instead of a prefill pass
    merges: int = 0  # admissions into a batch that was already decoding (continuous batching)
    decode_steps: int = 0
    decode_rows: int = 0  # sum of batch sizes over decode steps (/ decode_steps = mean batch)
    max_batch: int = 0
    adapter_loads: int = 0
    adapter_evictions: int = 0
    base_loads: int = 0
    onednn_linears: int = 0  # linear layers of loaded bases that run through oneDNN (inference/onednn.py)
    onednn_packed_linears: int = 0  # of those, layers whose weight is held in oneDNN's packed layout

    def snapshot(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class LoadedBase:
    info: BaseInfo
    pool: AdapterPool
    tokenizer: object  # the engine thread's own copy (tokenizers are not shared across threads)
    device: torch.device
    batch: Batch = field(default_factory=Batch)
    waiting: deque = field(default_factory=deque)
    prefixes: PrefixCache | None = None
    last_used: float = field(default_factory=time.monotonic)

    @property
    def busy(self) -> bool:
        return bool(self.batch.rows or self.waiting)


class Engine:
    def __init__(self, registry, *, max_batch_size: int = 32, max_adapters: int = 8, max_base_models: int = 2,
                 device: str = "auto", threads: int | None = None, batched_lora: bool = True,
                 prefill_tokens: int = 128, kv_headroom: bool = True, prefix_cache_mb: float = 64,
                 onednn: bool = True, onednn_packed: bool = True, fused_lora: bool = True):
        self.registry = registry
        self.max_batch_size = max(1, max_batch_size)
        self.max_adapters = max_adapters
        self.max_base_models = max(1, max_base_models)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.threads = threads
        self.batched_lora = batched_lora  # False: peft's per-adapter loop (kept for parity checks)
        self.fused_lora = fused_lora  # mixed-adapter decode steps through one fused kernel (False: batched matmuls)
        # Padded prompt tokens per prefill pass (0: every newcomer in one pass). Requests arriving together
        # are prefilled in groups, shortest prompts first, and each group's first tokens stream out as soon
        # as its pass ends, instead of everyone waiting for one pass over all the prompts.
        self.prefill_tokens = max(0, prefill_tokens)
        self.prefix_cache_bytes = int(max(0.0, prefix_cache_mb) * 2**20)  # per base model; 0: off
        self.kv_headroom = kv_headroom  # decode steps write the KV cache in place (False: concatenate, as before)
        self.onednn = onednn  # float32 CPU linears through oneDNN (inference/onednn.py); False: F.linear
        self.onednn_packed = onednn_packed  # and their weights packed: faster batches, same memory
        self.stats = EngineStats()
        self._infos: dict[str, BaseInfo] = {}
        self._info_lock = threading.Lock()
        self._bases: OrderedDict[str, LoadedBase] = OrderedDict()
        self._inbox: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = False
        self._admitting: list[Row] = []

    # -- request side (any thread) ----------------------------------------------------------------
    def info(self, base_model: str) -> BaseInfo:
        """Tokenizer and limits of a base model, loaded once (blocking; call from a worker thread)."""
        with self._info_lock:
            if base_model not in self._infos:
                try:
                    self._infos[base_model] = self._load_info(base_model)
                except OSError as exc:  # hub ids offline, deleted folders, unreadable files
                    log.warning("cannot load %s: %s", base_model, exc)
                    raise NotFound(f"The model '{base_model}' is registered but its files could not be loaded "
                                   f"({type(exc).__name__}); check the server log.", param="model",
                                   code="model_not_found") from None
                except TuneforgeError:
                    raise
                except Exception as exc:  # corrupt weights, configs transformers rejects, ...
                    log.warning("cannot load %s: %r", base_model, exc)
                    raise unloadable(base_model, exc) from None
            return self._infos[base_model]

    def _load_info(self, name: str) -> BaseInfo:
        return load_base_info(name, self.registry.materialize(name))

    def submit(self, request: GenerationRequest, sink) -> RequestHandle:
        """Queue a request; ``sink(event)`` is called from the engine thread for every event."""
        self._ensure_started()
        handle = RequestHandle(request, sink)
        self.stats.requests_submitted += 1
        if self._stopping:  # the engine thread is gone or going: nothing would answer
            self._fail(handle, ServerError("The server is shutting down; the request was not started."))
            return handle
        self._inbox.put(handle)
        return handle

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta | Finish]:
        """Events of one request on the caller's event loop; closing the iterator cancels the request."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        handle = self.submit(request, lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev))
        finished = 0
        try:
            while finished < request.n:
                event = await events.get()
                if isinstance(event, Failure):
                    raise event.error
                if isinstance(event, Finish):
                    finished += 1
                yield event
        finally:
            handle.cancel()  # a no-op once every choice finished

    def generate(self, request: GenerationRequest, timeout: float | None = None) -> Iterator[Delta | Finish]:
        """Blocking twin of ``stream`` for code without an event loop (CLI tools, benchmarks, retrieval)."""
        events: queue.Queue = queue.Queue()
        handle = self.submit(request, events.put)
        finished = 0
        try:
            while finished < request.n:
                event = events.get(timeout=timeout)
                if isinstance(event, Failure):
                    raise event.error
                if isinstance(event, Finish):
                    finished += 1
                yield event
        finally:
            handle.cancel()

    def loaded(self) -> dict:
        """Which bases and adapters are in memory (for stats and tests)."""
        return {name: {"adapters": base.pool.loaded, "batch": len(base.batch)} for name, base in self._bases.items()}

    def shutdown(self, timeout: float = 30) -> None:
        self._stopping = True
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._fail_pending()  # whatever was submitted while the thread was finishing

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tuneforge-engine", daemon=True)
                self._thread.start()

    # -- engine thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        if self.threads:
            # Many small ops per step: with more threads than free cores (training running beside us)
            # every op waits for a descheduled thread, and decoding slows down 5-20x.
            torch.set_num_threads(self.threads)
        while not self._stopping:
            busy = any(b.busy for b in self._bases.values())
            try:
                items = [self._inbox.get(block=not busy)]
            except queue.Empty:
                items = []
            while True:
                try:
                    items.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            for handle in items:
                if handle is None:
                    continue
                self._accept(handle)
            for base in list(self._bases.values()):
                if base.busy:
                    self._step_safely(base)
        self._fail_pending()

    def _fail_pending(self) -> None:
        """Shutdown: every request still waiting gets a failure, so no caller blocks on events that will
        never come (a worker thread stuck in ``generate`` would keep the process from exiting)."""
        handles = [row.handle for base in self._bases.values() for row in base.batch.rows]
        handles += [h for base in self._bases.values() for h in base.waiting]
        handles += [row.handle for row in self._admitting]
        while True:
            try:
                handles.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        error = ServerError("The server is shutting down; the request was not finished.")
        for handle in {id(h): h for h in handles if h is not None}.values():
            if not handle.cancelled:
                self._fail(handle, error)

    def _accept(self, handle: RequestHandle) -> None:
        if handle.cancelled:
            return
        try:
            base = self._base(handle.request.base_model)
        except Exception as exc:
            log.exception("loading base model %s failed", handle.request.base_model)
            self._fail(handle, exc if isinstance(exc, TuneforgeError) else unloadable(handle.request.base_model, exc))
            return
        if handle.request.priority <= 0 and base.waiting and base.waiting[-1].request.priority > 0:
            # an interactive request goes ahead of queued background work (eval runs, batches)
            first_background = next(i for i, h in enumerate(base.waiting) if h.request.priority > 0)
            base.waiting.insert(first_background, handle)
        else:
            base.waiting.append(handle)

    def _base(self, name: str) -> LoadedBase:
        base = self._bases.get(name)
        if base is not None:
            self._bases.move_to_end(name)
            return base
        for other in list(self._bases.values()):
            if len(self._bases) < self.max_base_models:
                break
            if not other.busy:
                self._unload_base(other)
        info = self.info(name)
        started = time.perf_counter()
        model = self.registry.load_model(name, dtype=self.dtype, device=str(self.device))
        model.eval()
        if self.onednn and self.device.type == "cpu":
            switched = use_onednn_linears(model, packed=self.onednn_packed)
            self.stats.onednn_linears += switched.linears
            self.stats.onednn_packed_linears += switched.packed
        self.stats.base_loads += 1
        log.info("loaded base model %s on %s in %.1f s", name, self.device, time.perf_counter() - started)
        base = LoadedBase(info, AdapterPool(model, self.max_adapters, self.stats, self.fused_lora), copy.deepcopy(info.tokenizer),
                          self.device, prefixes=PrefixCache(self.prefix_cache_bytes) if self.prefix_cache_bytes else None)
        self._bases[name] = base
        return base

    def _unload_base(self, base: LoadedBase) -> None:
        import gc

        self._bases.pop(base.info.name, None)
        base.pool.clear()
        base.pool.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        log.info("unloaded base model %s", base.info.name)

    def _step_safely(self, base: LoadedBase) -> None:
        try:
            with torch.inference_mode():
                self._step(base)
        except Exception as exc:
            log.exception("generation failed on %s", base.info.name)
            error = ServerError(f"Generation failed: {type(exc).__name__}: {exc}")
            rows = base.batch.rows + self._admitting
            for handle in {id(r.handle): r.handle for r in rows}.values():
                self._fail(handle, error)
            for row in rows:
                base.pool.release(row.adapter)
            base.batch = Batch()
        finally:
            self._admitting = []

    def _fail(self, handle: RequestHandle, error: Exception) -> None:
        self.stats.requests_failed += 1
        handle.cancel()
        handle.emit(Failure(error))

    def _step(self, base: LoadedBase) -> None:
        base.last_used = time.monotonic()
        batch = base.batch
        keep = [i for i, row in enumerate(batch.rows) if not row.handle.cancelled]
        if len(keep) < len(batch.rows):
            for row in batch.rows:
                if row.handle.cancelled:
                    self.stats.rows_cancelled += 1
                    base.pool.release(row.adapter)
            batch.keep(keep)
        self._admit(base)
        if batch.rows:
            self._decode(base)

    def _admit(self, base: LoadedBase) -> None:
        batch = base.batch
        if batch.rows and not Batch.mergeable(batch.cache):
            return  # static batching for caches we cannot merge: wait for the batch to drain
        room = self.max_batch_size - len(batch)
        admitted: list[RequestHandle] = []
        while base.waiting:
            handle = base.waiting[0]
            if handle.cancelled:
                base.waiting.popleft()
                continue
            if handle.request.n > room and (admitted or batch.rows):
                break
            base.waiting.popleft()
            admitted.append(handle)
            room -= handle.request.n
        if not admitted:
            return
        rows: list[Row] = []
        for handle in admitted:
            try:
                rows.extend(self._make_rows(base, handle))
            except Exception as exc:
                self._fail(handle, exc)
        groups = prefill_groups(rows, self.prefill_tokens)
        for g, group in enumerate(groups):
            pending = [row for later in groups[g:] for row in later]
            if batch.rows and not Batch.mergeable(batch.cache):
                # the first pass made a cache we cannot merge into: the rest wait for the batch to drain
                for handle in reversed({id(r.handle): r.handle for r in pending}.values()):
                    base.waiting.appendleft(handle)
                for row in pending:
                    base.pool.release(row.adapter)
                break
            self._admitting = pending  # failed with the batch if a prefill raises (not once merged)
            self._prefill(base, group)
        self._admitting = []

    def _prefill(self, base: LoadedBase, rows: list[Row]) -> None:
        batch = base.batch
        for row in rows:
            if row.handle.cancelled:
                base.pool.release(row.adapter)
        rows = [r for r in rows if not r.handle.cancelled]
        if not rows:
            return
        prompts = [r.handle.request.prompt_ids for r in rows]
        adapters = [r.adapter for r in rows]
        reuse, entries = base.prefixes.plan(adapters, prompts) if base.prefixes is not None else (0, None)
        pad = base.info.tokenizer.pad_token_id
        if reuse:  # the prompts' first `reuse` tokens come from the prefix cache; prefill the rest
            ids, tail, positions = left_pad([p[reuse:] for p in prompts], pad, base.device)
            mask = torch.cat([torch.ones((len(rows), reuse), dtype=tail.dtype, device=base.device), tail], dim=1)
            out = self._forward(base, rows, input_ids=ids, attention_mask=mask, position_ids=positions + reuse,
                                past_key_values=PrefixCache.past(entries, reuse), logits_to_keep=1)
            self.stats.prefix_tokens_reused += reuse * len(rows)
        else:
            ids, mask, positions = left_pad(prompts, pad, base.device)
            out = self._forward(base, rows, input_ids=ids, attention_mask=mask, position_ids=positions,
                                logits_to_keep=1)
        self.stats.prefills += 1
        if base.prefixes is not None and Batch.mergeable(out.past_key_values):
            base.prefixes.store(adapters, prompts, out.past_key_values, mask)
        logits = out.logits[:, -1, :].float().cpu()
        for r, row in enumerate(rows):
            self._take(base, row, logits[r])
        if batch.rows:
            self.stats.merges += 1
        if self.kv_headroom:
            Batch.give_room(out.past_key_values)
        batch.add(rows, out.past_key_values, mask)
        self._drop_finished(base)

    def _make_rows(self, base: LoadedBase, handle: RequestHandle) -> list[Row]:
        request = handle.request
        adapter = base.pool.acquire(request.adapter_dir)
        rows = []
        for i in range(request.n):
            if i:
                adapter = base.pool.acquire(request.adapter_dir)
            seed = None if request.params.seed is None else request.params.seed + i
            rows.append(Row(handle, i, adapter, SamplerState.create(request.params, seed, base.info.vocab_size),
                            Detokenizer(base.tokenizer), StopText(list(request.params.stop)),
                            pos=len(request.prompt_ids)))
        return rows

    def _decode(self, base: LoadedBase) -> None:
        batch = base.batch
        rows = batch.rows
        device = base.device
        ids = torch.tensor([[r.next_token] for r in rows], dtype=torch.long, device=device)
        positions = torch.tensor([[r.pos] for r in rows], dtype=torch.long, device=device)
        batch.mask = torch.cat([batch.mask, torch.ones((len(rows), 1), dtype=batch.mask.dtype,
                                                        device=device)], dim=1)
        out = self._forward(base, rows, input_ids=ids, attention_mask=batch.mask, position_ids=positions,
                            past_key_values=batch.cache)
        batch.cache = out.past_key_values
        self.stats.decode_steps += 1
        self.stats.decode_rows += len(rows)
        self.stats.max_batch = max(self.stats.max_batch, len(rows))
        logits = out.logits[:, -1, :].float().cpu()
        for r, row in enumerate(rows):
            row.pos += 1
            self._take(base, row, logits[r])
        self._drop_finished(base)

    def _forward(self, base: LoadedBase, rows: list[Row], **kwargs):
        pool = base.pool
        if not pool.is_peft:
            return pool.model(use_cache=True, **kwargs)
        # Per-row adapter routing: rows of different adapters (and the bare base) share this pass.
        names = [r.adapter for r in rows]
        if not self.batched_lora:
            return pool.model(use_cache=True, adapter_names=names, **kwargs)
        with pool.router.routing(names, base.device):
            return pool.model.get_base_model()(use_cache=True, **kwargs)

    def _drop_finished(self, base: LoadedBase) -> None:
        batch = base.batch
        keep = [i for i, row in enumerate(batch.rows) if not row.finished]
        if len(keep) < len(batch.rows):
            for row in batch.rows:
                if row.finished:
                    base.pool.release(row.adapter)
            batch.keep(keep)

    # -- one sampled token --------------------------------------------------------------------------
    def _take(self, base: LoadedBase, row: Row, logits: torch.Tensor) -> None:
        params = row.params
        remaining = params.max_tokens - row.generated
        token, lp = choose(logits, row.sampler, base.info.table, base.info.eos_ids, remaining)
        self.stats.tokens_generated += 1
        if token in base.info.eos_ids:
            self._finish(row, "stop")
            return
        row.generated += 1
        delta = row.detok.add(token)
        if lp is not None:
            row.pending_lp.append((lp, len(row.detok.text)))
        text, stopped = row.stop.push(delta)
        if stopped:
            self._finish(row, "stop", text, hit=True)
        elif row.generated >= params.max_tokens:
            # A constrained answer the grammar closed within the budget is complete, not cut.
            grammar = row.sampler.grammar
            self._finish(row, "stop" if grammar is not None and grammar.complete else "length", text)
        else:
            if text:
                row.handle.emit(Delta(row.index, text, row.take_logprobs(row.stop.released)))
            row.next_token = token

    def _finish(self, row: Row, reason: str, text: str = "", hit: bool = False) -> None:
        row.finished = True
        if not hit:  # release what was held back for a possible stop string (or a partial character)
            more, hit = row.stop.push(row.detok.flush(), final=True)
            text += more
            reason = "stop" if hit else reason
        logprobs = row.take_logprobs(row.stop.released, final=True)
        if text or logprobs:
            row.handle.emit(Delta(row.index, text, logprobs))
        row.handle.emit(Finish(row.index, reason, row.generated, row.stop.text, list(row.released_lp)))
        done = getattr(row.handle, "finished_rows", 0) + 1
        row.handle.finished_rows = done
        if done == row.handle.request.n:
            self.stats.requests_finished += 1
