"""CLI of the training stages.

python -m soundflow.train stage  --name s0 --cfg JSON --tokens data/tokens --out data/models/s0
python -m soundflow.train encode --model data/models/s0/model --tokens data/tokens --out data/frames
python -m soundflow.train stage  --name s1 --cfg JSON --tokens data/tokens --frames data/frames \
                                 --init data/models/s0/model --out data/models/s1
python -m soundflow.train report --cfg JSON --model data/models/s4/model --tokens data/tokens \
                                 --frames data/frames --stages data/models/s0 ... --out reports/metrics/train.json
--cfg is {"model": <params model>, "stage": <common train keys merged with this stage's keys>}.
"""
from __future__ import annotations

import argparse
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
    s = sub.add_parser("stage", help="train one stage")
    s.add_argument("--name", required=True)
    s.add_argument("--cfg", required=True)
    s.add_argument("--tokens", required=True, type=Path)
    s.add_argument("--frames", type=Path, help="cached encoder frames (stages after s0)")
    s.add_argument("--init", type=Path, help="model folder of the previous stage (none: new model)")
    s.add_argument("--out", required=True, type=Path)
    e = sub.add_parser("encode", help="cache the frozen encoder's frames for every train/dev sample")
    e.add_argument("--model", required=True, type=Path)
    e.add_argument("--tokens", required=True, type=Path)
    e.add_argument("--out", required=True, type=Path)
    e.add_argument("--precision", default="auto", help="bf16 | fp32 | auto (the faster on this machine)")
    r = sub.add_parser("report", help="dev metrics of the final model -> train.json")
    r.add_argument("--cfg", required=True)
    r.add_argument("--model", required=True, type=Path)
    r.add_argument("--tokens", required=True, type=Path)
    r.add_argument("--frames", required=True, type=Path)
    r.add_argument("--stages", nargs="+", required=True, type=Path, help="stage folders (for minutes)")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--figure", type=Path, help="PNG of the learning curves of every stage")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    return {"stage": run_stage, "encode": run_encode, "report": run_report}[args.command](args)


def run_stage(args) -> int:
    from soundflow import precision, tracking
    from soundflow.models import AudioInteractionModel
    from soundflow.train import loop, stages

    cfg = json.loads(args.cfg)
    stage_cfg = cfg["stage"]
    stage_cfg["precision"] = precision.resolve(stage_cfg["precision"])  # logged, and part of the fingerprint
    model_dir = args.out / "model"
    with tracking.stage_run(f"train_{args.name}", cfg) as run:
        if args.init:
            model = AudioInteractionModel.from_pretrained(args.init)
        else:
            torch.manual_seed(stage_cfg["seed"])  # the first stage's random initial weights are seeded too
            model = stages.build_model(cfg["model"], args.tokens)
        if stage_cfg["kind"] == "ctc":
            segments = torch.load(args.tokens / "train" / "ctc.pt", weights_only=True)
            dev = torch.load(args.tokens / "dev" / "ctc.pt", weights_only=True)[: stage_cfg["eval_samples"]]
            params = stages.trainable(model, stage_cfg["trainable"])

            def batches(epoch):
                return stages.ctc_batches(segments, stage_cfg["max_frames"], stage_cfg["seed"], epoch,
                                          stages.spec_augment_on(stage_cfg, epoch))

            loss_fn, evaluate = stages.ctc_loss, lambda m: stages.ctc_evaluate(m, dev)
        else:
            params, batches, loss_fn, evaluate = stages.lm_stage_fns(model, args.tokens, args.frames, stage_cfg,
                                                                     stage_cfg["seed"])
        n_trainable = sum(p.numel() for p in params)
        run.log_metrics({"params_total": sum(p.numel() for p in model.parameters()), "params_trainable": n_trainable})
        progress = loop.train(model, params, batches, loss_fn, evaluate, stage_cfg, args.out, f"train_{args.name}",
                              run.log_metrics, fingerprint=_fingerprint(args, cfg))
        _save_model(model, args.tokens, model_dir)
        metrics = {"stage": args.name, "steps": progress.step, "ended_by": loop.ended_by(progress, stage_cfg),
                   "precision": stage_cfg["precision"],
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
    for path in (args.init / "model.safetensors" if args.init else None, args.frames / "train.pt" if args.frames else None):
        if path is not None:
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


@torch.no_grad()
def encode_split(model, dataset, precision: str) -> list[torch.Tensor]:
    """Frozen-encoder frames of every sample of a split, in index order (fp16, [n_chunks * 10, d])."""
    from tqdm import tqdm

    from soundflow.precision import autocast

    out = []
    for i in tqdm(range(len(dataset)), desc=f"encode {dataset.folder.name}", unit="sample"):
        rec = dataset[i]
        feats = rec["features"].float().unsqueeze(0)
        with autocast(precision):
            frames, _ = model.encoder(feats)
        out.append(frames[0].to(torch.float16))
    return out


def run_encode(args) -> int:
    from soundflow.models import AudioInteractionModel
    from soundflow.precision import resolve
    from soundflow.tokens.dataset import ShardDataset

    model = AudioInteractionModel.from_pretrained(args.model).eval()
    precision = resolve(args.precision)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for split in ("train", "dev"):
        torch.save(encode_split(model, ShardDataset(args.tokens / split), precision), tmp / f"{split}.pt")
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    return 0


def run_report(args) -> int:
    from soundflow import tracking
    from soundflow.train import curves, report

    cfg = json.loads(args.cfg)
    with tracking.stage_run("train_report", cfg) as run:
        metrics = report.dev_metrics(args.model, args.tokens, args.frames, cfg)
        stage_metrics = [json.loads((s / "metrics.json").read_text()) for s in args.stages]
        metrics["train_minutes"] = sum(m["train_minutes"] for m in stage_metrics)
        tokens = sum(m["tokens_per_s"] * m["train_minutes"] * 60 for m in stage_metrics if m["stage"] != "s0")
        lm_minutes = sum(m["train_minutes"] for m in stage_metrics if m["stage"] != "s0")
        metrics["tokens_per_s"] = tokens / max(lm_minutes * 60, 1e-9)
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
