"""CLI of the corpus stage: python -m soundflow.data build --cfg JSON --out DIR --report-dir DIR."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from soundflow import tracking
from soundflow.audio import write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundflow.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="synthesize StreamAudio-mini and write its manifests and report")
    b.add_argument("--cfg", required=True, help="the `data` slice of params.yaml, as JSON")
    b.add_argument("--out", required=True, type=Path, help="corpus folder (manifests, audio, clip cache)")
    b.add_argument("--report-dir", required=True, type=Path, help="where corpus.csv and examples/ go")
    b.add_argument("--workers", type=int, default=None, help="processes (default: cfg workers)")
    args = parser.parse_args(argv)

    from soundflow.data import report
    from soundflow.data.build import build

    cfg = json.loads(args.cfg)
    workers = args.workers or cfg["workers"]
    with tracking.stage_run("corpus", cfg) as run:
        t0 = time.time()
        frames = build(cfg, args.out, workers=workers)
        minutes = (time.time() - t0) / 60
        table = report.corpus_table(frames)
        args.report_dir.mkdir(parents=True, exist_ok=True)
        report.write_table(table, args.report_dir / "corpus.csv")
        examples = args.report_dir / "examples"
        shutil.rmtree(examples, ignore_errors=True)
        report.write_examples(frames["dev"], args.out, examples, cfg["examples"])

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
