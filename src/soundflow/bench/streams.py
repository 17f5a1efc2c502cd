"""What every benchmark shares: test items from the corpus (or an external manifest) and decoding them
with the exported bundle, streaming or offline, in worker processes (one torch thread each).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from tqdm import tqdm

REQUIRED_KEYS = ("id", "audio", "instruction", "lang")


def load_rows(corpus: Path, sub_tasks: tuple[str, ...], mode: str = "online", split: str = "test") -> list[dict]:
    """Corpus items whose sub-task starts with one of `sub_tasks`, with `audio` as an absolute path and
    `references`, `turns[*].meta`/`pieces` parsed from JSON."""
    corpus = Path(corpus)
    frame = pl.read_parquet(corpus / f"{split}.parquet")
    wanted = pl.any_horizontal([pl.col("sub_task").str.starts_with(p) for p in sub_tasks])
    frame = frame.filter((pl.col("mode") == mode) & wanted).sort("id")
    rows = []
    for row in frame.iter_rows(named=True):
        row["audio"] = str((corpus / row["audio"]).resolve())
        row["references"] = json.loads(row["references"] or "{}")
        for turn in row["turns"] or []:
            turn["meta"] = json.loads(turn["meta"] or "{}")
            turn["pieces"] = json.loads(turn["pieces"] or "[]")
        rows.append(row)
    return rows


def load_manifest(path: Path, required: tuple[str, ...] = ()) -> list[dict]:
    """An external manifest (JSON lines; one item per line with at least id, audio, instruction, lang and
    the benchmark's reference keys); `audio` may be relative to the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
        for key in (*REQUIRED_KEYS, *required):
            if key not in row:
                raise ValueError(f"{path}:{number}: missing key '{key}'")
        audio = Path(row["audio"]) if Path(row["audio"]).is_absolute() else path.parent / row["audio"]
        if not audio.is_file():
            raise ValueError(f"{path}:{number}: key 'audio': audio file not found: {audio}")
        rows.append({**row, "audio": str(audio.resolve())})
    if not rows:
        raise ValueError(f"{path}: no items")
    return rows


def with_defaults(bench: str, cfg: dict | None, defaults: dict) -> dict:
    """A benchmark's cfg (params.yaml bench.<name>) over its defaults; an unknown key is refused by name."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise ValueError(f"bench.{bench}: unknown key(s) {', '.join(unknown)} (known: {', '.join(defaults)})")
    return {**defaults, **cfg}


# ----- decoding in worker processes -------------------------------------------------------------------

_BUNDLE = None


def _init(bundle_dir: str) -> None:
    global _BUNDLE
    import torch

    from soundflow.runtime import load_bundle

    torch.set_num_threads(1)
    _BUNDLE = load_bundle(bundle_dir)


def _stream(job: tuple[str, str, str, str]) -> list[dict]:
    from soundflow.audio import read_audio
    from soundflow.runtime import run_stream
    from soundflow.runtime.frontend import EncodedStream

    path, instruction, lang, scheduler = job
    audio = read_audio(path, sr=_BUNDLE.settings.sample_rate)
    # the tower's frames in one pass (the same frames, about half the cost); the latency benchmark times the
    # live chunk-by-chunk encoder
    events = run_stream(_BUNDLE, audio, instruction, lang, scheduler, encoder=EncodedStream(_BUNDLE, audio))
    return [e.public() for e in events]


def _offline(job: tuple[str, str, str]) -> dict:
    from soundflow.audio import read_audio
    from soundflow.runtime.offline import answer_offline

    audio, user_text, lang = job
    text, emotion = answer_offline(_BUNDLE, read_audio(audio, sr=_BUNDLE.settings.sample_rate), user_text, lang)
    return {"text": text, "emotion": emotion}


def _map(bundle_dir: Path, fn, jobs: list, workers: int, desc: str) -> list:
    workers = max(1, min(workers, len(jobs), os.cpu_count() or 1))
    if workers == 1:
        _init(str(bundle_dir))
        return [fn(j) for j in tqdm(jobs, desc=desc, unit="item")]
    pool = mp.get_context("spawn").Pool(workers, initializer=_init, initargs=(str(bundle_dir),))
    try:
        results = list(tqdm(pool.imap(fn, jobs), total=len(jobs), desc=desc, unit="item"))
        pool.close()  # a clean close + join, so no worker's semaphores are left to the resource tracker
        return results
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def decode_streams(bundle_dir: Path, rows: list[dict], workers: int = 2, scheduler: str = "sync",
                   desc: str = "streaming decode") -> list[list[dict]]:
    """One list of events ({chunk, time_s, action, text, emotion, drained}) per row, in row order."""
    jobs = [(r["audio"], r["instruction"], r["lang"], scheduler) for r in rows]
    return _map(bundle_dir, _stream, jobs, workers, desc)


def answer_rows(bundle_dir: Path, rows: list[dict], workers: int = 2, desc: str = "offline decode") -> list[dict]:
    """Offline format: one {text, emotion} per row, the row's instruction as the user text."""
    jobs = [(r["audio"], r["instruction"], r["lang"]) for r in rows]
    return _map(bundle_dir, _offline, jobs, workers, desc)


def reply_text(events: list[dict]) -> str:
    """Everything the model said over a stream, in order (pieces joined by spaces)."""
    return " ".join(e["text"].strip() for e in events if e["action"] == "respond" and e["text"].strip())


@dataclass
class BenchContext:
    """What a benchmark's `run(ctx) -> dict` gets (python -m soundflow.bench run --name <bench>)."""

    bundle: Path  # the exported model (data/export/soundflow-<profile>)
    offline_bundle: Path | None  # the offline baseline exported the same way (data/export/offline-<profile>)
    corpus: Path  # data/corpus (test split = held-out voices and seeds)
    work: Path  # a folder of the benchmark's own (data/bench/<name>) for generated streams
    cfg: dict  # params.yaml bench.<name>
    manifest: Path | None = None  # an external manifest instead of the corpus test split
    workers: int = 2
