"""Tracking: parent/child runs against a local sqlite store and against a real `mlflow server`."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from soundflow import tracking  # noqa: E402

CFG = {"model": {"dim": 8, "layers": [1, 2]}, "seed": 3, "out": Path("data/x")}
PROFILE = "unit"


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Isolate the variables tracking reads and writes; leave no global mlflow URI behind."""
    for name in (tracking.SOUNDFLOW_PARENT_RUN_ID, tracking.MLFLOW_TRACKING_URI, "MLFLOW_RUN_ID"):
        monkeypatch.setenv(name, "")  # recorded, so the teardown restores the original state
        monkeypatch.delenv(name)
    monkeypatch.setenv(tracking.SOUNDFLOW_PROFILE, PROFILE)
    # A dead server must fail the test in seconds, not after minutes of retries.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    yield monkeypatch
    mlflow.set_tracking_uri(None)


def make_repo(path: Path) -> str:
    """A git repo with params.yaml committed; returns the commit sha."""
    path.mkdir()
    (path / "params.yaml").write_text("profile: unit\nseed: 3\n")
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def run_pipeline(repo: Path, log_file: Path) -> str:
    """The calls the Snakefile and two stage CLIs make: one stage succeeds, one raises."""
    tracking.init_store()
    tracking.init_store()  # idempotent: onstart may run again on a rerun
    parent = tracking.start_pipeline_run(PROFILE, ["all", "reports"], repo / "params.yaml")
    assert os.environ[tracking.SOUNDFLOW_PARENT_RUN_ID] == parent
    assert mlflow.active_run() is None  # the Snakemake process must keep no fluent run

    with tracking.stage_run("prepare", CFG) as run:
        for step, loss in enumerate([3.0, 2.0, 1.5]):
            run.log_metrics({"loss": loss}, step=step)
        run.log_metrics({"wer": 0.25})
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.stage_run("train", {"lr": 0.1}, run_name="train[tiny]"):
            raise RuntimeError("boom")
    assert mlflow.active_run() is None

    log_file.write_text("snakemake log\n")
    tracking.end_pipeline_run(parent, "FINISHED", log_file)
    assert tracking.SOUNDFLOW_PARENT_RUN_ID not in os.environ
    return parent


def test_pipeline_runs_nest_in_sqlite_store(env, tmp_path):
    sha = make_repo(tmp_path / "repo")
    env.chdir(tmp_path / "repo")
    store = tmp_path / "store"
    store.mkdir()
    env.setenv(tracking.MLFLOW_TRACKING_URI, f"sqlite:///{store / 'mlflow.db'}")

    parent_id = run_pipeline(tmp_path / "repo", tmp_path / "snakemake.log")

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exps = [e for e in client.search_experiments() if e.name == f"soundflow-{PROFILE}"]
    assert len(exps) == 1
    runs = {r.info.run_name: r for r in client.search_runs([exps[0].experiment_id])}
    assert set(runs) == {"pipeline", "prepare", "train[tiny]"}
    parent, prepare, train = runs["pipeline"], runs["prepare"], runs["train[tiny]"]

    assert parent.info.run_id == parent_id and parent.info.status == "FINISHED"
    assert parent.data.tags["targets"] == "all,reports"
    assert parent.data.tags["profile"] == PROFILE
    assert "mlflow.parentRunId" not in parent.data.tags
    for run in (parent, prepare, train):
        assert run.data.tags["git_commit"] == sha
        assert run.data.tags["git_dirty"] == "false"  # the store lives outside the repo
    assert prepare.data.tags["mlflow.parentRunId"] == parent_id
    assert train.data.tags["mlflow.parentRunId"] == parent_id
    assert (prepare.info.status, train.info.status) == ("FINISHED", "FAILED")
    assert prepare.data.tags["stage"] == "prepare" and train.data.tags["stage"] == "train"

    assert prepare.data.params == {"model.dim": "8", "model.layers": "[1, 2]", "seed": "3", "out": "data/x"}
    assert train.data.params == {"lr": "0.1"}
    history = client.get_metric_history(prepare.info.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(0, 3.0), (1, 2.0), (2, 1.5)]
    assert prepare.data.metrics["wer"] == 0.25

    assert {a.path for a in client.list_artifacts(parent_id)} == {"params.yaml", "snakemake"}
    assert [a.path for a in client.list_artifacts(parent_id, "snakemake")] == ["snakemake/snakemake.log"]
    config = json.loads(Path(client.download_artifacts(prepare.info.run_id, "config.json", str(tmp_path))).read_text())
    assert config == {"model": {"dim": 8, "layers": [1, 2]}, "seed": 3, "out": "data/x"}
    # Artifacts sit next to the database, not in the working directory.
    assert (store / "mlruns").is_dir() and not (tmp_path / "repo" / "mlruns").exists()


