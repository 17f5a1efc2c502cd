"""The paper's TTS round-trip check: every synthesized clip is transcribed by an ASR system and kept
if its WER against the text is at most `max_wer` (0.10); otherwise it is synthesized again by another
voice, up to `retries` (2) times; a clip that never passes drops every item that needs it (the paper
discards the whole multi-turn instance).

The ASR is injected (`transcribe(audio) -> text`); the corpus uses the Whisper peer
(soundflow.bench.peers.WhisperPeer: tiny.en, English only, so Mandarin clips pass unchecked). A retry
takes another voice of the same language and split role (held-out voices stay held out), of the same
engine where there is one, with the style that voice always gets for that text (as PlanContext.say
draws it: a sentence said twice by a voice stays one cached clip). WER is the benchmark's
(soundflow.bench.asr_metrics.wer: both sides normalised).
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from soundflow.audio import read_audio
from soundflow.data import tts
from soundflow.data.corpora import sources as imported
from soundflow.data.plan import ItemPlan, clip_requests, derive_seed

CHECKED_LANGS = ("en",)  # languages the Whisper peer (tiny.en) can transcribe


@dataclass
class Verdict:
    request: tts.ClipRequest  # the clip as planned
    final: tts.ClipRequest | None = None  # the clip that passed (None: dropped)
    attempts: list[dict] = field(default_factory=list)  # voice, hypothesis, wer of each try
    checked: bool = True  # False: no ASR for its language, kept as planned


def _style(voice: tts.Voice, text: str) -> tts.Style:
    return tts.draw_style(voice, np.random.default_rng(derive_seed("style", voice.id, text)))


def alternative(req: tts.ClipRequest, tried: set[str]) -> tts.ClipRequest | None:
    """Another voice for the same text: same language and role, same engine first; None when none is left."""
    voice = tts.get_voice(req.voice_id)
    pool = [v for v in tts.VOICES if v.lang == voice.lang and v.role == voice.role and v.id not in tried]
    pool = [v for v in pool if v.engine == voice.engine] or pool
    if not pool:
        return None
    rng = np.random.default_rng(derive_seed("roundtrip", req.voice_id, req.text, len(tried)))
    other = pool[int(rng.integers(len(pool)))]
    return tts.ClipRequest(other.id, req.text, _style(other, req.text))


def check_clips(requests: list[tts.ClipRequest], clip_dir: Path, transcribe: Callable[[np.ndarray], str],
                max_wer: float = 0.10, retries: int = 2, workers: int = 1) -> dict[tts.ClipRequest, Verdict]:
    """Synthesize, transcribe and score every request; retry failures with other voices (see module doc)."""
    from soundflow.bench.asr_metrics import normalize, wer

    verdicts = {r: Verdict(r) for r in requests}
    pending = {}
    for r in requests:
        if tts.get_voice(r.voice_id).lang in CHECKED_LANGS and normalize(r.text):
            pending[r] = r
        else:
            verdicts[r].checked, verdicts[r].final = False, r
    for attempt in range(retries + 1):
        if not pending:
            break
        tts.synthesize_batch(list(pending.values()), clip_dir, workers=workers, progress=False)
        retry = {}
        for original, cand in pending.items():
            key = tts.clip_key(tts.get_voice(cand.voice_id), cand.text, cand.style)
            hyp = transcribe(read_audio(tts.cache_path(clip_dir, key)))
            score = wer(cand.text, hyp)
            verdict = verdicts[original]
            verdict.attempts.append({"voice": cand.voice_id, "hypothesis": hyp, "wer": round(score, 4)})
            if score <= max_wer:
                verdict.final = cand
            elif attempt < retries:
                alt = alternative(original, {a["voice"] for a in verdict.attempts})
                if alt is not None:
                    retry[original] = alt
        pending = retry
    return verdicts


def apply(plans: list[ItemPlan], verdicts: dict[tts.ClipRequest, Verdict]) -> list[ItemPlan]:
    """The plans whose clips all passed, each failed-then-passed clip re-voiced in place."""
    kept = []
    for plan in plans:
        ok = True
        for piece in (p for t in plan.turns for p in t.pieces if p.kind == "speech" and not imported.is_imported(p)):
            verdict = verdicts.get(tts.ClipRequest(piece.voice, piece.label, tts.Style(**piece.style)))
            if verdict is None:
                continue
            if verdict.final is None:
                ok = False
                break
            piece.voice, piece.style = verdict.final.voice_id, asdict(verdict.final.style)
        if ok:
            kept.append(plan)
    return kept


def filter_plans(plans: list[ItemPlan], cfg: dict, clip_dir: Path, workers: int = 1,
                 transcribe: Callable[[np.ndarray], str] | None = None) -> list[ItemPlan]:
    """The round-trip check over the plans' TTS clips when `tts_roundtrip.enabled`, else the plans unchanged."""
    rt = cfg.get("tts_roundtrip") or {}
    if not rt.get("enabled"):
        return plans
    if transcribe is None:
        from soundflow.bench.peers import WhisperPeer

        transcribe = WhisperPeer(cpu_threads=max(1, workers)).transcribe
    verdicts = check_clips(clip_requests(plans), Path(clip_dir), transcribe, float(rt.get("max_wer", 0.10)),
                           int(rt.get("retries", 2)), workers)
    kept = apply(plans, verdicts)
    checked = [v for v in verdicts.values() if v.checked]
    revoiced = sum(1 for v in checked if v.final is not None and len(v.attempts) > 1)
    failed = sum(1 for v in checked if v.final is None)
    print(f"tts round trip: {len(checked)} clips checked, {revoiced} re-voiced, {failed} failed; "
          f"{len(plans) - len(kept)} of {len(plans)} items dropped", file=sys.stderr)
    return kept
