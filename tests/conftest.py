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
WORKFLOW_FILES = ["Snakefile", "params.yaml", "dvc.yaml", ".dvcignore", "workflow", "src", "envs",
                  "reports/reference"]  # the summary sets the run beside the reference run's metrics


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


def _env(cwd, env_extra=None) -> dict:
    """The venv on PATH and the workflow copy's own MLflow store."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", MLFLOW_TRACKING_URI=f"sqlite:///{cwd}/mlflow.db",
               **(env_extra or {}))
    env.pop("SOUNDFLOW_PARENT_RUN_ID", None)
    return env


def _checked(cmd, proc):
    if proc.returncode:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def run(cmd, cwd, check=True, env_extra=None, **kw):
    """Run a command in a workflow copy with the venv on PATH and that copy's own MLflow store."""
    proc = subprocess.run(cmd, cwd=cwd, env=_env(cwd, env_extra), capture_output=True, text=True, **kw)
    return _checked(cmd, proc) if check else proc


def run_side_by_side(cmds: list[tuple[list[str], dict | None]], cwd) -> None:
    """Run independent (command, env_extra) pairs at once, as `run` does each: a CLI process spends most of its
    time importing, so two of them take little longer than one. Fails on the first that failed."""
    procs = [(cmd, subprocess.Popen(cmd, cwd=cwd, env=_env(cwd, extra), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)) for cmd, extra in cmds]
    done = [(cmd, subprocess.CompletedProcess(cmd, p.returncode, *p.communicate())) for cmd, p in procs]
    for cmd, proc in done:
        _checked(cmd, proc)


def set_param(workdir: Path, dotted: str, value) -> None:
    path = workdir / "params.yaml"
    cfg = yaml.safe_load(path.read_text())
    node = cfg
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def copy_workflow(dest: Path, extra: tuple[str, ...] = ()) -> Path:
    """The workflow's files (WORKFLOW_FILES and `extra`) copied into `dest`, where snakemake can run on them."""
    for name in [*WORKFLOW_FILES, *extra]:
        src = config.REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    return dest


def save_tiny_whisper(folder: Path):
    """A tiny random WhisperForConditionalGeneration saved where rule tower would put an import; returns it."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    whisper = WhisperForConditionalGeneration(WhisperConfig(
        d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=48, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=48, num_mel_bins=80, vocab_size=100, pad_token_id=1,
        bos_token_id=0, eos_token_id=0, decoder_start_token_id=0))
    whisper.save_pretrained(folder)
    return whisper


# The smoke DAG's jobs spend their time importing, not computing: one thread each lets two run side by side
# (250 s -> 185 s). The paper smoke run keeps the default threads, so the benchmarks' worker pool stays tested.
SMOKE_THREADS = ["--set-threads", "bench=1", "train_stage=1", "train_report=1", "encode_frames=1"]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A copy of the workflow with profile smoke, run once with `snakemake --cores 2`."""
    work = copy_workflow(tmp_path_factory.mktemp("workflow"))
    set_param(work, "profile", "smoke")
    proc = run(["snakemake", "--cores", "2", *SMOKE_THREADS], work, timeout=600)
    return work, proc


def tiny_tower_config(**kw):
    """A small random Whisper-shaped tower (the shape of the smoke profile's, smaller)."""
    from transformers import WhisperConfig

    from soundflow.models import WhisperTowerConfig

    whisper = WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                            num_mel_bins=80)
    return WhisperTowerConfig(whisper_config=whisper.to_dict(), **kw)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A random (untrained) tiny model exported as a runtime bundle: the runtime and benchmark code paths
    on real audio, with no training run. Its decisions are arbitrary but deterministic (fp32 tower and LM)."""
    import torch
    from transformers import LlamaConfig

    from soundflow.models import AudioInteractionModel, AudioLMConfig
    from soundflow.runtime import export_bundle
    from soundflow.tokens.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("bundle")
    tok = train_tokenizer(["transcribe what you hear", "a dog barked twice", "你好 世界", "the kettle is whistling"] * 20,
                          vocab_size=300)
    ids = tok.convert_tokens_to_ids
    torch.manual_seed(0)
    model = AudioInteractionModel(AudioLMConfig(
        encoder_config=tiny_tower_config(),
        lm_config=LlamaConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96,
                              vocab_size=len(tok), tie_word_embeddings=True),
        audio_token_id=ids("<audio>"), frame_dropout=0.0))
    model.eval()
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    settings = dict(max_context_chunks=8, keep_context_chunks=4, max_reply_tokens=6,
                    default_instruction="transcribe what you hear", tower_precision="fp32", lm_precision="fp32")
    first = export_bundle(model_dir, root / "first", **settings)
    # Steer <response> so that loud chunks tip towards it and quiet ones towards <silent>: the bundle then
    # has both kinds of decisions on ordinary test audio (noise bursts between pauses).
    hidden = {name: _last_hidden(first, level) for name, level in (("loud", 0.3), ("quiet", 0.003))}
    mid, diff = (hidden["loud"] + hidden["quiet"]) / 2, hidden["loud"] - hidden["quiet"]
    direction = diff - (diff @ mid) / (mid @ mid) * mid  # zero on the midpoint, + loud, - quiet
    with torch.no_grad():
        weight = model.lm.get_output_embeddings().weight
        weight[ids("<response>")] = weight[ids("<silent>")] + 20.0 * direction / direction.norm()
    model.save_pretrained(model_dir)
    return export_bundle(model_dir, root / "bundle", **settings)


def _last_hidden(bundle_dir: Path, level: float):
    """The LM's final hidden state after two chunks of noise at `level` (RMS), in a fresh session."""
    import numpy as np
    import torch

    from soundflow.runtime import StreamingSession, load_bundle

    session = StreamingSession(load_bundle(bundle_dir))
    for _ in range(2):
        chunk = np.random.default_rng(1).normal(0, level, session.settings.chunk_samples).astype(np.float32)
        embeds = session.encoder(chunk)
    decoder = session.decoder
    with torch.no_grad():
        out = decoder.model.lm.get_decoder()(inputs_embeds=torch.cat([decoder.prefix_embeds, embeds], dim=1))[0]
    return out[0, -1]
