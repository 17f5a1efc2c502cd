"""MLflow tracking for the pipeline: one parent run per Snakemake invocation, one nested run per stage.

The Snakefile calls `init_store` and `start_pipeline_run` from `onstart`, and `end_pipeline_run`
from `onsuccess`/`onerror`; each stage CLI wraps its work in `stage_run`. Jobs find the parent
through the SOUNDFLOW_PARENT_RUN_ID environment variable (DESIGN.md section 9,
reference/workflow.md sections 3 and 6.3).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Set before mlflow reads them: no background sampling threads unless a stage asks for them,
# and no "View run at <url>" banner after every run against a server.
os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

import mlflow  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH  # noqa: E402

# mlflow and alembic log schema creation and migrations at INFO on every fresh store.
for _name in ("mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)

MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
SOUNDFLOW_PARENT_RUN_ID = "SOUNDFLOW_PARENT_RUN_ID"
SOUNDFLOW_PROFILE = "SOUNDFLOW_PROFILE"
DEFAULT_PROFILE = "tiny"
RUN_STATUSES = ("FINISHED", "FAILED")

log = logging.getLogger(__name__)


def tracking_uri() -> str:
    """The configured URI, else `mlflow.db` in the working directory (the repo root for Snakemake)."""
    return os.environ.get(MLFLOW_TRACKING_URI) or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def profile_name() -> str:
    return os.environ.get(SOUNDFLOW_PROFILE) or DEFAULT_PROFILE


def experiment_name(profile: str | None = None) -> str:
    return f"soundflow-{profile or profile_name()}"


def _artifact_location(uri: str) -> str | None:
    """Keep sqlite artifacts next to the database, whatever the cwd; a server picks its own."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///")).resolve()
    return (db.parent / "mlruns").as_uri()


def _experiment_id(client: MlflowClient, name: str) -> str:
    """Get or create the experiment; tolerate another process creating it at the same moment."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(client.tracking_uri))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)
    if exp.lifecycle_stage == "deleted":  # runs cannot be created in a deleted experiment
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def init_store() -> None:
    """Create or upgrade the schema once, before parallel jobs race to do it (workflow.md 3.2)."""
    _experiment_id(MlflowClient(tracking_uri()), experiment_name())


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_info(repo: Path | None = None) -> dict[str, str]:
    """Commit sha and whether the tree has uncommitted or untracked changes.

    `git_commit` is "unknown" outside git or before the first commit; `git_dirty` is "unknown"
    only when git cannot read the repository at all.
    """
    repo = Path.cwd() if repo is None else Path(repo)
    sha = _git(repo, "rev-parse", "--verify", "HEAD")
    status = _git(repo, "status", "--porcelain")
    return {
        "git_commit": sha.strip() if sha else "unknown",
        "git_dirty": "unknown" if status is None else str(bool(status.strip())).lower(),
    }


def _git_tags() -> dict[str, str]:
    tags = git_info()
    if tags["git_commit"] != "unknown":
        tags["mlflow.source.git.commit"] = tags["git_commit"]  # the UI shows this one
    return tags


def start_pipeline_run(profile: str, targets: list[str], params_file: Path) -> str:
    """Create the parent run for one Snakemake invocation and export its id to the jobs.

    Uses MlflowClient rather than mlflow.start_run so that the calling process (Snakemake)
    keeps no active run that would capture later fluent calls.
    """
    params_file = Path(params_file)
    if not params_file.is_file():
        raise FileNotFoundError(f"params file not found: {params_file}")
    uri = tracking_uri()
    client = MlflowClient(uri)
    tags = {**_git_tags(), "profile": profile, "targets": ",".join(targets)}
    run = client.create_run(_experiment_id(client, experiment_name(profile)), run_name="pipeline", tags=tags)
    run_id = run.info.run_id
    try:
        client.log_artifact(run_id, str(params_file))
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    # Jobs inherit these, so every stage logs to the same store and experiment as the parent.
    os.environ[SOUNDFLOW_PARENT_RUN_ID] = run_id
    os.environ[MLFLOW_TRACKING_URI] = uri
    os.environ[SOUNDFLOW_PROFILE] = profile
    return run_id


def end_pipeline_run(run_id: str, status: str, log_file: Path | None = None) -> None:
    """Terminate the parent run FINISHED or FAILED, attaching the Snakemake log when there is one."""
    if status not in RUN_STATUSES:
        raise ValueError(f"pipeline run status must be one of {RUN_STATUSES}, got {status!r}")
    client = MlflowClient(tracking_uri())
    try:
        if log_file is not None:
            if Path(log_file).is_file():
                client.log_artifact(run_id, str(log_file), artifact_path="snakemake")
            else:  # an onerror handler must not hide the real failure behind this one
                log.warning("snakemake log file not found, not attached: %s", log_file)
    finally:
        client.set_terminated(run_id, status)
        if os.environ.get(SOUNDFLOW_PARENT_RUN_ID) == run_id:
            del os.environ[SOUNDFLOW_PARENT_RUN_ID]


def flatten(cfg: dict, prefix: str = "") -> dict[str, str]:
    """Nested dicts to dotted keys with string values, as MLflow params need.

    Lists are JSON-encoded so they read back unambiguously; long values are cut to MLflow's limit.
    """
    flat: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
            continue
        text = json.dumps(value, default=str) if isinstance(value, (list, tuple)) else str(value)
        flat[name] = text[:MAX_PARAM_VAL_LENGTH]
    return flat


class StageRun:
    """The run of one stage job; every call names the run explicitly, so no fluent state matters."""

    def __init__(self, run_id: str, client: MlflowClient):
        self.run_id = run_id
        self._client = client

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step, run_id=self.run_id)

    def log_params(self, params: dict) -> None:
        mlflow.log_params(flatten(params), run_id=self.run_id)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self._client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def log_artifacts(self, directory: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._client.log_artifacts(self.run_id, str(directory), artifact_path=artifact_path)

    def log_dict(self, dictionary: dict, artifact_file: str) -> None:
        self._client.log_dict(self.run_id, dictionary, artifact_file)


@contextmanager
def stage_run(stage: str, cfg: dict, run_name: str | None = None) -> Iterator[StageRun]:
    """Run a stage inside an MLflow run nested under the pipeline run (standalone when run by hand).

    The run stays active in the fluent API for the block, so libraries that log to the active run
    (HF Trainer's MLflowCallback, mlflow.<flavor>.log_model) land in it. An exception ends the run
    FAILED and propagates; Ctrl-C ends it KILLED.
    """
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    parent_id = os.environ.get(SOUNDFLOW_PARENT_RUN_ID) or None
    # A child must live in its parent's experiment or the UI does not nest it.
    if parent_id:
        experiment_id = client.get_run(parent_id).info.experiment_id
    else:
        experiment_id = _experiment_id(client, experiment_name())
    tags = {**_git_tags(), "stage": stage, "profile": profile_name()}
    active = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name or stage,
        parent_run_id=parent_id,
        nested=parent_id is not None,
        tags=tags,
    )
    run = StageRun(active.info.run_id, client)
    status = "FINISHED"
    try:
        run.log_params(cfg)
        # default=str: configs may hold Paths, which the JSON encoder rejects.
        client.log_text(run.run_id, json.dumps(cfg, indent=2, default=str), "config.json")
        yield run
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        mlflow.end_run(status)
