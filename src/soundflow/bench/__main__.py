"""python -m soundflow.bench --name <bench> ...: run one benchmark, write reports/metrics/<bench>.json and its MLflow run.

Every benchmark runs the exported bundle on the corpus test split (held-out voices and seeds), or on an
external manifest (--manifest items.jsonl: id, audio, instruction, lang and the benchmark's references).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from soundflow.audio import write_json
from soundflow.bench.streams import BenchContext

# name -> "module:function" taking a BenchContext and returning the metrics dict
BENCHES = {
    "asr": "soundflow.bench.asr:run",
    "st": "soundflow.bench.st:run",
    "audio_qa": "soundflow.bench.qa:run_audio_qa",
    "spoken_qa": "soundflow.bench.qa:run_spoken_qa",
    "retention": "soundflow.bench.retention:run",
    "instruct": "soundflow.bench.instruct:run",
    "proactive": "soundflow.bench.proactive_run:run",
    "latency": "soundflow.bench.latency:run",
}


def numeric_leaves(data, prefix: str = "") -> dict[str, float]:
    """Flatten nested numeric values to MLflow metric names (a.b.c); lists and strings are left out."""
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(numeric_leaves(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundflow.bench", description=__doc__)
    parser.add_argument("--name", required=True, choices=sorted(BENCHES))
    parser.add_argument("--bundle", type=Path, required=True, help="exported model bundle")
    parser.add_argument("--offline-bundle", type=Path, help="exported offline baseline (retention)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--work", type=Path, required=True, help="the benchmark's own data folder")
    parser.add_argument("--cfg", default="{}", help="JSON: params.yaml bench.<name>")
    parser.add_argument("--manifest", type=Path, help="external manifest (JSON lines) instead of the test split")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--plot", type=Path, help="PNG, for benchmarks that draw one")
    args = parser.parse_args(argv)

    from soundflow import tracking

    module_name, function = BENCHES[args.name].split(":")
    module = importlib.import_module(module_name)
    ctx = BenchContext(args.bundle, args.offline_bundle, args.corpus, args.work, json.loads(args.cfg),
                       args.manifest, args.workers)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tracking.stage_run(f"bench_{args.name}", {"bench": args.name, "cfg": ctx.cfg,
                                                  "manifest": str(args.manifest or "")}) as run:
        try:
            result = getattr(module, function)(ctx)
        except (FileNotFoundError, ValueError) as err:
            print(f"bench {args.name}: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        write_json(result, args.out)
        run.log_metrics(numeric_leaves(result))
        run.log_artifact(args.out)
        if args.plot and hasattr(module, "plot"):
            args.plot.parent.mkdir(parents=True, exist_ok=True)
            module.plot(result, args.plot)
            run.log_artifact(args.plot)
    print(json.dumps({k: v for k, v in numeric_leaves(result).items() if k.count(".") <= 1}, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
