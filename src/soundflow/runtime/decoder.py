"""The LM side of streaming inference: one decision per chunk with the KV cache, greedy replies, bounded context.

After each chunk's `<audio_begin> <audio>xN <chunk_end>` the model decides between `<silent>` and
`<response>`; on `<response>` it writes `<emo_*> text <eos>` greedily, and listening goes on.

Two things keep it cheap and bounded:
- the decision's last token (`<silent>` or `<eos>`) is not run on its own: it enters the cache in the same
  forward pass as the next chunk (`pending`), so a chunk costs one LM call while listening;
- a FIFO backlog (chunks that queued up while a reply was written) is drained in one LM call (`drain`);
- context policy: when the cache holds `max_chunks` chunks, it is rebuilt from the prefix and the last
  `keep_chunks` chunks (their embeddings and decisions are kept), so memory stays flat on an endless
  stream and positions never leave the range the model was trained on (windows of `max_chunks`).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import torch

from soundflow import layout, precision


@dataclass(frozen=True)
class TokenIds:
    silent: int
    response: int
    eos: int
    audio_begin: int
    audio: int
    chunk_end: int
    emotions: dict[int, str]

    @classmethod
    def from_tokenizer(cls, tok) -> TokenIds:
        ids = tok.convert_tokens_to_ids
        return cls(ids(layout.SILENT), ids(layout.RESPONSE), ids(layout.EOS), ids(layout.AUDIO_BEGIN),
                   ids(layout.AUDIO), ids(layout.CHUNK_END),
                   {ids(layout.emotion_token(e)): e for e in layout.EMOTIONS})

    def chunk_tokens(self, frames_per_chunk: int = layout.FRAMES_PER_CHUNK) -> list[int]:
        return [self.audio_begin] + [self.audio] * frames_per_chunk + [self.chunk_end]


def prefix_ids(tok, lang: str, instruction: str) -> list[int]:
    head = tok.convert_tokens_to_ids([layout.ONLINE, layout.lang_token(lang), layout.INSTR])
    return head + tok(instruction, add_special_tokens=False)["input_ids"]


@dataclass
class Decision:
    action: str  # "silent" | "respond"
    tokens: list[int]  # the decision as it enters the context: [<silent>] or [<response>, <emo>, ..., <eos>]
    text: str = ""
    emotion: str = ""
    decided_at: float = 0.0  # perf_counter when <silent> vs <response> was known (before the reply)
    drained: bool = False  # a stale chunk flushed into the cache with an implied <silent> (FIFO backlog)


class ChunkDecoder:
    """Decides chunk after chunk for one stream; `step` takes the chunk's embeddings [1, n, H]."""

    def __init__(self, model, tokenizer, prefix: list[int], max_reply_tokens: int = 48,
                 max_chunks: int = 30, keep_chunks: int = 15):
        if not 0 < keep_chunks < max_chunks:
            raise ValueError(f"need 0 < keep_chunks < max_chunks, got {keep_chunks} and {max_chunks}")
        self.model, self.tok = model, tokenizer
        self.ids = TokenIds.from_tokenizer(tokenizer)
        self.max_reply_tokens, self.max_chunks, self.keep_chunks = max_reply_tokens, max_chunks, keep_chunks
        self.prefix_embeds = model.embed_chunk(prefix)
        # the control tokens every chunk feeds back (<silent>, <eos>, <response>): looked up once, not per chunk
        self._control = {t: model.embed_chunk([t]) for t in (self.ids.silent, self.ids.eos, self.ids.response)}
        self.history: deque[tuple[torch.Tensor, list[int]]] = deque(maxlen=max_chunks)  # (chunk embeds, decision)
        self.rebuilds = 0
        self._reset_cache(self.prefix_embeds)

    def _reset_cache(self, embeds: torch.Tensor) -> None:
        self.cache = self.model.new_cache()
        self.pending: list[int] = []
        self.chunks_in_cache = 0
        self.model.prefill(embeds, self.cache)

    def cache_tokens(self) -> int:
        return self.cache.get_seq_length()

    def _rebuild(self) -> None:
        """Restart the cache from the prefix and the last keep_chunks chunks (the last decision token stays pending)."""
        kept = list(self.history)[-self.keep_chunks:]
        parts = [self.prefix_embeds]
        for chunk_embeds, decision in kept:
            parts += [chunk_embeds, self.model.embed_chunk(decision)]
        pending = kept[-1][1][-1:]
        embeds = torch.cat(parts, dim=1)[:, :-1]  # all but the pending token
        self._reset_cache(embeds)
        self.pending, self.chunks_in_cache = pending, len(kept)
        self.rebuilds += 1

    def _step_logits(self, embeds: torch.Tensor) -> torch.Tensor:
        if self.pending:
            embeds = torch.cat([self._control[t] for t in self.pending] + [embeds], dim=1)
        self.pending = []
        return self.model.prefill(embeds, self.cache)[0, -1]

    @torch.no_grad()
    def step(self, chunk_embeds: torch.Tensor) -> Decision:
        """Add one chunk to the context and decide on it (and write the reply on <response>)."""
        return self.drain([chunk_embeds])[-1]

    @torch.no_grad()
    def drain(self, chunks: list[torch.Tensor]) -> list[Decision]:
        """Drain-on-trigger (the paper's Algorithm 2): every queued chunk enters the cache in ONE LM call,
        the older ones each followed by an implied <silent>, and the model decides on the newest only.
        A backlog longer than the context keeps goes to the history only (a rebuild would evict it anyway)."""
        stale, newest = chunks[:-1], chunks[-1]
        room = self.max_chunks - self.keep_chunks
        if len(stale) >= room:
            cut = len(stale) - room + 1
            self.history.extend((e, [self.ids.silent]) for e in stale[:cut])
            stale = stale[cut:]
            self._rebuild()
        elif self.chunks_in_cache + len(stale) + 1 > self.max_chunks:
            self._rebuild()
        silent = self._control[self.ids.silent]
        parts = [p for e in stale for p in (e, silent)] + [newest]
        logits = self._step_logits(torch.cat(parts, dim=1))
        self.chunks_in_cache += len(stale) + 1
        self.history.extend((e, [self.ids.silent]) for e in stale)
        decided_at = time.perf_counter()
        if logits[self.ids.response] <= logits[self.ids.silent]:
            decision = Decision("silent", [self.ids.silent])
        else:
            decision = self._reply(self._step_logits(self._control[self.ids.response]))
        decision.decided_at = decided_at
        self.pending = decision.tokens[-1:]
        self.history.append((newest, decision.tokens))
        skipped = len(chunks) - 1
        stale_decisions = [Decision("silent", [self.ids.silent], decided_at=decided_at, drained=True) for _ in range(skipped)]
        return stale_decisions + [decision]

    def _reply(self, logits: torch.Tensor) -> Decision:
        tokens = greedy_reply(self.model, self.cache, logits, self.ids.eos, self.max_reply_tokens)
        text, emotion = reply_text(tokens, self.ids, self.tok)
        return Decision("respond", [self.ids.response] + tokens, text, emotion)


