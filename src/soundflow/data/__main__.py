"""CLI of the corpus stage.

    python -m soundflow.data build --cfg JSON --out DIR --report-dir DIR            # the whole corpus, one job
    python -m soundflow.data shard --cfg JSON --out DIR --index I --count N --manifest FILE   # one shard's items
    python -m soundflow.data merge --cfg JSON --out DIR --report-dir DIR SHARD...  # shards -> split manifests
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from soundflow import tracking
from soundflow.audio import write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundflow.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="synthesize StreamAudio-mini and write its manifests and report")
    s = sub.add_parser("shard", help="synthesize one shard of the items and write its shard manifest")
    m = sub.add_parser("merge", help="merge all shard manifests into the split manifests and write the report")
    for p in (b, s, m):
        p.add_argument("--cfg", required=True, help="the `data` slice of params.yaml, as JSON")
        p.add_argument("--out", required=True, type=Path, help="corpus folder (manifests, audio, clip cache)")
    for p in (b, s):
        p.add_argument("--workers", type=int, default=None, help="processes (default: cfg workers)")
    for p in (b, m):
        p.add_argument("--report-dir", required=True, type=Path, help="where corpus.csv and examples/ go")
    s.add_argument("--index", required=True, type=int, help="this shard's index, 0 .. count-1")
    s.add_argument("--count", required=True, type=int, help="number of shards")
    s.add_argument("--manifest", required=True, type=Path, help="the shard manifest to write (Parquet)")
    m.add_argument("shards", nargs="+", type=Path, help="every shard manifest, one per index")
    args = parser.parse_args(argv)
    if args.command == "shard" and not (args.count >= 1 and 0 <= args.index < args.count):
        parser.error(f"--index {args.index} is out of range for --count {args.count} (0 <= index < count)")

    from soundflow.data.manifest import ManifestError

    cfg = json.loads(args.cfg)
    try:
        if args.command == "shard":
            return _shard(cfg, args)
        return _build_or_merge(cfg, args)
    except ManifestError as err:  # bad or stale shard manifests: one line, not a traceback
        print(f"ERROR: {err}", file=sys.stderr)
        return 2


def _shard(cfg: dict, args) -> int:
    from soundflow.data.shards import build_shard

    name = f"corpus_shard {args.index + 1}/{args.count}"
    with tracking.stage_run("corpus_shard", cfg, run_name=name) as run:
        t0 = time.time()
        frame = build_shard(cfg, args.out, args.index, args.count, args.manifest,
                            workers=args.workers or cfg["workers"])
        minutes = (time.time() - t0) / 60
        run.log_metrics({"items": frame.height, "hours": frame["duration_s"].sum() / 3600, "build_minutes": minutes})
        print(f"{name}: {frame.height} items in {minutes:.1f} min", file=sys.stderr)
    return 0


def _build_or_merge(cfg: dict, args) -> int:
    from soundflow.data import report
    from soundflow.data.build import build
    from soundflow.data.shards import merge

    with tracking.stage_run("corpus", cfg) as run:
        t0 = time.time()
        if args.command == "build":
            frames = build(cfg, args.out, workers=args.workers or cfg["workers"])
        else:
            frames = merge(cfg, args.out, args.shards)
        minutes = (time.time() - t0) / 60
        table = report.corpus_table(frames)
        args.report_dir.mkdir(parents=True, exist_ok=True)
        report.write_table(table, args.report_dir / "corpus.csv")
        examples = args.report_dir / "examples"
        # drawn into a temp folder that replaces the old one, so no half-drawn set is ever seen
        drawing = args.report_dir / f".examples.tmp{os.getpid()}"
        shutil.rmtree(drawing, ignore_errors=True)
        report.write_examples(frames["dev"], args.out, drawing, cfg["examples"])
        shutil.rmtree(examples, ignore_errors=True)
        drawing.rename(examples)

        metrics = {"build_minutes": minutes}
        for split, frame in frames.items():
            metrics[f"{split}_items"] = frame.height
            metrics[f"{split}_hours"] = frame["duration_s"].sum() / 3600
        for row in table.iter_rows(named=True):
            metrics[f"items.{row['split']}.{row['sub_task']}"] = row["items"]
            metrics[f"hours.{row['split']}.{row['sub_task']}"] = row["hours"]
        run.log_metrics(metrics)
        summary = {split: {"items": metrics[f"{split}_items"], "hours": round(metrics[f"{split}_hours"], 4),
                           "asr_word_timing": report.word_timing_counts(frame)}
                   for split, frame in frames.items()}
        write_json(summary, args.report_dir / "corpus_summary.json", sort_keys=True)
        run.log_artifact(args.report_dir / "corpus.csv")
        run.log_artifact(args.report_dir / "corpus_summary.json")
        run.log_artifacts(examples, artifact_path="examples")
        print(f"corpus: {sum(f.height for f in frames.values())} items, "
              f"{sum(metrics[f'{s}_hours'] for s in frames):.2f} h in {minutes:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
