"""What each stage trains, on which data, with which loss, and how it is evaluated on dev.

The tower is frozen in every stage (as in the paper); its frames are cached once (soundflow.train.frames).
s1-s4 and the offline baseline train the new-token embeddings, the projector and/or the LM on token samples.
Stages that train the projector also train a CTC head on the projected frames over English speech
segments (`ctc_weight`): dense supervision, so the adapter carries the words and not only what the sparse
reply tokens ask of it.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import jiwer
import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from soundflow import layout
from soundflow.models import AudioInteractionModel, AudioLMConfig, QwenChunkedAudioEncoder
from soundflow.models.qwen_omni import identity_projector
from soundflow.tokens import ctc
from soundflow.tokens.dataset import ShardDataset, collate, token_batches
from soundflow.tokens.tokenizer import load as load_tokenizer, special_id
from soundflow.train import frames as frame_cache, tower
from soundflow.train.engine import to_device, world as dist_world

GROUPS = ("embeddings", "projector", "lm")


def build_model(model_cfg: dict, tokens_dir: Path, tower_dir: Path | None = None,
                thinker_dir: Path | None = None) -> AudioInteractionModel:
    """A new model: the tower (pretrained weights from `tower_dir`, else random), a random projector and CTC head,
    and the LM: the pretrained thinker of `thinker_dir` (rule thinker), else a random Llama of model.lm's sizes;
    sized for the tokenizer of `tokens_dir`, which must then be the thinker's own."""
    tok = load_tokenizer(tokens_dir / "tokenizer")
    thinker = None
    if thinker_dir is not None:
        thinker = AutoModelForCausalLM.from_pretrained(thinker_dir, dtype=torch.float32, local_files_only=True)
        rows = thinker.get_input_embeddings().num_embeddings  # may exceed the tokenizer (padded vocabularies)
        if rows < len(tok) or load_tokenizer(thinker_dir).get_vocab() != tok.get_vocab():
            raise ValueError(f"{tokens_dir / 'tokenizer'} is not the tokenizer of the thinker {thinker_dir}: rebuild "
                             f"the tokens with it (python -m soundflow.tokens build --tokenizer {thinker_dir})")
    config = AudioLMConfig(
        encoder_config=tower.tower_config(model_cfg["tower"], tower_dir),
        lm_config=thinker.config.to_dict() if thinker is not None else dict(model_cfg["lm"]),
        vocab_size=rows if thinker is not None else len(tok),
        projector_type=model_cfg["projector"],
        audio_token_id=tok.convert_tokens_to_ids(layout.AUDIO),
        frame_dropout=model_cfg["frame_dropout"],
        ctc_vocab_size=ctc.VOCAB_SIZE,
    )
    model = AudioInteractionModel(config)
    if tower_dir is not None:
        tower.load_weights(model.encoder, tower_dir)
    if isinstance(model.encoder, QwenChunkedAudioEncoder):  # tower_config read the folder's kind already
        identity_projector(model)
    if thinker is not None:
        model.lm.load_state_dict(thinker.state_dict())  # strict: every weight
    return model


def trainable(model: AudioInteractionModel, groups: list[str], lm_layers: int | None = None) -> list[torch.nn.Parameter]:
    """Freeze everything (the tower always), then unfreeze the named groups; returns the trainable parameters.
    `lm_layers`: the `lm` group is only the LM's top N decoder layers and its final norm (None: the whole LM), so
    the frozen layers below need no weight gradients."""
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise KeyError(f"train: unknown parameter group '{unknown[0]}' (known: {', '.join(GROUPS)})")
    for p in model.parameters():
        p.requires_grad_(False)
    modules = {
        "embeddings": [model.lm.get_input_embeddings(), model.lm.get_output_embeddings()],
        "projector": [model.projector] + ([model.ctc_head] if model.ctc_head is not None else []),
        "lm": [model.lm] if lm_layers is None else [*model.lm.model.layers[-lm_layers:], model.lm.model.norm],
    }
    for group in groups:
        for module in modules[group]:
            for p in module.parameters():
                p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"train: no trainable parameters in groups {groups}")
    return params


