"""One-pass against live encoding of a recording's tower frames (the benchmarks' EncodedStream against the
runtime's ChunkEncoder): ms a chunk and how far the frames are apart, per precision, on one thread.

    .venv/bin/python scripts/one_pass_arm.py --bundle data/export/soundflow-tiny --seconds 150 \
        --out reports/arms/one_pass_encode.json

Audio: the first proactive-bench streams (data/bench/proactive, built by the pipeline), cut to --seconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from soundflow.audio import read_audio, write_json  # noqa: E402
from soundflow.precision import machine  # noqa: E402
from soundflow.runtime import load_bundle  # noqa: E402
from soundflow.runtime.frontend import ChunkEncoder, stream_frames  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path("data/export/soundflow-tiny"))
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a benchmark worker runs
    bundle = load_bundle(args.bundle)
    files = sorted((REPO / "data/bench/proactive").rglob("*.wav"))[:4]
    audio = np.concatenate([read_audio(f, sr=bundle.settings.sample_rate) for f in files])
    n = bundle.settings.chunk_samples
    audio = audio[: int(args.seconds * bundle.settings.sample_rate) // n * n]
    result = {"machine": machine(), "audio_s": audio.size / bundle.settings.sample_rate,
              "command": " ".join(["scripts/one_pass_arm.py", *sys.argv[1:]])}
    for precision in ("fp32", "bf16"):
        bundle.settings = dataclasses.replace(bundle.settings, tower_precision=precision)
        start = time.perf_counter()
        whole = stream_frames(bundle, audio)[0]
        one_pass_s = time.perf_counter() - start
        live = ChunkEncoder(bundle)
        start = time.perf_counter()
        chunked = torch.cat([live.frames(c) for c in audio.reshape(-1, n)], dim=1)[0]
        live_s = time.perf_counter() - start
        cosine = torch.nn.functional.cosine_similarity(whole, chunked, dim=-1)
        chunks = audio.size // n
        result[precision] = {"one_pass_ms_per_chunk": round(1000 * one_pass_s / chunks, 2),
                             "live_ms_per_chunk": round(1000 * live_s / chunks, 2),
                             "min_cosine": round(float(cosine.min()), 6), "mean_cosine": round(float(cosine.mean()), 6),
                             "max_abs_diff": round(float((whole - chunked).abs().max()), 6)}
        print(precision, result[precision], file=sys.stderr)
    write_json(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
