"""What each stage trains, on which data, with which loss, and how it is evaluated on dev.

s0 trains the encoder with CTC on speech segments (it stands in for the pretrained encoder we cannot
download; feasibility.md: without it an LM-only audio model does not learn to listen in minutes).
s1-s4 and the offline baseline train the projector and/or LM on token samples, with the frozen
encoder's frames precomputed once (`python -m soundflow.train encode`).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import jiwer
import numpy as np
import torch
import torch.nn.functional as F

from soundflow import layout
from soundflow.models import AudioInteractionModel, AudioLMConfig
from soundflow.tokens import ctc
from soundflow.tokens.dataset import ShardDataset, collate, token_batches
from soundflow.tokens.tokenizer import load as load_tokenizer

GROUPS = ("encoder", "embeddings", "projector", "lm")


def build_model(model_cfg: dict, tokens_dir: Path) -> AudioInteractionModel:
    tok = load_tokenizer(tokens_dir / "tokenizer")
    config = AudioLMConfig(
        encoder_config=dict(model_cfg["encoder"]),
        lm_config=dict(model_cfg["lm"]),
        vocab_size=len(tok),
        projector_type=model_cfg["projector"],
        audio_token_id=tok.convert_tokens_to_ids(layout.AUDIO),
        frame_dropout=model_cfg["frame_dropout"],
    )
    return AudioInteractionModel(config)


def trainable(model: AudioInteractionModel, groups: list[str]) -> list[torch.nn.Parameter]:
    """Freeze everything, then unfreeze the named groups; returns the trainable parameters."""
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise KeyError(f"train: unknown parameter group '{unknown[0]}' (known: {', '.join(GROUPS)})")
    for p in model.parameters():
        p.requires_grad_(False)
    modules = {
        "encoder": [model.encoder],
        "embeddings": [model.lm.get_input_embeddings(), model.lm.get_output_embeddings()],
        "projector": [model.projector],
        "lm": [model.lm],
    }
    for group in groups:
        for module in modules[group]:
            for p in module.parameters():
                p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"train: no trainable parameters in groups {groups}")
    return params


# ----- s0: CTC on speech segments ----------------------------------------------------------------


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """2 frequency masks <= 15 bins, 2 time masks <= 25 frames per 2.5 s (feasibility.md section 2)."""
    feats = feats.clone()
    for b, n in enumerate(lengths.tolist()):
        for _ in range(2):
            w = int(rng.integers(0, 16))
            f0 = int(rng.integers(0, feats.shape[2] - w + 1))
            feats[b, :n, f0:f0 + w] = 0
        for _ in range(max(1, round(2 * n / 250))):
            w = int(rng.integers(0, min(25, max(n // 10, 1)) + 1))
            t0 = int(rng.integers(0, max(n - w, 1)))
            feats[b, t0:t0 + w] = 0
    return feats


def spec_augment_on(stage_cfg: dict, epoch: int) -> bool:
    """SpecAugment from epoch `spec_augment_from_epoch` on (default 0): the first epochs learn fast on clean
    features, the later ones gain the augmentation's robustness to held-out voices."""
    return bool(stage_cfg["spec_augment"]) and epoch >= stage_cfg.get("spec_augment_from_epoch", 0)


def ctc_batches(segments: list[dict], max_frames: int, seed: int, epoch: int, augment: bool):
    rng = np.random.default_rng(seed + epoch)
    lengths = np.array([s["features"].shape[0] for s in segments])
    for idx in token_batches(lengths, max_frames, rng):
        batch = [segments[i] for i in idx]
        lens = torch.tensor([s["features"].shape[0] for s in batch])
        feats = torch.nn.utils.rnn.pad_sequence([s["features"].float() for s in batch], batch_first=True)
        if augment:
            feats = spec_augment(feats, lens, rng)
        yield {"features": feats, "lengths": lens, "targets": [s["target"].long() for s in batch]}


def ctc_loss(engine, batch: dict) -> dict:
    encoder = engine.module.encoder if hasattr(engine, "module") else engine.encoder
    frames, frame_lens = encoder(batch["features"], batch["lengths"])
    log_probs = encoder.ctc_logits(frames).float().log_softmax(-1)
    targets = batch["targets"]
    loss = F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets), frame_lens,
                      torch.tensor([len(t) for t in targets]), blank=ctc.BLANK, zero_infinity=True)
    return {"loss": loss, "tokens": int(frame_lens.sum())}


def ctc_greedy(log_probs: torch.Tensor, length: int) -> str:
    ids = log_probs[:length].argmax(-1).tolist()
    collapsed = [i for k, i in enumerate(ids) if i != ctc.BLANK and (k == 0 or i != ids[k - 1])]
    return ctc.ids_to_text(collapsed)


def ctc_evaluate(model: AudioInteractionModel, segments: list[dict]) -> dict:
    """Greedy CTC CER/WER on dev segments, per voice condition."""
    out: dict[str, float] = {}
    for condition in sorted({s["condition"] for s in segments}):
        subset = [s for s in segments if s["condition"] == condition]
        refs, hyps = [], []
        for batch in ctc_batches(subset, 20000, 0, 0, augment=False):
            frames, lens = model.encoder(batch["features"], batch["lengths"])
            log_probs = model.encoder.ctc_logits(frames).float()
            hyps += [ctc_greedy(log_probs[b], int(lens[b])) for b in range(len(lens))]
            refs += [ctc.ids_to_text(t.tolist()) for t in batch["targets"]]
        out[f"cer_{condition}"] = jiwer.cer(refs, hyps)
        out[f"wer_{condition}"] = jiwer.wer(refs, hyps)
    return out


