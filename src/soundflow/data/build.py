"""Build StreamAudio-mini: plan all items, synthesize the TTS clips once, compose streams in a process pool.

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
from soundflow.data import events, manifest, roundtrip, tts
from soundflow.data.compose import SR, compose
from soundflow.data.plan import ItemPlan, clip_requests
from soundflow.data.planner import SPLITS, plan_split


def build(cfg: dict, out_dir: Path, workers: int = 2, progress: bool = True) -> dict[str, pl.DataFrame]:
    """The whole corpus in one process tree: every split's manifest under out_dir."""
    out_dir = Path(out_dir)
    every = [p for split in SPLITS for p in plan_split(cfg, split)]
    rows = make_rows(every, cfg, out_dir, workers=workers, progress=progress)
    return write_splits(manifest.to_frame(rows), out_dir)


def make_rows(plans: list[ItemPlan], cfg: dict, out_dir: Path, workers: int = 2, progress: bool = True,
              label: str = "") -> list[dict]:
    """Synthesize the clips `plans` need, compose their streams; one manifest row per plan, in plan order
    (with data.tts_roundtrip on, the plans a clip of which fails the ASR round trip are dropped)."""
    out_dir = Path(out_dir)
    check_sources(plans)
    plans = roundtrip.filter_plans(plans, cfg, out_dir / "clips", workers=workers)  # the paper's TTS check; off: as is
    tts.synthesize_batch(clip_requests(plans), out_dir / "clips", workers=workers, progress=progress)
    args = [(plan, str(out_dir), cfg) for plan in plans]
    with mp.get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(_compose_one, args, chunksize=4), total=len(args),
                         desc=f"compose streams{label}", disable=not progress))


def write_splits(items: pl.DataFrame, out_dir: Path) -> dict[str, pl.DataFrame]:
    """Write {split}.parquet from all items (in manifest order), then drop streams no manifest names."""
    frames = {}
    for split in SPLITS:
        # rechunk: one contiguous frame, so the Parquet bytes do not depend on how the rows were gathered
        frames[split] = items.filter(pl.col("split") == split).rechunk()
        manifest.write(frames[split], out_dir / f"{split}.parquet")
    _remove_stale_audio(out_dir, set(items["audio"]))
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
