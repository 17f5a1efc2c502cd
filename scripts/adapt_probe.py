"""Tower adaptation arm: do the top Whisper layers, fine-tuned to block-causal attention with the CTC loss,
read characters better than the frozen tower?

    .venv/bin/python scripts/adapt_probe.py --top 2 --seconds 150 --items 300   # adapt the top 2 of 6 layers
    .venv/bin/python scripts/adapt_probe.py --top 0 --seconds 150 --items 300   # frozen: projector + head only

Starts from the last run's s2 (projector + CTC head trained on the frozen frames). The bottom layers' hidden
states of every attention window that holds a CTC segment (the windows the runtime uses, truncated after their
last segment) are computed once; each step runs the top layers (block-causal), the final LayerNorm, pooling,
projector and head on 60 s of windows. Dev: the first 120 dev segments, as s2 evaluates. Appends its dev
CER / WER per voice condition to reports/arms/tower_adapt.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from soundflow.models import AudioInteractionModel  # noqa: E402
from soundflow.tokens import ctc  # noqa: E402
from soundflow.train import frames as frame_cache  # noqa: E402
from soundflow.train.stages import ctc_greedy  # noqa: E402


def run_layers(tower, x, layers):
    full = tower.whisper.layers
    tower.whisper.layers = torch.nn.ModuleList(full[layers])
    try:
        n = x.shape[1] // tower.config.conv_per_chunk
        return tower._layers(x, tower._mask(n, 0, x.device))
    finally:
        tower.whisper.layers = full


@torch.no_grad()
def bottom_windows(tower, split, segments, n_bottom, limit_items):
    """Windows (bottom hidden [T50, d] fp16, [(local start, local end, target, cond, text)])."""
    manifest = pl.read_parquet(REPO / "data/corpus" / f"{split}.parquet")
    by_item = {}
    for s in segments:
        by_item.setdefault(s["item_id"], []).append(s)
    rows = [r for r in manifest.select("id", "audio", "duration_s").iter_rows() if r[0] in by_item][:limit_items]
    cfg, out = tower.config, []
    per = cfg.conv_per_chunk
    for item_id, audio, dur in rows:
        feats = frame_cache.item_features(REPO / "data/corpus" / audio, dur, cfg.n_mels, cfg.mel_ceiling)
        n_chunks = feats.shape[0] // 40
        with torch.autocast("cpu", dtype=torch.bfloat16):
            conv = tower.conv_frames(feats.reshape(n_chunks, 40, -1)).reshape(1, n_chunks * per, -1)
            for start, new, end in tower.window_plan(n_chunks):
                segs = [s for s in by_item[item_id] if new * 10 <= s["start"] and s["end"] <= end * 10]
                if not segs:
                    continue
                last = -(-max(s["end"] for s in segs) // 10)  # chunks needed
                x = conv[:, start * per:last * per] + tower._positions(0, last - start).to(conv.dtype)
                h = run_layers(tower, x, slice(0, n_bottom))
                out.append((h[0].to(torch.float16), [(s["start"] - start * 10, s["end"] - start * 10, s["target"].long(),
                                                      s["condition"], s["text"]) for s in segs]))
    return out


def top_forward(tower, model, hidden, n_bottom):
    lengths = [h.shape[0] for h in hidden]
    x = torch.nn.utils.rnn.pad_sequence([h.float() for h in hidden], batch_first=True)
    x = run_layers(tower, x, slice(n_bottom, None))
    pooled = tower._finish(x)
    return model.ctc_head(model.projector(pooled)).float().log_softmax(-1)


def evaluate(tower, model, windows, n_bottom):
    model.eval()
    refs, hyps, conds = [], [], []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for h, segs in windows:
            lp = top_forward(tower, model, [h], n_bottom)[0]
            for a, b, _, cond, text in segs:
                refs.append(text)
                hyps.append(ctc_greedy(lp[a:b], b - a) or "<none>")
                conds.append(cond)
    model.train()
    out = {}
    for c in sorted(set(conds)):
        r = [x for x, k in zip(refs, conds) if k == c]
        hy = [x for x, k in zip(hyps, conds) if k == c]
        out[c] = (round(jiwer.cer(r, hy), 3), round(jiwer.wer(r, hy), 3))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--top", type=int, default=2)
    p.add_argument("--seconds", type=float, default=150)
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--start", default="data/models/s2/model")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-frames", type=int, default=3000)
    args = p.parse_args()
    torch.manual_seed(0)
    model = AudioInteractionModel.from_pretrained(REPO / args.start)
    tower = model.encoder
    n_bottom = len(tower.whisper.layers) - args.top
    train_segs = torch.load(REPO / "data/tokens/train/ctc.pt", weights_only=True)
    dev_segs = torch.load(REPO / "data/tokens/dev/ctc.pt", weights_only=True)[:120]
    t0 = time.time()
    train = bottom_windows(tower, "train", train_segs, n_bottom, args.items)
    dev = bottom_windows(tower, "dev", dev_segs, n_bottom, 10**9)
    print(f"bottom cache: {len(train)} train windows, {len(dev)} dev, {time.time() - t0:.0f}s", flush=True)
    start = evaluate(tower, model, dev, n_bottom)
    print("start", start, flush=True)
    for prm in model.parameters():
        prm.requires_grad_(False)
    groups = [{"params": list(model.projector.parameters()) + list(model.ctc_head.parameters()), "lr": 2e-3}]
    top = [prm for layer in tower.whisper.layers[n_bottom:] for prm in layer.parameters()] + \
        list(tower.whisper.layer_norm.parameters())
    if args.top:
        groups.append({"params": top, "lr": args.lr})
    for g in groups:
        for prm in g["params"]:
            prm.requires_grad_(True)
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    rng = np.random.default_rng(0)
    t0, step = time.time(), 0
    while time.time() - t0 < args.seconds:
        order = rng.permutation(len(train))
        batch, total = [], 0
        for i in order:
            n = train[i][0].shape[0]
            if batch and total + n > args.batch_frames:
                break
            batch.append(train[i])
            total += n
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lp = top_forward(tower, model, [b[0] for b in batch], n_bottom)
        seq, tgt, il, tl = [], [], [], []
        for k, (_, segs) in enumerate(batch):
            for a, b, target, _, _ in segs:
                seq.append(lp[k, a:b])
                tgt.append(target)
                il.append(b - a)
                tl.append(len(target))
        padded = torch.nn.utils.rnn.pad_sequence(seq)
        loss = F.ctc_loss(padded, torch.cat(tgt), torch.tensor(il), torch.tensor(tl), blank=ctc.BLANK,
                          zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([q for g in groups for q in g["params"]], 1.0)
        opt.step()
        step += 1
        if step % 20 == 0:
            print(f"step {step} {time.time() - t0:.0f}s loss {loss.item():.3f}", flush=True)
    result = {"top_layers": args.top, "lr": args.lr, "seconds": args.seconds, "train_items": args.items,
              "train_windows": len(train), "steps": step, "start": start,
              "dev_cer_wer": evaluate(tower, model, dev, n_bottom)}
    print(result, flush=True)
    out = REPO / "reports/arms/tower_adapt.json"
    runs = json.loads(out.read_text()) if out.is_file() else []
    out.write_text(json.dumps(runs + [result], indent=1) + "\n")


if __name__ == "__main__":
    main()