# ----- s1-s4 and the offline baseline: token samples on cached encoder frames --------------------


def select(dataset: ShardDataset, data_cfg: dict) -> np.ndarray:
    """Indices of the samples a stage trains on: by mode and sub-task prefix."""
    index = dataset.index
    keep = index["mode"].is_in(data_cfg["modes"]).to_numpy()
    prefixes = tuple(data_cfg["sub_tasks"])
    if prefixes != ("all",):
        keep &= np.array([s.startswith(prefixes) for s in index["sub_task"]])
    if not keep.any():
        raise ValueError(f"train: no samples match data selection {data_cfg}")
    chosen = np.flatnonzero(keep)
    # repeat: {sub-task prefix: n} puts those samples in each epoch n times (a heavier share of the updates)
    copies = np.ones(len(chosen), dtype=int)
    for prefix, n in (data_cfg.get("repeat") or {}).items():
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"train: data.repeat['{prefix}'] must be an integer >= 1, got {n!r}")
        copies[[s.startswith(prefix) for s in index["sub_task"].gather(chosen)]] = n
    return np.repeat(chosen, copies)


def lm_batches(dataset: ShardDataset, frames: list[torch.Tensor], indices: np.ndarray, pad_id: int,
               max_tokens: int, seed: int, epoch: int):
    rng = np.random.default_rng(seed + epoch)
    for idx in token_batches(dataset.n_tokens[indices], max_tokens, rng):
        chosen = [int(indices[i]) for i in idx]
        batch = collate([dataset[i] for i in chosen], pad_id, with_features=False)
        batch["audio_frames"] = [frames[i].float() for i in chosen]
        yield batch


def lm_loss(engine, batch: dict, stream_weight: float) -> dict:
    out = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 audio_frames=batch["audio_frames"], labels=batch["labels"], label_kind=batch["label_kind"],
                 stream_weight=stream_weight, labelled_logits_only=True)
    return {"loss": out["loss"], "loss_lm": out["loss_lm"], "loss_stream": out["loss_stream"],
            "tokens": int(batch["attention_mask"].sum())}


def decision_evaluate(model: AudioInteractionModel, dataset: ShardDataset, frames: list[torch.Tensor],
                      indices: np.ndarray, pad_id: int, silent_id: int, response_id: int) -> dict:
    """Teacher-forced dev metrics: losses and balanced accuracy of <silent> vs <response> per chunk."""
    correct = {silent_id: 0, response_id: 0}
    total = {silent_id: 0, response_id: 0}
    losses = {"loss_lm": [], "loss_stream": []}
    for batch in lm_batches(dataset, frames, indices, pad_id, 8000, 0, 0):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    audio_frames=batch["audio_frames"], labels=batch["labels"], label_kind=batch["label_kind"])
        for k in losses:
            losses[k].append(float(out[k]))
        target = batch["labels"][:, 1:]
        is_decision = batch["label_kind"][:, 1:] == layout.LABEL_STREAM
        pair = out["logits"][:, :-1][..., [silent_id, response_id]].float()
        predicted = torch.where(pair[..., 1] > pair[..., 0], response_id, silent_id)
        for cls in (silent_id, response_id):
            mask = is_decision & (target == cls)
            total[cls] += int(mask.sum())
            correct[cls] += int((mask & (predicted == cls)).sum())
    recalls = [correct[c] / total[c] for c in total if total[c]]
    return {"decision_accuracy": float(np.mean(recalls)) if recalls else 0.0,
            **{k: float(np.mean(v)) for k, v in losses.items() if v}}


def lm_stage_fns(model, tokens_dir: Path, frames_dir: Path, stage_cfg: dict, seed: int):
    """(trainable params, batches(epoch), loss_fn, evaluate) of a token-sample stage."""
    tok = load_tokenizer(tokens_dir / "tokenizer")
    train_ds, dev_ds = ShardDataset(tokens_dir / "train"), ShardDataset(tokens_dir / "dev")
    train_frames = torch.load(frames_dir / "train.pt", weights_only=True)
    dev_frames = torch.load(frames_dir / "dev.pt", weights_only=True)
    train_idx = select(train_ds, stage_cfg["data"])
    dev_idx = select(dev_ds, {"modes": ["online", "offline"], "sub_tasks": ["all"]})
    dev_idx = dev_idx[np.random.default_rng(0).permutation(len(dev_idx))[: stage_cfg["eval_samples"]]]
    pad_id = tok.pad_token_id
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (("silent", layout.SILENT), ("response", layout.RESPONSE))}
    batches = partial(lm_batches, train_ds, train_frames, train_idx, pad_id, stage_cfg["max_tokens"], seed)
    loss = partial(lm_loss, stream_weight=stage_cfg["stream_weight"])
    evaluate = partial(decision_evaluate, dataset=dev_ds, frames=dev_frames, indices=dev_idx, pad_id=pad_id,
                       silent_id=ids["silent"], response_id=ids["response"])
    return trainable(model, stage_cfg["trainable"]), batches, loss, evaluate
