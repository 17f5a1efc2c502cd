# Staged training (DESIGN section 7). The rule tower imports the pretrained Whisper tower from its registry
# wheels (paper: the Qwen2.5-Omni tower from a local folder); init builds the untrained model around it; encode_frames caches the frozen tower's frames of every
# train/dev stream once; s1..s4 and the offline baseline train on them. Here every training job is one DeepSpeed
# process (CPU + gloo); on a SLURM cluster (workflow/profiles/slurm) torchrun starts one per GPU on every node
# of the job (see distributed). Resumable from data/models/<stage>/checkpoints.
import shlex

# report.py and curves.py serve train_report only: editing them reruns the report, not the training
REPORT_ONLY = ["src/soundflow/train/report.py", "src/soundflow/train/curves.py"]
TRAIN_CODE = [f for f in src_files("train", "models", "tokens") if f not in REPORT_ONLY] + [
    "src/soundflow/layout.py", "src/soundflow/features.py", "src/soundflow/precision.py"]
# what the frame cache computes with: the tower alone (the rest of the model, the tokens and the stages may change
# without re-encoding the corpus)
FRAME_CODE = ["src/soundflow/__init__.py", "src/soundflow/audio.py", "src/soundflow/layout.py",
              "src/soundflow/features.py", "src/soundflow/precision.py", "src/soundflow/train/__main__.py",
              "src/soundflow/train/frames.py", "src/soundflow/train/tower.py",
              "src/soundflow/models/whisper_tower.py", "src/soundflow/models/qwen_omni.py"]
REPORT_CODE = TRAIN_CODE + REPORT_ONLY + ["src/soundflow/runtime/decoder.py"]  # the dev report decodes with the runtime's decoder
NEXT = {"s1": "init", "s2": "s1", "s3": "s2", "s4": "s3", "offline": "init"}
RENDEZVOUS_PORT = 29500


def distributed(wildcards, resources):
    """How a training stage starts. Locally: "" (this Python, one process). In a SLURM job that asks for GPUs
    (the slurm profile's `gres: gpu:G` and `mpi: srun`, per stage): srun starts one torchrun
    (`python -m torch.distributed.run`) on each of the job's nodes, torchrun one process per GPU, all meeting at
    the job's first node; every process reads its rank from torchrun's environment (soundflow.train.engine).
    Empty locally, so the local job's params never change with the machine."""
    gres, srun = str(resources.get("gres", "") or ""), resources.get("mpi", "")
    if not (gres.startswith("gpu") and srun):
        return {"srun": "", "torchrun": ""}
    gpus_per_node = int(gres.rsplit(":", 1)[1]) if ":" in gres else 1
    first_node = "$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1)"
    return {"srun": f"{srun} --ntasks-per-node=1 --nodes=$SLURM_JOB_NUM_NODES",
            "torchrun": f"-m torch.distributed.run --nnodes=$SLURM_JOB_NUM_NODES --nproc-per-node={gpus_per_node} "
                        f"--rdzv-backend=c10d --rdzv-endpoint={first_node}:{RENDEZVOUS_PORT} --rdzv-id=$SLURM_JOB_ID"}


rule tower:
    input:
        local=lambda w: local_source(TOWER_SOURCE) if w.source == TOWER_NAME else [],
        # the LM import is not the tower's; the Qwen2.5-Omni tower is read by its model file
        code=[f for f in src_files("pretrained") if not f.endswith("thinker.py")] + ["src/soundflow/models/qwen_omni.py"],
    output:
        directory("data/pretrained/{source}"),
    params:
        source=lambda w: TOWER_SOURCE if w.source == TOWER_NAME else w.source,  # a local folder's full path
    log:
        "logs/tower_{source}.log",
    shell:
        "{PY} -m soundflow.pretrained tower --source {params.source:q} --out {output} 2> >(tee {log} >&2)"


rule init_model:
    input:
        tokens=rules.tokens.output,
        tower=[TOWER_DIR] if TOWER_DIR else [],
        thinker=[THINKER_DIR] if THINKER_DIR else [],
        code=TRAIN_CODE,
    output:
        model=directory("data/models/init/model"),
        metrics="data/models/init/metrics.json",
    params:
        cfg=stage_cfg("s1"),
        tower=f"--tower {TOWER_DIR}" if TOWER_DIR else "",
        thinker=f"--thinker {THINKER_DIR}" if THINKER_DIR else "",
    log:
        "logs/init_model.log",
    shell:
        "{PY} -m soundflow.train init --cfg {params.cfg:q} --tokens {input.tokens} {params.tower} {params.thinker} "
        "--out data/models/init 2> >(tee {log} >&2)"


rule encode_frames:
    input:
        # an imported tower is encoded from its import; a random one (smoke) exists only in the init model
        tower=[TOWER_DIR] if TOWER_DIR else rules.init_model.output.model,
        corpus=rules.corpus.output,
        code=FRAME_CODE,
    output:
        directory("data/frames"),
    params:
        precision=config["train"]["common"]["precision"],
        tower=(f"--tower {TOWER_DIR} --tower-cfg {shlex.quote(cfg_slice('model.tower'))}" if TOWER_DIR
               else "--model data/models/init/model"),
    threads: workflow.cores
    log:
        "logs/encode_frames.log",
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m soundflow.train encode {params.tower} "
        "--corpus data/corpus --precision {params.precision} --out {output} 2> >(tee {log} >&2)"


rule train_stage:
    input:
        init=lambda w: f"data/models/{NEXT[w.stage]}/model",
        tokens=rules.tokens.output,
        frames=rules.encode_frames.output,
        code=TRAIN_CODE,
    output:
        model=directory("data/models/{stage}/model"),
        metrics="data/models/{stage}/metrics.json",
    wildcard_constraints:
        stage="s1|s2|s3|s4|offline",
    params:
        cfg=lambda w: stage_cfg(w.stage),
        srun=lambda w, resources: distributed(w, resources)["srun"],
        torchrun=lambda w, resources: distributed(w, resources)["torchrun"],
    threads: workflow.cores
    log:
        "logs/train_{stage}.log",
    shell:
        "OMP_NUM_THREADS={threads} {params.srun} {PY} {params.torchrun} -m soundflow.train stage --name {wildcards.stage} --cfg {params.cfg:q} "
        "--tokens {input.tokens} --frames {input.frames} --init {input.init} "
        "--out data/models/{wildcards.stage} 2> >(tee {log} >&2)"


rule train_report:
    input:
        model="data/models/s4/model",
        stages=expand("data/models/{stage}/metrics.json", stage=["s1", "s2", "s3", "s4"]),
        tokens=rules.tokens.output,
        frames=rules.encode_frames.output,
        code=REPORT_CODE,
    output:
        metrics=report(f"{REPORTS}/metrics/train.json", caption="../report/train.rst", category="Training"),
        curves=report(f"{REPORTS}/figures/training.png", caption="../report/train_curves.rst", category="Training"),
    params:
        cfg=stage_cfg("s4"),
    threads: workflow.cores
    log:
        "logs/train_report.log",
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m soundflow.train report --cfg {params.cfg:q} --model {input.model} "
        "--tokens {input.tokens} --frames {input.frames} --stages data/models/s1 "
        "data/models/s2 data/models/s3 data/models/s4 --out {output.metrics} --figure {output.curves} "
        "2> >(tee {log} >&2)"
