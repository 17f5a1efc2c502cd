# Shared helpers: profile overlay + validation, config slices, code dependencies, MLflow parent run.
import os
import sys
from pathlib import Path

from soundflow import config as sf_config

# One resolved, validated config for every rule; a bad key stops the run here with one message.
try:
    config.update(sf_config.resolve(dict(config)))
except sf_config.ConfigError as err:
    raise SystemExit(f"ERROR: {err}")

PROFILE = config["profile"]
PY = sys.executable
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{Path.cwd() / 'mlflow.db'}")
os.environ["SOUNDFLOW_PROFILE"] = PROFILE


def cfg_slice(key):
    """The JSON of one config slice: the only parameters its rule passes (and reruns on)."""
    return sf_config.slice_json(config, key)


def src_files(*families):
    """Source modules a stage runs, declared as inputs so a code change reruns exactly that stage."""
    files = ["src/soundflow/__init__.py", "src/soundflow/audio.py", "src/soundflow/tracking.py"]
    for family in families:
        files += sorted(str(p) for p in Path("src/soundflow", family).rglob("*.py"))
    return files


def pipeline_start():
    from soundflow import tracking

    tracking.init_store()
    tracking.start_pipeline_run(PROFILE, list(sys.argv[1:]), Path("params.yaml"))


def pipeline_end(status, logs):
    from soundflow import tracking

    run_id = os.environ.get("SOUNDFLOW_PARENT_RUN_ID")
    logs = [logs] if isinstance(logs, (str, Path)) else list(logs or [])  # Snakemake 9 passes a list
    if run_id:
        tracking.end_pipeline_run(run_id, status, Path(logs[0]) if logs else None)


def stage_cfg(name):
    """A training stage's config (soundflow.config.stage_config) as its rule passes it."""
    import json

    return json.dumps(sf_config.stage_config(config, name), sort_keys=True)