PROBE_PREFIX = 20  # embeddings of the instruction prefix in a simulated session


def session_embeds(model, chunks: int) -> torch.Tensor:
    """Random embeddings [1, PROBE_PREFIX + chunks * (N + 2), H] at the scale of the model's own: the input of
    lm_session_seconds, whose cost (not its decisions) is what gets measured."""
    table = model.get_input_embeddings().weight.detach()
    shape = (1, PROBE_PREFIX + chunks * (layout.FRAMES_PER_CHUNK + 2), table.shape[1])
    return table.float().std() * torch.randn(shape, generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def lm_session_seconds(model, embeds: torch.Tensor, chunks: int, reply_tokens: int) -> tuple[float, float]:
    """(listening, replying) seconds of the LM's share of a short session, in the caller's autocast: an
    instruction prefix (untimed), `chunks` listening steps of one chunk's width with the KV cache growing as in
    a session, then `reply_tokens` single-token steps. `embeds` come from session_embeds."""
    width = layout.FRAMES_PER_CHUNK + 2
    cache = model.new_cache()
    model.prefill(embeds[:, :PROBE_PREFIX], cache)
    start = time.perf_counter()
    for begin in range(PROBE_PREFIX, PROBE_PREFIX + chunks * width, width):
        model.prefill(embeds[:, begin:begin + width], cache)
    listened = time.perf_counter()
    for t in range(reply_tokens):
        model.prefill(embeds[:, t:t + 1], cache)
    return listened - start, time.perf_counter() - listened


def lm_bf16_speedup(model, chunks: int = 20, reply_tokens: int = 15) -> float:
    """The runtime probe (precision.resolve "runtime-<key>"): fp32 time / bf16-autocast time of
    lm_session_seconds. bf16 wins the wide listening steps of a large LM (SmolLM2-135M: 86 against 123 ms a
    chunk, one thread, AMD EPYC) but not single-token steps (71 against 66 ms;
    reports/arms/runtime_lm_precision.json), so both are in it."""
    embeds = session_embeds(model, chunks)
    return precision.bf16_speedup(lambda: lm_session_seconds(model, embeds, chunks, reply_tokens))


def greedy_reply(model, cache, logits: torch.Tensor, eos: int, max_tokens: int) -> list[int]:
    """Greedy tokens from `logits` until <eos>; every token but the final <eos> enters the cache. A reply
    cut at max_tokens gets an <eos>, so a context that goes on keeps the trained format."""
    tokens = []
    for _ in range(max_tokens):
        token = int(logits.argmax())
        tokens.append(token)
        if token == eos:
            return tokens
        logits = model.prefill(model.embed_chunk([token]), cache)[0, -1]
    return tokens + [eos]


def reply_text(tokens: list[int], ids: TokenIds, tok) -> tuple[str, str]:
    """`<emo_*> text <eos>` -> (text, emotion)."""
    emotion = ids.emotions.get(tokens[0], "") if tokens else ""
    body = [t for t in tokens if t != ids.eos and t not in ids.emotions]
    return tok.decode(body, skip_special_tokens=False, clean_up_tokenization_spaces=False), emotion


def chunk_embeddings(model, ids: TokenIds, frames: torch.Tensor, before: torch.Tensor | None = None) -> torch.Tensor:
    """Encoder frames of one chunk [1, N, d_enc] -> LM input embeddings of `<audio_begin> <audio>xN <chunk_end>`.
    `before`: the stream's frames before this chunk [1, T, d_enc], of which a conv projector reads the last
    `model.projector_context` (keep_past trims a running history to them)."""
    return model.embed_chunk(ids.chunk_tokens(frames.shape[1]), frames, keep_past(model, before))


def keep_past(model, before: torch.Tensor | None) -> torch.Tensor | None:
    """The last model.projector_context frames of `before` [1, T, d_enc] (None where the projector reads none)."""
    context = model.projector_context
    if not context or before is None or before.shape[1] == 0:
        return None
    return before[:, max(0, before.shape[1] - context):]


@torch.no_grad()
def decode_stream(model, tok, prefix: list[int], chunk_frames: torch.Tensor, max_reply_tokens: int = 48,
                  max_chunks: int = 10**9, keep_chunks: int = 1) -> list[dict]:
    """Precomputed frames [n_chunks, N, d_enc] -> one decision per chunk: {chunk, action, text, emotion}.

    The training report's decoder: same ChunkDecoder as a live session, without the audio front end.
    """
    decoder = ChunkDecoder(model, tok, prefix, max_reply_tokens, max_chunks, keep_chunks)
    stream = chunk_frames.reshape(1, -1, chunk_frames.shape[-1])
    n = chunk_frames.shape[1]
    events = []
    for c in range(chunk_frames.shape[0]):
        d = decoder.step(chunk_embeddings(model, decoder.ids, chunk_frames[c:c + 1], stream[:, :c * n]))
        events.append({"chunk": c, "action": d.action, "text": d.text, "emotion": d.emotion})
    return events
