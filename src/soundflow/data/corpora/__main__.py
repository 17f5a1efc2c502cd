"""CLI of the import_corpora rule: one local corpus copy -> its clip-source table and lhotse CutSet.

    python -m soundflow.data.corpora import --source librispeech --path /data/LibriSpeech --out data/corpora

Writes <out>/<source>.parquet, <out>/<source>.cuts.jsonl.gz and <out>/<source>.json (counts).
A folder not in the corpus's original layout stops with one line naming the file or key.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from soundflow import tracking
from soundflow.audio import write_json
from soundflow.data.corpora import SOURCES, write_source
from soundflow.data.corpora.schema import CorpusError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundflow.data.corpora", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import one local corpus copy")
    imp.add_argument("--source", required=True, choices=SOURCES)
    imp.add_argument("--path", required=True, type=Path, help="the local copy, in the corpus's original layout")
    imp.add_argument("--out", required=True, type=Path, help="folder of the source tables")
    args = parser.parse_args(argv)
    try:
        with tracking.stage_run("import_corpora", {"source": args.source, "path": str(args.path)},
                                run_name=f"import {args.source}") as run:
            counts = write_source(args.source, args.path, args.out)
            run.log_metrics({k: v for k, v in counts.items() if k != "source"})
    except CorpusError as err:  # the run ends FAILED; one line, not a traceback
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    write_json(counts, args.out / f"{args.source}.json")
    print(f"{args.source}: {counts['clips']} clips, {counts['hours']} h", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
