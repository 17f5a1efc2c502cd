"""Runtime arm: what a listening chunk and a reply token cost the LM in fp32, in bf16 autocast and with bf16
weights, one thread.

    .venv/bin/python scripts/runtime_lm_precision_arm.py MODEL_DIR [MODEL_DIR ...] --out reports/arms/runtime_lm_precision.json

MODEL_DIR is a model folder or bundle (data/models/<stage>/model, data/export/soundflow-<profile>). The work is
the runtime probe's (soundflow.runtime.decoder.lm_session_seconds): `chunks` listening steps (12 embeddings
each, the KV cache growing as in a session), then `reply_tokens` single-token steps, on random embeddings at
the scale of the model's own. The arms alternate, `repeats` times each; the median is reported.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from soundflow.audio import write_json  # noqa: E402
from soundflow.models import AudioInteractionModel  # noqa: E402
from soundflow.precision import machine  # noqa: E402
from soundflow.runtime.decoder import lm_session_seconds, session_embeds  # noqa: E402


def one_pass(model, embeds: torch.Tensor, chunks: int, reply_tokens: int, autocast: bool) -> tuple[float, float]:
    """(ms per listening chunk, ms per reply token) of one simulated stream."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        listen, reply = lm_session_seconds(model, embeds.to(model.dtype), chunks, reply_tokens)
    return 1000 * listen / chunks, 1000 * reply / reply_tokens


def measure(path: Path, chunks: int, reply_tokens: int, repeats: int) -> dict:
    model = AudioInteractionModel.from_pretrained(str(path)).eval()
    embeds = session_embeds(model, chunks)
    # fp32 weights, fp32 weights under bf16 autocast (casts every weight at every call), bf16 weights
    arms = {"fp32": (model, False), "bf16_autocast": (model, True),
            "bf16_weights": (copy.deepcopy(model).to(torch.bfloat16), False)}
    for m, autocast in arms.values():  # warm-up
        one_pass(m, embeds, 3, 3, autocast)
    runs = {name: [] for name in arms}
    for _ in range(repeats):
        for name, (m, autocast) in arms.items():
            runs[name].append(one_pass(m, embeds, chunks, reply_tokens, autocast))
    out = {"model": str(path), "lm_params": sum(p.numel() for p in model.lm.parameters())}
    for name, values in runs.items():
        out[name] = {"listen_ms_per_chunk": round(statistics.median(v[0] for v in values), 2),
                     "reply_ms_per_token": round(statistics.median(v[1] for v in values), 2)}
    out["speedup_over_fp32"] = {name: {k: round(out["fp32"][k] / out[name][k], 3) for k in out["fp32"]}
                                for name in arms if name != "fp32"}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--chunks", type=int, default=30)
    parser.add_argument("--reply-tokens", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one torch thread per scheduler thread, as the latency benchmark runs
    result = {"command": " ".join(sys.argv), "machine": machine(),
              "arms": [measure(p, args.chunks, args.reply_tokens, args.repeats) for p in args.models]}
    print(json.dumps(result, indent=1))
    if args.out:
        write_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
