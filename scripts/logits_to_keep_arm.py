"""Runtime arm: does asking the LM for the last position's logits only (transformers' `logits_to_keep=1`) make
the runtime's prefill calls cheaper? The runtime reads only the last row of every call, and a cache rebuild
reads none, so the LM head's work on the other rows is waste (a 49 k vocabulary makes it large for SmolLM2).

    .venv/bin/python scripts/logits_to_keep_arm.py /work/small/data/models/s4/model:bf16 data/models/s4/model:fp32 \
        --out reports/arms/logits_to_keep.json

One thread, random inputs at the scale of the model's embeddings (runtime.decoder.session_embeds): a rebuild (20 prefix positions + 8 chunks of 12) and 10 listening
steps of one chunk (12 positions) on the growing cache, median step; best of 3 repeats. Also times the LM head
alone on 1, 12 and 116 rows, to tell the head's share from the call's.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from soundflow import audio, layout, precision  # noqa: E402
from soundflow.models import AudioInteractionModel  # noqa: E402
from soundflow.runtime.decoder import PROBE_PREFIX, session_embeds  # noqa: E402

WIDTH = layout.FRAMES_PER_CHUNK + 2  # one chunk's frames and its two control positions
REBUILD = PROBE_PREFIX + 8 * WIDTH


@torch.no_grad()
def session_ms(model, keep: int, prec: str) -> dict:
    embeds = session_embeds(model, 18)  # the runtime probe's inputs: a 20-position prefix, then 18 chunks
    rebuild, listen = embeds[:, :REBUILD], embeds[:, REBUILD:]
    with precision.autocast(prec):
        cache = model.new_cache()
        start = time.perf_counter()
        model.lm(inputs_embeds=rebuild, cache=cache, use_cache=True, logits_to_keep=keep)
        rebuilt = time.perf_counter() - start
        steps = []
        for k in range(10):
            start = time.perf_counter()
            model.lm(inputs_embeds=listen[:, k * WIDTH:(k + 1) * WIDTH], cache=cache, use_cache=True,
                     logits_to_keep=keep)
            steps.append(time.perf_counter() - start)
    return {"rebuild_ms": rebuilt * 1000, "listen_ms": sorted(steps)[len(steps) // 2] * 1000}


@torch.no_grad()
def head_ms(model, rows: int, prec: str) -> float:
    head = model.lm.get_output_embeddings()
    x = torch.randn(1, rows, head.in_features)
    with precision.autocast(prec):
        head(x)
        start = time.perf_counter()
        for _ in range(10):
            head(x)
    return (time.perf_counter() - start) / 10 * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="MODEL_DIR:PRECISION (fp32 | bf16)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    results = []
    for spec in a.models:
        path, prec = spec.rsplit(":", 1)
        model = AudioInteractionModel.from_pretrained(path).eval()
        row = {"model": path, "precision": prec, "vocab": model.lm.config.vocab_size,
               "layers": model.lm.config.num_hidden_layers, "hidden": model.lm.config.hidden_size}
        for keep, name in ((0, "all_logits"), (1, "last_logits")):
            runs = [session_ms(model, keep, prec) for _ in range(3)]
            row[name] = {k: round(min(r[k] for r in runs), 1) for k in runs[0]}
        row["head_alone_ms"] = {rows: round(head_ms(model, rows, prec), 1) for rows in (1, WIDTH, REBUILD)}
        print(row, flush=True)
        results.append(row)
    audio.write_json({"command": " ".join(sys.argv), "machine": precision.machine(), "threads": 1,
                      "results": results}, a.out)


if __name__ == "__main__":
    main()