# ----- data parallel: each rank's rows of a batch, weighted by its share of the batch mean ------------


def share_rows(n: int, rank: int, world: int) -> tuple[list[int], bool]:
    """(rows of this rank, whether it has any). A rank left without rows computes on row 0 with weight
    0: it still joins the gradient reduction (every rank must run a backward pass)."""
    rows = [int(i) for i in np.array_split(np.arange(n), world)[rank]]
    return (rows, True) if rows else ([0], False)


def take_rows(batch: dict, rows: list[int]) -> dict:
    """The batch restricted to `rows` (tensors and per-row lists), right padding trimmed to its longest row."""
    n = len(batch["targets"]) if "targets" in batch else batch["input_ids"].shape[0]
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == n:
            out[key] = value[rows]
        elif isinstance(value, list) and len(value) == n:
            out[key] = [value[i] for i in rows]
        else:
            out[key] = value
    if "attention_mask" in out:
        width = int(out["attention_mask"].sum(1).max())
        for key in ("input_ids", "labels", "label_kind", "attention_mask"):
            out[key] = out[key][:, :width]
    if "frames" in out:
        out["frames"] = out["frames"][:, :int(out["lengths"].max())]
    return out


def label_counts(labels: torch.Tensor, label_kind: torch.Tensor) -> dict[str, int]:
    """Positions each mean of split_losses averages over: labelled next tokens of each kind."""
    target, kind = labels[:, 1:], label_kind[:, 1:]
    return {name: int(((target != -100) & (kind == value)).sum())
            for name, value in (("loss_lm", layout.LABEL_LM), ("loss_stream", layout.LABEL_STREAM))}


# ----- the CTC head: characters of English speech segments from the projected frames ------------


