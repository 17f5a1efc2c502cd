"""Shared fixtures: one smoke corpus built once per session (tests read it, never change it)."""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from soundflow import config

BIN = Path(sys.executable).parent
WORKFLOW_FILES = ["Snakefile", "params.yaml", "dvc.yaml", ".dvcignore", "workflow", "src", "envs"]


def smoke_data_cfg() -> dict:
    return config.load(profile="smoke")["data"]


def tree_digest(root: Path, patterns=("*.parquet", "audio/**/*.wav")) -> dict[str, str]:
    """sha1 of every manifest and stream file under a corpus folder, by relative path."""
    out = {}
    for pattern in patterns:
        for path in sorted(Path(root).glob(pattern)):
            out[str(path.relative_to(root))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def smoke_corpus(tmp_path_factory):
    from soundflow.data.build import build

    out = tmp_path_factory.mktemp("smoke") / "corpus"
    frames = build(smoke_data_cfg(), out, workers=2, progress=False)
    return out, frames


def run(cmd, cwd, check=True, env_extra=None, **kw):
    """Run a command in a workflow copy with the venv on PATH and that copy's own MLflow store."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", MLFLOW_TRACKING_URI=f"sqlite:///{cwd}/mlflow.db",
               **(env_extra or {}))
    env.pop("SOUNDFLOW_PARENT_RUN_ID", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kw)
    if check and proc.returncode:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def set_param(workdir: Path, dotted: str, value) -> None:
    path = workdir / "params.yaml"
    cfg = yaml.safe_load(path.read_text())
    node = cfg
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A copy of the workflow with profile smoke, run once with `snakemake --cores 2`."""
    work = tmp_path_factory.mktemp("workflow")
    for name in WORKFLOW_FILES:
        src = config.REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    set_param(work, "profile", "smoke")
    proc = run(["snakemake", "--cores", "2"], work, timeout=600)
    return work, proc


