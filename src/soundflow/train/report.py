"""Dev metrics of a trained model, decoded the way it will run: free-running greedy streaming.

decision_accuracy_dev: balanced accuracy of <silent> vs <response> over every chunk of the dev streams.
asr_wer_dev / asr_wer_dev_unseen_engine: WER of the streaming transcripts of the ASR sub-tasks, for
voices held out from training (engines seen in training) and for the unseen engine.
ctc_wer_dev / ctc_wer_dev_unseen_engine: the CTC head's greedy reading of the same ASR windows' projected frames,
against the same references: where it reads and the LM does not, the words get lost between adapter and LM.
asr_first_token_acc_train / _dev: teacher-forced, the share of ASR replies whose first token is the model's
top choice. It tells reading the words from the audio apart from free-running decoding: a model that has
not learnt to read them scores low even on its own training windows.
"""
from __future__ import annotations

from pathlib import Path

import jiwer
import numpy as np
import torch
from tqdm import tqdm

from soundflow import layout
from soundflow.bench import bootstrap
from soundflow.bench.asr_metrics import wer_interval
from soundflow.models import AudioInteractionModel
from soundflow.precision import autocast
from soundflow.runtime.decoder import TokenIds, decode_stream
from soundflow.tokens.dataset import ShardDataset
from soundflow.tokens import ctc
from soundflow.tokens.decode import parse_stream
from soundflow.tokens.tokenizer import load as load_tokenizer
from soundflow.train import frames as frame_cache
from soundflow.train.stages import ctc_transcribe


ASR_WINDOWS_TEACHER_FORCED = 60  # per split, for asr_first_token_acc_*: the first ones in index order


def asr_windows(dataset: ShardDataset) -> list[int]:
    """Indices of the online windows of ASR sub-tasks, in index order (read from the index alone)."""
    index = dataset.index
    return [i for i, (mode, sub_task) in enumerate(zip(index["mode"], index["sub_task"]))
            if mode == "online" and sub_task.startswith("asr_")]


def dev_metrics(model_dir: Path, tokens_dir: Path, frames_dir: Path, cfg: dict, precision: str) -> dict:
    """Dev metrics of the model, decoded in `precision` (the one its last stage trained in)."""
    model = AudioInteractionModel.from_pretrained(model_dir).eval()
    tok = load_tokenizer(model_dir)
    ids = TokenIds.from_tokenizer(tok)
    dataset = ShardDataset(tokens_dir / "dev")
    frames = frame_cache.sample_frames(dataset, frame_cache.load(frames_dir, "dev"))
    online = np.flatnonzero(dataset.index["mode"].to_numpy() == "online")
    rng = np.random.default_rng(0)
    chosen = sorted(rng.permutation(online)[: cfg["stage"]["eval_streams"]].tolist())
    chosen = sorted(set(chosen) | set(asr_windows(dataset)))  # every ASR window: the WER needs them all

    window_hits = []  # per window: _decision_counts (summed for the numbers, resampled for the interval)
    asr = {}
    for i in tqdm(chosen, desc="dev streaming decode", unit="window"):
        rec = dataset[int(i)]
        ids_list = rec["input_ids"].tolist()
        prefix = ids_list[: ids_list.index(ids.audio_begin)]
        chunk_frames = frames[i].float().view(rec["n_chunks"], layout.FRAMES_PER_CHUNK, -1)
        with autocast(precision):
            hyp = decode_stream(model, tok, prefix, chunk_frames)
        ref = parse_stream(ids_list, tok)
        window_hits.append(_decision_counts(hyp, ref))
        if rec["sub_task"].startswith("asr_"):
            pair = asr.setdefault(rec["condition"], ([], [], []))
            pair[0].append(" ".join(r["text"] for r in ref if r["action"] == "respond"))
            pair[1].append(" ".join(h["text"] for h in hyp if h["action"] == "respond"))
            if model.ctc_head is not None:
                pair[2].append(ctc_transcribe(model, [frames[i]])[0])
    totals = np.sum(window_hits, axis=0)
    recalls = _recalls(totals)
    out = {
        "decision_accuracy_dev": _balanced_accuracy(totals),
        "decision_recall_silent_dev": recalls.get("silent"),
        "decision_recall_respond_dev": recalls.get("respond"),
        "dev_windows_decoded": len(chosen),
        "ci95": {"decision_accuracy_dev": bootstrap.interval(window_hits, _balanced_accuracy)},
    }
    for condition, key in (("heldout_voice", "asr_wer_dev"), ("unseen_engine", "asr_wer_dev_unseen_engine")):
        if condition in asr:
            refs, hyps, ctc_hyps = asr[condition]
            out[key] = jiwer.wer(refs, [h if h.strip() else "<none>" for h in hyps])
            out["ci95"][key] = wer_interval(refs, hyps)
            if ctc_hyps:
                out[key.replace("asr_", "ctc_")] = jiwer.wer(_plain(refs), [h if h.strip() else "<none>" for h in ctc_hyps])
                out["ci95"][key.replace("asr_", "ctc_")] = wer_interval(_plain(refs), ctc_hyps)
    train_ds = ShardDataset(tokens_dir / "train")
    train_frames = frame_cache.sample_frames(train_ds, frame_cache.load(frames_dir, "train"))
    for split, data, split_frames in (("train", train_ds, train_frames),
                                      ("dev", dataset, frames)):
        with autocast(precision):
            out[f"asr_first_token_acc_{split}"] = asr_first_token_accuracy(model, data, split_frames, ids,
                                                                          ASR_WINDOWS_TEACHER_FORCED)
    return out


def _decision_counts(hyp: list[dict], ref: list[dict]) -> list[int]:
    """One window's [silent chunks decided right, silent chunks, respond chunks decided right, respond chunks]."""
    counts = []
    for action in ("silent", "respond"):
        right = [h["action"] == action for h, r in zip(hyp, ref) if r["action"] == action]
        counts += [sum(right), len(right)]
    return counts


def _recalls(sums) -> dict:
    """{action: recall} from summed _decision_counts, for the actions that occur."""
    return {action: float(sums[i] / sums[i + 1]) for i, action in ((0, "silent"), (2, "respond")) if sums[i + 1]}


def _balanced_accuracy(sums) -> float:
    """decision_accuracy_dev from summed _decision_counts: the mean of the recalls."""
    recalls = list(_recalls(sums).values())
    return float(np.mean(recalls)) if recalls else float("nan")


def _plain(texts: list[str]) -> list[str]:
    """References in the CTC head's alphabet (lower case, letters, apostrophe, space)."""
    keep = set(ctc.CHARS)
    return [" ".join("".join(c for c in t.lower() if c in keep).split()) or "<none>" for t in texts]


@torch.no_grad()
def asr_first_token_accuracy(model, dataset: ShardDataset, frames: list[torch.Tensor], ids: TokenIds,
                             limit: int) -> float | None:
    """Share of the replies in the first `limit` online ASR windows whose first text token (the one after
    the emotion tag) is the argmax of one teacher-forced pass; None when there is no ASR window."""
    hits = total = 0
    for i in asr_windows(dataset)[:limit]:
        input_ids = dataset[i]["input_ids"].long()
        logits = model(input_ids=input_ids[None], audio_frames=[frames[i].float()])["logits"][0]
        after_tag = [t for t in range(1, len(input_ids))
                     if int(input_ids[t - 1]) in ids.emotions and int(input_ids[t]) != ids.eos]
        hits += sum(int(logits[t - 1].argmax()) == int(input_ids[t]) for t in after_tag)
        total += len(after_tag)
    return hits / total if total else None
