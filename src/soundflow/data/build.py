"""Build StreamAudio-mini: plan all items, synthesize the TTS clips once, compose streams in shards.

Every output is written to a temp name and renamed, and finished clips and streams are kept, so an
interrupted build continues where it stopped. Stream files are named by a digest of their plan, so a
changed parameter never reuses a stale file.
"""
from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import polars as pl
from tqdm import tqdm

from soundflow.audio import write_wav
from soundflow.data import events, manifest, tts
from soundflow.data.compose import SR, compose
from soundflow.data.plan import ItemPlan, clip_requests
from soundflow.data.planner import SPLITS, plan_split


def build(cfg: dict, out_dir: Path, workers: int = 2, progress: bool = True) -> dict[str, pl.DataFrame]:
    out_dir = Path(out_dir)
    plans = {split: plan_split(cfg, split) for split in SPLITS}
    every = [p for split in SPLITS for p in plans[split]]
    check_sources(every)
    tts.synthesize_batch(clip_requests(every), out_dir / "clips", workers=workers, progress=progress)

    args = [(plan, str(out_dir), cfg) for plan in every]
    with mp.get_context("fork").Pool(workers) as pool:
        rows = list(tqdm(pool.imap(_compose_one, args, chunksize=4), total=len(args), desc="compose streams",
                         disable=not progress))
    frames = {}
    for split in SPLITS:
        frames[split] = manifest.to_frame([r for r in rows if r["split"] == split])
        manifest.write(frames[split], out_dir / f"{split}.parquet")
    _remove_stale_audio(out_dir, {r["audio"] for r in rows})
    return frames


def check_sources(plans: list[ItemPlan]) -> None:
    """Fail before any work when a TTS engine, voice or the sound theme is missing (one message each)."""
    voice_ids = sorted({v for plan in plans for v in plan.voices()})
    tts.check_engines([tts.get_voice(v) for v in voice_ids])
    events.freedesktop_clips()


def _compose_one(args) -> dict:
    plan, out_dir, cfg = args
    out_dir = Path(out_dir)
    rel = f"audio/{plan.split}/{plan.id}-{plan.digest()}.wav"
    result = compose(plan, out_dir / "clips", cfg)
    if not (out_dir / rel).exists():
        write_wav(out_dir / rel, result.audio, SR)
    return {
        "id": plan.id,
        "ability": plan.ability,
        "sub_task": plan.sub_task,
        "split": plan.split,
        "mode": plan.mode,
        "voices": plan.voices(),
        "condition": tts.condition(tts.get_voice(plan.user_voice)),
        "seed": plan.seed,
        "audio": rel,
        "duration_s": round(len(result.audio) / SR, 3),
        "instruction": plan.instruction,
        "lang": plan.lang,
        "noise": plan.noise,
        "snr_db": result.snr_db,
        "reverb": plan.reverb,
        "mixins": sorted({t.mixin for t in plan.turns if t.mixin}),
        "turns": result.turns,
        "timeline": result.timeline,
        "references": json.dumps(plan.references, sort_keys=True, ensure_ascii=False),
    }


def _remove_stale_audio(out_dir: Path, keep: set[str]) -> None:
    for path in (out_dir / "audio").rglob("*.wav"):
        if str(path.relative_to(out_dir)) not in keep:
            path.unlink()