def test_standalone_stage_run_without_parent(env, tmp_path):
    env.chdir(tmp_path)
    tracking.init_store()
    with tracking.stage_run("score", {"k": 1}) as run:
        run.log_metrics({"acc": 0.5}, step=1)
    client = MlflowClient(tracking.tracking_uri())
    got = client.get_run(run.run_id)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert (tmp_path / "mlflow.db").is_file()
    assert got.info.status == "FINISHED" and "mlflow.parentRunId" not in got.data.tags
    assert got.data.tags["git_commit"] == "unknown" and got.data.tags["git_dirty"] == "unknown"


def test_flatten():
    flat = tracking.flatten({"a": {"b": {"c": 1}, "d": [1, "x"]}, "e": None, "long": "z" * 10_000})
    assert flat["a.b.c"] == "1"
    assert json.loads(flat["a.d"]) == [1, "x"]
    assert flat["e"] == "None"
    assert len(flat["long"]) == tracking.MAX_PARAM_VAL_LENGTH
    assert tracking.flatten({"x": 2}, prefix="cfg.") == {"cfg.x": "2"}


def test_git_info(tmp_path):
    assert tracking.git_info(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}
    sha = make_repo(tmp_path / "repo")
    assert tracking.git_info(tmp_path / "repo") == {"git_commit": sha, "git_dirty": "false"}
    (tmp_path / "repo" / "params.yaml").write_text("changed\n")
    assert tracking.git_info(tmp_path / "repo")["git_dirty"] == "true"


def test_bad_inputs_fail_clearly(env, tmp_path):
    with pytest.raises(ValueError, match="RUNNING"):
        tracking.end_pipeline_run("0" * 32, "RUNNING")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        tracking.start_pipeline_run(PROFILE, ["all"], tmp_path / "missing.yaml")


# --- against a real tracking server --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it forks a worker and a job runner), then kill."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop(proc)


def api(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_pipeline_runs_through_tracking_server(env, tmp_path, mlflow_server):
    make_repo(tmp_path / "repo")
    env.chdir(tmp_path / "repo")
    env.setenv(tracking.MLFLOW_TRACKING_URI, mlflow_server)

    parent_id = run_pipeline(tmp_path / "repo", tmp_path / "snakemake.log")

    name = urllib.parse.quote(f"soundflow-{PROFILE}")
    exp_id = api(mlflow_server, f"experiments/get-by-name?experiment_name={name}")["experiment"]["experiment_id"]
    found = api(mlflow_server, "runs/search", {"experiment_ids": [exp_id], "max_results": 10})["runs"]
    runs = {r["info"]["run_name"]: r for r in found}
    tags = {n: {t["key"]: t["value"] for t in r["data"].get("tags", [])} for n, r in runs.items()}
    metrics = {m["key"]: m["value"] for m in runs["prepare"]["data"]["metrics"]}

    assert set(runs) == {"pipeline", "prepare", "train[tiny]"}
    assert runs["pipeline"]["info"]["run_id"] == parent_id
    assert [runs[n]["info"]["status"] for n in ("pipeline", "prepare", "train[tiny]")] == ["FINISHED", "FINISHED", "FAILED"]
    assert tags["prepare"]["mlflow.parentRunId"] == parent_id == tags["train[tiny]"]["mlflow.parentRunId"]
    assert tags["pipeline"]["targets"] == "all,reports" and "git_commit" in tags["pipeline"]
    assert metrics == {"loss": 1.5, "wer": 0.25}  # the latest value of each metric
    # Artifacts went through the server into its artifacts destination, not into the repo.
    assert len(list((tmp_path / "artifacts").rglob("params.yaml"))) == 1
    assert not (tmp_path / "repo" / "mlruns").exists()
