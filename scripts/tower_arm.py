"""Tower arm: how well the projector + CTC head (stage s2) read characters from the frozen tower's frames under
other tower settings, beside the pipeline's own s2. A cheap probe of the tower mode: no LM in the loop.

    .venv/bin/python scripts/tower_arm.py chunk --set attention=chunk
    .venv/bin/python scripts/tower_arm.py ctx2s --set carry_frames=100 --set window_frames=100

Reads the last run's data/tokens, data/corpus and data/pretrained; builds data/arms/tower-<name>/{init,frames,s2}
with params.yaml's s2 config, and prints s2's dev CER/WER per voice condition beside the pipeline's
(data/models/s2/metrics.json) and the frame cache's encode time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from soundflow import config  # noqa: E402


def cli(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "soundflow.train", *args], check=True, env=env, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="a model.tower key")
    args = parser.parse_args(argv)
    cfg = config.load(REPO / "params.yaml")
    for assignment in args.set:
        key, value = assignment.split("=", 1)
        if key not in cfg["model"]["tower"]:
            parser.error(f"unknown model.tower key '{key}'")
        cfg["model"]["tower"][key] = yaml.safe_load(value)
    config.validate(cfg)
    out = REPO / "data" / "arms" / f"tower-{args.name}"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{out}/mlflow.db"}
    env.pop("SOUNDFLOW_PARENT_RUN_ID", None)
    tower = REPO / "data" / "pretrained" / cfg["model"]["tower"]["pretrained"]
    s1 = json.dumps(config.stage_config(cfg, "s1"))
    s2 = json.dumps(config.stage_config(cfg, "s2"))
    cli("init", "--cfg", s1, "--tokens", "data/tokens", "--tower", str(tower), "--out", str(out / "init"), env=env)
    cli("encode", "--model", str(out / "init" / "model"), "--corpus", "data/corpus", "--out", str(out / "frames"),
        env=env)
    cli("stage", "--name", "s2", "--cfg", s2, "--tokens", "data/tokens", "--frames", str(out / "frames"),
        "--init", str(out / "init" / "model"), "--out", str(out / "s2"), env=env)
    keys = ("ctc_cer_heldout_voice", "ctc_cer_unseen_engine", "ctc_wer_heldout_voice", "ctc_wer_unseen_engine")
    arm = json.loads((out / "s2" / "metrics.json").read_text())["final"]
    base = json.loads((REPO / "data" / "models" / "s2" / "metrics.json").read_text())["final"]
    cache = json.loads((out / "frames" / "tower.json").read_text())
    print(json.dumps({"arm": args.name, "tower": cfg["model"]["tower"],
                      "s2": {k: round(arm[k], 3) for k in keys}, "pipeline_s2": {k: round(base[k], 3) for k in keys},
                      "encode": {k: cache[k] for k in ("precision", "train", "dev", "stream_check")}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
