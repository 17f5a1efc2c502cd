"""CLI of the tokens stage: python -m soundflow.tokens build --cfg JSON --corpus DIR --out DIR [--tokenizer DIR]."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from soundflow.data.manifest import ManifestError
from soundflow.tokens import shards, tokenizer
from soundflow.tokens.samples import SampleError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundflow.tokens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train the tokenizer and write sample shards")
    b.add_argument("--cfg", required=True, help="the `tokens` slice of params.yaml, as JSON "
                   f"(keys: {', '.join(shards.CFG_KEYS)})")
    b.add_argument("--corpus", required=True, type=Path, help="corpus folder with {train,dev,test}.parquet")
    b.add_argument("--out", required=True, type=Path, help="tokens folder to (re)write")
    b.add_argument("--tokenizer", type=Path, help="a pretrained thinker's folder (rule thinker): use its tokenizer, "
                   "train no BPE (vocab_size is then unused)")
    args = parser.parse_args(argv)

    try:
        cfg = shards.check_cfg(json.loads(args.cfg))
        shards.read_manifests(args.corpus)  # a missing file fails here, before a tracking run opens
        if args.tokenizer is not None:
            tokenizer.load(args.tokenizer)  # and a bad pretrained tokenizer
    except json.JSONDecodeError as exc:
        parser.error(f"--cfg is not valid JSON: {exc}")
    except (shards.TokensError, ManifestError, FileNotFoundError, ValueError) as exc:
        print(f"tokens: error: {exc}", file=sys.stderr)
        return 2

    from soundflow import tracking  # mlflow is slow to import; only a real run needs it

    try:
        with tracking.stage_run("tokens", {**cfg, "tokenizer": str(args.tokenizer or "bpe")}) as run:
            t0 = time.time()
            stats = shards.build(cfg, args.corpus, args.out, args.tokenizer)
            minutes = (time.time() - t0) / 60
            metrics = {"build_minutes": minutes, "vocab_size": stats["vocab_size"]}
            for split in shards.SPLITS:
                for key, value in stats[split].items():
                    metrics[f"{split}_{key}"] = value
            run.log_metrics(metrics)
            run.log_artifact(args.out / "stats.json")
    except (shards.TokensError, ManifestError, SampleError) as exc:
        print(f"tokens: error: {exc}", file=sys.stderr)
        return 2
    total = sum(stats[s]["samples"] for s in shards.SPLITS)
    print(f"tokens: {total} samples, vocab {stats['vocab_size']}, in {minutes:.1f} min -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
