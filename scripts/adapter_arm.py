"""Adapter arm (issue 14): how well adapters of different shapes read characters (CTC) from the frozen tower's
cached frames, at the same wall-clock budget. A cheap probe of the adapter: no LM in the loop.

    .venv/bin/python scripts/adapter_arm.py --arms mlp tf2 --seconds 120 --out reports/arms/adapter_ctc.json
    .venv/bin/python scripts/adapter_arm.py --arms mlp --steps 600 --width 256 576 1024:256 --out ...

Arms: `mlp` is stage s2's projector (per frame, no temporal context of its own; --width HIDDEN[:OUT] sets its hidden and
output widths: the LM's hidden size in the model, 256 in tiny, 576 in small); `tfN` puts N chunk-causal
transformer layers on top of a linear projection (a frame sees its own 400 ms chunk and the chunks before it,
as the runtime would: chunk ids come from the frame's absolute position in its stream); `convN` is the model's
CausalConvProjector with N blocks (kernel 5, residual; N=3 is issue 14's probe), `dsconvN` its depthwise-separable variant. `--upsample K` makes the head emit K CTC
symbols per 40 ms frame (the segments carry ~0.57 characters a frame, a dense target for CTC). Reads the last run's
data/tokens/{train,dev}/ctc.pt and data/frames; prints and writes dev CER/WER per voice condition.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from soundflow import layout  # noqa: E402
from soundflow.models.audio_lm import CausalConvProjector  # noqa: E402
from soundflow.tokens import ctc  # noqa: E402
from soundflow.train import frames as frame_cache  # noqa: E402
from soundflow.train.stages import ctc_data, ctc_greedy  # noqa: E402

import jiwer  # noqa: E402

FPC = layout.FRAMES_PER_CHUNK


class Adapter(nn.Module):
    def __init__(self, kind: str, d_in: int, width: str = "256", left_chunks: int = 8, upsample: int = 1):
        super().__init__()
        self.left_chunks, self.upsample = left_chunks, upsample
        hidden, d = (int(w) for w in (width.split(":") * 2)[:2])  # "H" or "H:OUT"
        self.convs = nn.ModuleList()
        if kind == "mlp":
            self.proj = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d))
            self.layers = nn.ModuleList()
        elif kind.startswith("conv"):  # the model's conv projector with N blocks (issue 14's probe: N=3)
            self.proj = CausalConvProjector(d_in, d, blocks=int(kind[4:]))
            self.layers = nn.ModuleList()
        elif kind.startswith("dsconv"):  # its depthwise-separable variant: a depthwise kernel-5 conv, then a pointwise one
            self.proj = nn.Linear(d_in, d)
            self.layers = nn.ModuleList()
            self.convs = nn.ModuleList(nn.Sequential(nn.Conv1d(d, d, 5, groups=d), nn.Conv1d(d, d, 1))
                                       for _ in range(int(kind[6:])))
        else:
            n = int(kind[2:])
            self.proj = nn.Linear(d_in, d)
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(d, 4, 3 * d, dropout=0.1, activation="gelu", batch_first=True,
                                           norm_first=True) for _ in range(n))
            self.norm = nn.LayerNorm(d)
        # upsample K: each 40 ms frame emits K CTC symbols (labels per frame / K)
        self.head = nn.Linear(d, ctc.VOCAB_SIZE * upsample)

    def forward(self, frames, starts, lengths):
        x = self.proj(frames)
        for conv in self.convs:  # dsconv, left-padded: a frame sees itself and the 4 before it, per block
            x = x + F.gelu(conv(F.pad(x.transpose(1, 2), (4, 0)))).transpose(1, 2)
        if self.layers:
            T = x.shape[1]
            pos = starts[:, None] + torch.arange(T)[None]  # absolute frame index in the stream
            chunk = pos // FPC
            # key j visible to query i: same or earlier chunk, at most left_chunks back, not padding
            diff = chunk[:, :, None] - chunk[:, None, :]
            allowed = (diff >= 0) & (diff <= self.left_chunks)
            allowed &= (torch.arange(T)[None, None, :] < lengths[:, None, None])
            allowed |= torch.eye(T, dtype=torch.bool)[None]
            mask = (~allowed).repeat_interleave(self.layers[0].self_attn.num_heads, 0)
            for layer in self.layers:
                x = layer(x, src_mask=mask)
            x = self.norm(x)
        logits = self.head(x).float()
        return logits.reshape(x.shape[0], -1, ctc.VOCAB_SIZE).log_softmax(-1)


def batch(segments, frames, idx, drop: float, training: bool):
    fs = [frames[i].float() for i in idx]
    x = nn.utils.rnn.pad_sequence(fs, batch_first=True)
    if training and drop > 0:
        x = x * (torch.rand(x.shape[:2]) >= drop).unsqueeze(-1)
    return (x, torch.tensor([segments[i]["start"] for i in idx]), torch.tensor([f.shape[0] for f in fs]),
            [segments[i]["target"].long() for i in idx])


def evaluate(model, segments, frames) -> dict:
    model.eval()
    hyps = []
    with torch.no_grad():
        for i in range(len(segments)):
            x, s, n, _ = batch(segments, frames, [i], 0, False)
            hyps.append(ctc_greedy(model(x, s, n)[0], int(n[0]) * model.upsample) or "<none>")
    model.train()
    out = {}
    for cond in sorted({s["condition"] for s in segments}):
        pairs = [(s["text"], h) for s, h in zip(segments, hyps) if s["condition"] == cond]
        out[cond] = {"cer": round(jiwer.cer([p[0] for p in pairs], [p[1] for p in pairs]), 4),
                     "wer": round(jiwer.wer([p[0] for p in pairs], [p[1] for p in pairs]), 4)}
    return out


def run_arm(kind, train, dev, seconds, steps, width, lr, frames_per_step, drop, left_chunks, upsample=1,
            seed=0) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    segments, frames = train
    model = Adapter(kind, frames[0].shape[1], width=width, left_chunks=left_chunks, upsample=upsample)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    lengths = np.array([f.shape[0] for f in frames])
    per_step = max(frames_per_step // int(lengths.mean()), 1)
    t0, step, curve, next_eval = time.time(), 0, [], 30.0
    while (elapsed := time.time() - t0) < seconds and (steps is None or step < steps):
        share = step / steps if steps else elapsed / seconds
        for g in opt.param_groups:  # 8 % warm-up, then cosine to 1 % over the whole budget (the log's runs)
            g["lr"] = lr * (share / 0.08 if share < 0.08 else 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * share)))
        idx = rng.choice(len(segments), size=per_step, replace=False)
        x, s, n, targets = batch(segments, frames, idx, drop, True)
        logp = model(x, s, n)
        loss = F.ctc_loss(logp.transpose(0, 1), torch.cat(targets), n * upsample,
                          torch.tensor([len(t) for t in targets]),
                          blank=ctc.BLANK, zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if elapsed > next_eval:
            pause = time.time()
            curve.append({"s": round(elapsed), "step": step, "loss": round(loss.item(), 3), **evaluate(model, *dev)})
            print(kind, curve[-1], flush=True)
            t0 += time.time() - pause  # the clock pauses for evaluation
            next_eval += 30.0
    return {"arm": kind, "width": width, "params": sum(p.numel() for p in model.parameters()), "steps": step,
            "seconds": round(time.time() - t0), "lr": lr,
            "left_chunks": left_chunks, "upsample": upsample, "final": evaluate(model, *dev), "curve": curve}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", nargs="+", default=["mlp", "tf2"])
    p.add_argument("--seconds", type=float, default=150)
    p.add_argument("--steps", type=int, help="a step budget (the learning-rate schedule follows it), as s2 has")
    p.add_argument("--width", nargs="+", default=["256"], help="HIDDEN or HIDDEN:OUT (mlp: its two layers)")
    p.add_argument("--lr", type=float, nargs="+", default=[2e-3])
    p.add_argument("--frames-per-step", type=int, default=1500)
    p.add_argument("--drop", type=float, default=0.1)
    p.add_argument("--left-chunks", type=int, default=8)
    p.add_argument("--upsample", type=int, nargs="+", default=[1], help="CTC symbols per 40 ms frame")
    p.add_argument("--dev", type=int, default=120)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    frames_dir = REPO / "data/frames"
    train, dev = ctc_data(REPO / "data/tokens", frame_cache.load(frames_dir, "train"),
                          frame_cache.load(frames_dir, "dev"), a.dev)
    print(f"{len(train[0])} train segments ({sum(f.shape[0] for f in train[1]) * 0.04 / 60:.1f} min), "
          f"{len(dev[0])} dev", flush=True)
    seconds = a.seconds if a.steps is None else float("inf")
    results = [run_arm(k, train, dev, seconds, a.steps, w, lr, a.frames_per_step, a.drop, a.left_chunks, up)
               for k in a.arms for w in a.width for lr in a.lr for up in a.upsample]
    for r in results:
        print(r["arm"], r["width"], r["lr"], r["upsample"], r["steps"], r["final"])
    if a.out:
        a.out.write_text(json.dumps({"command": " ".join(sys.argv), "arms": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