def segment_frames(segments: list[dict], cache: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [cache[s["item_id"]][s["start"]:s["end"]] for s in segments]


def ctc_batch(segments: list[dict], seg_frames: list[torch.Tensor], idx) -> dict:
    chosen = [int(i) for i in idx]
    frames = [seg_frames[i].float() for i in chosen]
    return {"frames": torch.nn.utils.rnn.pad_sequence(frames, batch_first=True),
            "lengths": torch.tensor([f.shape[0] for f in frames]),
            "targets": [segments[i]["target"].long() for i in chosen]}


def ctc_loss(model: AudioInteractionModel, batch: dict) -> torch.Tensor:
    log_probs = model.ctc_log_probs(batch["frames"])
    targets = batch["targets"]
    return F.ctc_loss(log_probs.transpose(0, 1), torch.cat(targets), batch["lengths"],
                      torch.tensor([len(t) for t in targets]), blank=ctc.BLANK, zero_infinity=True)


def ctc_loss_share(model: AudioInteractionModel, batch: dict) -> torch.Tensor:
    """ctc_loss of the batch; under torchrun of this rank's segments, weighted by their share (F.ctc_loss
    averages over segments), so the ranks' losses add up to the whole batch's."""
    rank, world = dist_world()
    if world == 1:
        return ctc_loss(model, batch)
    rows, any_rows = share_rows(len(batch["targets"]), rank, world)
    return ctc_loss(model, take_rows(batch, rows)) * (len(rows) * any_rows / len(batch["targets"]))


def ctc_greedy(log_probs: torch.Tensor, length: int) -> str:
    ids = log_probs[:length].argmax(-1).tolist()
    collapsed = [i for k, i in enumerate(ids) if i != ctc.BLANK and (k == 0 or i != ids[k - 1])]
    return ctc.ids_to_text(collapsed)


@torch.no_grad()
def ctc_transcribe(model: AudioInteractionModel, frames: list[torch.Tensor]) -> list[str]:
    """Greedy CTC reading of the projected frames of each frame sequence."""
    device = next(model.parameters()).device
    return [ctc_greedy(model.ctc_log_probs(to_device(f.float()[None], device))[0], f.shape[0]) for f in frames]


def ctc_data(tokens_dir: Path, train_cache: dict, dev_cache: dict, dev_limit: int) -> tuple[tuple, tuple]:
    """(segments, their frames) of the train split and of the first `dev_limit` dev segments."""
    out = []
    for split, cache, limit in (("train", train_cache, None), ("dev", dev_cache, dev_limit)):
        segments = torch.load(tokens_dir / split / "ctc.pt", weights_only=True)[:limit]
        out.append((segments, segment_frames(segments, cache)))
    return out[0], out[1]


def ctc_stage_fns(model, tokens_dir: Path, frames_dir: Path, stage_cfg: dict, seed: int):
    """(trainable params, batches(epoch), loss_fn, evaluate) of a CTC stage: the projector and the CTC head
    read characters from the frozen tower's frames, no LM in the loop (thousands of cheap steps a minute)."""
    if model.ctc_head is None:
        raise ValueError("train: a ctc stage needs a model with a CTC head (ctc_vocab_size > 0)")
    frame_cache.check_tower(frames_dir, model.encoder)
    (segments, seg_frames), dev = ctc_data(tokens_dir, frame_cache.load(frames_dir, "train"),
                                           frame_cache.load(frames_dir, "dev"), stage_cfg["eval_samples"])
    lengths = np.array([f.shape[0] for f in seg_frames])

    def batches(epoch):
        rng = np.random.default_rng(seed + epoch)
        for idx in token_batches(lengths, stage_cfg["ctc_frames"], rng):
            yield ctc_batch(segments, seg_frames, idx)

    def loss_fn(engine, batch):
        loss = ctc_loss_share(engine.module if hasattr(engine, "module") else engine, batch)
        return {"loss": loss, "loss_ctc": loss, "tokens": int(batch["lengths"].sum())}

    return trainable(model, stage_cfg["trainable"]), batches, loss_fn, lambda m: ctc_evaluate(m, *dev)


def ctc_evaluate(model: AudioInteractionModel, segments: list[dict], seg_frames: list[torch.Tensor]) -> dict:
    """Greedy CTC CER/WER of the projected frames on dev segments, per voice condition."""
    out: dict[str, float] = {}
    hyps = ctc_transcribe(model, seg_frames)
    for condition in sorted({s["condition"] for s in segments}):
        pairs = [(s["text"], h) for s, h in zip(segments, hyps) if s["condition"] == condition]
        refs, hyp = [p[0] for p in pairs], [p[1] or "<none>" for p in pairs]
        out[f"ctc_cer_{condition}"] = jiwer.cer(refs, hyp)
        out[f"ctc_wer_{condition}"] = jiwer.wer(refs, hyp)
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
               max_tokens: int, seed: int, epoch: int, ctc_data: tuple | None = None, ctc_frames: int = 0):
    """Token-budget batches of samples; with `ctc_data` (segments, their frames) each batch also carries
    segments for the CTC head, about `ctc_frames` frames of them, drawn at random."""
    rng = np.random.default_rng(seed + epoch)
    if ctc_data is not None:  # segments per batch: once, not per batch
        segments, seg_frames = ctc_data
        mean_len = max(int(np.mean([f.shape[0] for f in seg_frames[:200]])), 1)
    for idx in token_batches(dataset.n_tokens[indices], max_tokens, rng):
        chosen = [int(indices[i]) for i in idx]
        batch = collate([dataset[i] for i in chosen], pad_id)
        batch["audio_frames"] = [frames[i].float() for i in chosen]
        if ctc_data is not None:
            picks = rng.choice(len(segments), size=min(max(ctc_frames // mean_len, 1), len(segments)), replace=False)
            batch["ctc"] = ctc_batch(segments, seg_frames, picks)
        yield batch


def lm_loss(engine, batch: dict, stream_weight: float, ctc_weight: float = 0.0) -> dict:
    """L_LM + stream_weight * L_stream (+ ctc_weight * the CTC head's loss). Under torchrun each rank computes
    its rows of the batch, each mean weighted by the rank's share of its labelled positions: the ranks' losses
    add up to the whole batch's, and so do their gradients."""
    rank, world = dist_world()
    rows, any_rows = share_rows(batch["input_ids"].shape[0], rank, world)
    part = batch if world == 1 else take_rows(batch, rows)
    out = engine(input_ids=part["input_ids"], attention_mask=part["attention_mask"],
                 audio_frames=part["audio_frames"], labels=part["labels"], label_kind=part["label_kind"],
                 stream_weight=stream_weight, labelled_logits_only=True)
    if world == 1:
        losses = {k: out[k] for k in ("loss", "loss_lm", "loss_stream")}
    else:
        total, mine = label_counts(batch["labels"], batch["label_kind"]), label_counts(part["labels"], part["label_kind"])
        losses = {k: out[k] * (mine[k] * any_rows / max(total[k], 1)) for k in total}
        losses["loss"] = losses["loss_lm"] + stream_weight * losses["loss_stream"]
    losses["tokens"] = int(batch["attention_mask"].sum())
    if "ctc" in batch:
        losses["loss_ctc"] = ctc_loss_share(engine.module if hasattr(engine, "module") else engine, batch["ctc"])
        losses["loss"] = losses["loss"] + ctc_weight * losses["loss_ctc"]
    return losses


def decision_evaluate(model: AudioInteractionModel, dataset: ShardDataset, frames: list[torch.Tensor],
                      indices: np.ndarray, pad_id: int, silent_id: int, response_id: int,
                      ctc_dev: tuple | None = None) -> dict:
    """Teacher-forced dev metrics: losses and balanced accuracy of <silent> vs <response> per chunk."""
    correct = {silent_id: 0, response_id: 0}
    total = {silent_id: 0, response_id: 0}
    losses = {"loss_lm": [], "loss_stream": []}
    device = next(model.parameters()).device
    for batch in lm_batches(dataset, frames, indices, pad_id, 8000, 0, 0):
        batch = to_device(batch, device)
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
    out = {"decision_accuracy": float(np.mean(recalls)) if recalls else 0.0,
           **{k: float(np.mean(v)) for k, v in losses.items() if v}}
    if ctc_dev is not None:
        out.update(ctc_evaluate(model, *ctc_dev))
    return out


def lm_stage_fns(model, tokens_dir: Path, frames_dir: Path, stage_cfg: dict, seed: int):
    """(trainable params, batches(epoch), loss_fn, evaluate) of a token-sample stage."""
    tok = load_tokenizer(tokens_dir / "tokenizer")
    frame_cache.check_tower(frames_dir, model.encoder)
    train_ds, dev_ds = ShardDataset(tokens_dir / "train"), ShardDataset(tokens_dir / "dev")
    train_cache, dev_cache = frame_cache.load(frames_dir, "train"), frame_cache.load(frames_dir, "dev")
    train_frames = frame_cache.sample_frames(train_ds, train_cache)
    dev_frames = frame_cache.sample_frames(dev_ds, dev_cache)
    ctc_train = ctc_dev = None
    if stage_cfg["ctc_weight"] > 0 and "projector" in stage_cfg["trainable"] and model.ctc_head is not None:
        ctc_train, ctc_dev = ctc_data(tokens_dir, train_cache, dev_cache, stage_cfg["eval_samples"])
    train_idx = select(train_ds, stage_cfg["data"])
    dev_idx = select(dev_ds, {"modes": ["online", "offline"], "sub_tasks": ["all"]})
    dev_idx = dev_idx[np.random.default_rng(0).permutation(len(dev_idx))[: stage_cfg["eval_samples"]]]
    pad_id = special_id(tok, layout.PAD)  # by name: a pretrained tokenizer may have no pad of its own
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (("silent", layout.SILENT), ("response", layout.RESPONSE))}
    batches = partial(lm_batches, train_ds, train_frames, train_idx, pad_id, stage_cfg["max_tokens"], seed,
                      ctc_data=ctc_train, ctc_frames=stage_cfg["ctc_frames"])
    loss = partial(lm_loss, stream_weight=stage_cfg["stream_weight"], ctc_weight=stage_cfg["ctc_weight"])
    evaluate = partial(decision_evaluate, dataset=dev_ds, frames=dev_frames, indices=dev_idx, pad_id=pad_id,
                       silent_id=ids["silent"], response_id=ids["response"], ctc_dev=ctc_dev)
    return trainable(model, stage_cfg["trainable"], stage_cfg.get("lm_layers")), batches, loss, evaluate
