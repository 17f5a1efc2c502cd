"""StreamingSession: feed PCM of any length, get one event per 400 ms chunk (DESIGN section 7).

Schedulers:
- "sync": `feed` encodes and decides every complete chunk in the caller's thread, reply included, so
  audio that arrives while a reply is written waits (buffered) until the reply is done.
- "fifo" (the paper's Algorithm 2): an encoder thread turns chunks into embeddings as they arrive and
  never waits for the decoder; a decoder thread, whenever its last token was <silent> or <eos>, drains
  every queued chunk into the KV cache in one LM call and decides on the newest (the older ones get an
  implied <silent>, flagged `drained`); while replying it keeps writing. Nothing is dropped: every chunk
  fed enters the cache and gets exactly one event, in order. With no backlog (each chunk decided
  before the next arrives) both schedulers make exactly the same calls and decisions.

Every event carries its timing (perf_counter seconds): when its audio had fully arrived, when the listener
had encoded it, when its decision was available, when its reply (if any) was finished; the latency benchmark
reads them.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from soundflow.precision import autocast
from soundflow.runtime.bundle import Bundle
from soundflow.runtime.decoder import ChunkDecoder, prefix_ids
from soundflow.runtime.frontend import ChunkEncoder

SCHEDULERS = ("sync", "fifo")
_STOP = object()


@dataclass
class Event:
    chunk: int
    time_s: float  # stream time at the end of the chunk
    action: str  # "silent" | "respond"
    text: str
    emotion: str
    arrived: float  # perf_counter: the chunk's last sample was there
    encoded: float  # perf_counter: its embeddings were ready (the listener had taken it in)
    decided: float  # perf_counter: its decision was available
    finished: float  # perf_counter: its reply was finished (= decided when silent)
    drained: bool = False  # FIFO backlog chunk: into the cache with an implied <silent>, no decision of its own

    def public(self) -> dict:
        """What a listener prints or writes to JSONL (no clock values)."""
        return {"chunk": self.chunk, "time_s": round(self.time_s, 3), "action": self.action,
                "text": self.text, "emotion": self.emotion, "drained": self.drained}


class StreamingSession:
    """One always-on listener over one audio stream."""

    def __init__(self, bundle: Bundle, instruction: str | None = None, lang: str | None = None,
                 scheduler: str = "sync", encoder: Callable[[np.ndarray], object] | None = None):
        """`encoder`: PCM chunk -> LM input embeddings; default a live ChunkEncoder (frontend.EncodedStream
        when the whole recording was encoded beforehand)."""
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got '{scheduler}'")
        s = bundle.settings
        self.settings, self.scheduler = s, scheduler
        prefix = prefix_ids(bundle.tokenizer, lang or s.default_lang, instruction or s.default_instruction)
        self.encoder = ChunkEncoder(bundle) if encoder is None else encoder
        # the LM runs in the bundle's lm_precision; autocast is per thread, so every LM call enters it
        self.lm_precision = bundle.lm_precision
        with autocast(self.lm_precision):
            self.decoder = ChunkDecoder(bundle.model, bundle.tokenizer, prefix, s.max_reply_tokens,
                                        s.max_context_chunks, s.keep_context_chunks)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.chunks_fed = 0
        self._delivered = 0  # events handed to the caller
        self.closed = False
        self._events: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        if scheduler == "fifo":
            self._pcm: queue.Queue = queue.Queue()
            self._embeds: queue.Queue = queue.Queue()
            self._threads = [threading.Thread(target=self._guard, args=(f,), daemon=True, name=f.__name__)
                             for f in (self._encode_loop, self._decode_loop)]
            for t in self._threads:
                t.start()

    # ----- public API ------------------------------------------------------------------------------------

    def feed(self, pcm: np.ndarray, arrived: float | None = None) -> list[Event]:
        """Append mono float PCM at the bundle's rate; returns the events that are ready now.

        `arrived` is when the last of these samples was there (default: now); a real-time driver
        passes the sample clock, so time spent blocked in a sync reply counts as latency."""
        if self.closed:
            raise RuntimeError("feed() after close()")
        pcm = np.asarray(pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"feed() takes mono PCM (1-D), got shape {pcm.shape}")
        arrived = time.perf_counter() if arrived is None else arrived
        self.buffer = np.concatenate([self.buffer, pcm])
        n = self.settings.chunk_samples
        while self.buffer.size >= n:
            chunk, self.buffer = self.buffer[:n], self.buffer[n:]
            self._submit(chunk, arrived)
        return self._ready()

    def wait(self) -> list[Event]:
        """Block until every chunk fed so far has its event; returns the events not yet handed out."""
        out = []
        while self._delivered < self.chunks_fed:
            self._raise_pending()
            try:
                out.append(self._events.get(timeout=0.05))
            except queue.Empty:
                continue
            self._delivered += 1
        return out

    def close(self) -> list[Event]:
        """End of stream: a partial last chunk is padded with silence; waits for every event."""
        if self.closed:
            return self._ready()
        if self.buffer.size:
            pad = np.zeros(self.settings.chunk_samples - self.buffer.size, dtype=np.float32)
            self._submit(np.concatenate([self.buffer, pad]), time.perf_counter())
            self.buffer = self.buffer[:0]
        self.closed = True
        if self.scheduler == "fifo":
            self._pcm.put(_STOP)
            for t in self._threads:
                t.join()
        self._raise_pending()
        return self._ready()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.closed:
            self.close()

    # ----- scheduling ------------------------------------------------------------------------------------

    def _submit(self, chunk: np.ndarray, arrived: float) -> None:
        index = self.chunks_fed
        self.chunks_fed += 1
        if self.scheduler == "sync":
            embeds = self.encoder(chunk)
            self._decide([(index, embeds, arrived, time.perf_counter())])
        else:
            self._raise_pending()
            self._pcm.put((index, chunk, arrived))

    def _decide(self, items: list[tuple[int, object, float, float]]) -> None:
        """items: (chunk index, embeddings, arrival, encoded) of consecutive chunks; decides on the newest."""
        with autocast(self.lm_precision):
            decisions = self.decoder.drain([embeds for _, embeds, _, _ in items])
        done = time.perf_counter()
        for (index, _, arrived, encoded), d in zip(items, decisions):
            decided = max(d.decided_at, arrived)
            self._events.put(Event(index, (index + 1) * self.settings.chunk_seconds, d.action, d.text, d.emotion,
                                   arrived, max(encoded, arrived), decided,
                                   done if d.action == "respond" else decided, d.drained))

    def _encode_loop(self) -> None:
        while (item := self._pcm.get()) is not _STOP:
            index, chunk, arrived = item
            embeds = self.encoder(chunk)
            self._embeds.put((index, embeds, arrived, time.perf_counter()))
        self._embeds.put(_STOP)

    def _decode_loop(self) -> None:
        stop = False
        while not stop:
            items = [self._embeds.get()]  # wait for one chunk, then take the whole backlog
            while True:
                try:
                    items.append(self._embeds.get_nowait())
                except queue.Empty:
                    break
            if _STOP in items:
                stop, items = True, items[:items.index(_STOP)]
            if items:
                self._decide(items)

    def _guard(self, loop) -> None:
        """Run a worker loop; an error stops the session and is raised to the caller by feed/close."""
        try:
            loop()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = err
            self._embeds.put(_STOP)

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"streaming {self.scheduler} worker failed: {self._error}") from self._error

    def _ready(self) -> list[Event]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                self._delivered += len(out)
                return out


def run_stream(bundle: Bundle, audio: np.ndarray, instruction: str | None = None, lang: str | None = None,
               scheduler: str = "sync", realtime: bool = False, speed: float = 1.0, block_s: float = 0.1,
               on_event: Callable[[Event], None] | None = None, encoder=None) -> list[Event]:
    """Feed a whole stream in `block_s` blocks (a microphone's buffer) and return every event in chunk order;
    `on_event` sees each event as soon as it is out.

    realtime: blocks arrive on the sample clock, `speed` times faster than real time (a stress setting
    that stands in for a model that decodes `speed` times slower). Otherwise as fast as possible in
    lockstep: the next chunk goes in when the previous one is decided, the fastest feed the listener
    keeps up with (so there is no backlog, and sync and FIFO decide alike). `encoder`: StreamingSession's."""
    session = StreamingSession(bundle, instruction, lang, scheduler, encoder)
    block = max(1, round(block_s * bundle.settings.sample_rate))
    events = []

    def take(ready):
        for event in ready:
            if on_event:
                on_event(event)
            events.append(event)

    start = time.perf_counter()
    for begin in range(0, audio.size, block):
        piece = audio[begin:begin + block]
        due = start + (begin + piece.size) / bundle.settings.sample_rate / speed  # the sample clock
        if realtime:
            time.sleep(max(0.0, due - time.perf_counter()))
        take(session.feed(piece, arrived=due if realtime else None))
        if not realtime:
            take(session.wait())
    take(session.close())
    return sorted(events, key=lambda e: e.chunk)
