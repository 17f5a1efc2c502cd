"""Experiment arm: retrain token stages from a finished one with config overrides, then the dev report.

    .venv/bin/python scripts/arm.py asr3 --start s2 --stages s3 s4 \
        --set 's3.data={modes: [online, offline], sub_tasks: [all], repeat: {asr_: 3}}'

Reads the last pipeline run's data/tokens, data/frames and data/models/<start>/model (--tokens and
--frames point elsewhere, e.g. at a relabelled corpus's tokens). Writes data/arms/<name>/<stage>/ and
data/arms/<name>/train.json: the report of reports/metrics/train.json, for the arm, to set beside the
run's. `--set KEY=YAML` overrides `train.KEY` of params.yaml (common.precision=fp32, s3.max_steps=350);
`--model-set KEY=YAML` overrides `model.KEY` (projector=conv): the arm then starts from an untrained model of its
own (`--start init`), built as rule init_model builds the run's.
The arm logs to its own MLflow store, data/arms/<name>/mlflow.db, not to the pipeline's. `--profile small` arms a
run of that profile (its overlay's stage configs).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from soundflow import config

LM_STAGES = ("s1", "s2", "s3", "s4")


def override(section: dict, assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    *path, last = key.split(".")
    node = section
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if not sep or not isinstance(node, dict):
        raise SystemExit(f"arm: --set / --model-set needs KEY=VALUE with KEY under its section, got '{assignment}'")
    node[last] = yaml.safe_load(value)


def train(stage: str, cfg: dict, init: Path, tokens: Path, frames: Path, out: Path, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "soundflow.train", "stage", "--name", stage,
                    "--cfg", json.dumps(config.stage_config(cfg, stage)),
                    "--tokens", str(tokens), "--frames", str(frames), "--init", str(init), "--out", str(out)],
                   check=True, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--start", choices=("init",) + LM_STAGES[:-1], default="s2", help="stage the arm starts from")
    parser.add_argument("--stages", nargs="+", choices=LM_STAGES, default=["s3", "s4"], help="stages it retrains")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=YAML")
    parser.add_argument("--model-set", action="append", default=[], metavar="KEY=YAML")
    parser.add_argument("--tokens", type=Path, default=Path("data/tokens"))
    parser.add_argument("--frames", type=Path, default=Path("data/frames"))
    parser.add_argument("--no-report", action="store_true", help="stop after the stages (their metrics.json)")
    parser.add_argument("--profile", help="the params overlay the run used (tiny, small, ...; default: params.yaml's)")
    args = parser.parse_args(argv)
    order = ("init",) + LM_STAGES
    first = order.index(args.start) + 1
    if list(args.stages) != list(order[first:first + len(args.stages)]):
        parser.error(f"--stages must be the stages right after --start {args.start}, in order")

    cfg = config.load(Path("params.yaml"), **({"profile": args.profile} if args.profile else {}))
    for assignment in args.set:
        override(cfg["train"], assignment)
    for assignment in args.model_set:
        override(cfg["model"], assignment)
    config.validate(cfg)
    if args.model_set and args.start != "init":
        parser.error("--model-set changes the model: the arm must start from --start init")
    out = Path("data/arms") / args.name
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{out.resolve()}/mlflow.db"}
    env.pop("SOUNDFLOW_PARENT_RUN_ID", None)

    stage_dirs = {s: Path("data/models") / s for s in ("init",) + LM_STAGES}
    if args.model_set:
        # the run's imports, where workflow/rules/common.smk puts them
        tower = Path("data/pretrained") / Path(str(cfg["model"]["tower"]["pretrained"])).name
        thinker = Path("data/pretrained") / f"thinker-{Path(str(cfg['model']['thinker'])).name}"
        subprocess.run([sys.executable, "-m", "soundflow.train", "init", "--cfg", json.dumps(config.stage_config(cfg, "s1")),
                        "--tokens", str(args.tokens), "--out", str(out / "init"),
                        *(["--tower", str(tower)] if cfg["model"]["tower"]["pretrained"] else []),
                        *(["--thinker", str(thinker)] if cfg["model"]["thinker"] else [])], check=True, env=env)
        stage_dirs["init"] = out / "init"
    init = stage_dirs[args.start] / "model"
    for stage in args.stages:
        train(stage, cfg, init, args.tokens, args.frames, out / stage, env)
        init, stage_dirs[stage] = out / stage / "model", out / stage
    if args.no_report:
        return 0
    # the dev report runs with s4's config, as the pipeline's train_report does
    subprocess.run([sys.executable, "-m", "soundflow.train", "report", "--cfg", json.dumps(config.stage_config(cfg, "s4")),
                    "--model", str(init), "--tokens", str(args.tokens), "--frames", str(args.frames),
                    "--stages", *[str(stage_dirs[s]) for s in LM_STAGES], "--out", str(out / "train.json")], check=True, env=env)
    metrics = json.loads((out / "train.json").read_text())
    print(json.dumps({args.name: {k: v for k, v in metrics.items() if k != "stages"}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
