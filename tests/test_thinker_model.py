"""A pretrained thinker inside the model (issue 15; small and paper profiles): the tokens stage takes the thinker's
own tokenizer (special tokens above its vocabulary, no BPE trained), `train init --thinker` loads every LM weight
from it, a stage trains on it, and tokens of another tokenizer are refused with one clear error.

The thinker here is a stand-in for SmolLM2 (same code path, seconds instead of minutes): a random 2-layer Llama
with tied embeddings and a byte-level BPE of its own, saved as a transformers checkpoint and imported by the
thinker rule's code (soundflow.pretrained.thinker, a folder source)."""
import json

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from soundflow import layout
from soundflow.pretrained import thinker
from soundflow.tokens import tokenizer as tk
from tests.conftest import run
from tests.test_train import smoke_stage_config

TEXTS = ["the kettle in the kitchen is boiling", "please turn it off", "what is the capital of france", "你好世界"] * 20


def _stand_in_lm(folder):
    """A pretrained-LM-like checkpoint: its own tokenizer (one special token, <|endoftext|>) and tied weights."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True)
                     ).save_pretrained(folder)


@pytest.fixture(scope="module")
def stand_in(smoke_run, tmp_path_factory):
    """(workflow copy, imported thinker folder, tokens built with its tokenizer, init model folder); the CLIs log
    to the workflow copy's MLflow store."""
    work, _ = smoke_run
    root = tmp_path_factory.mktemp("thinker_model")
    _stand_in_lm(root / "lm")
    thinker_dir = thinker.import_thinker(root / "lm", root / "thinker-lm")
    cfg = json.dumps(json.loads(run(["python", "-c", "from soundflow import config; "
                                                     "print(config.slice_json(config.load(profile='smoke'), 'tokens'))"],
                                    work).stdout))
    run(["python", "-m", "soundflow.tokens", "build", "--cfg", cfg, "--corpus", str(work / "data/corpus"),
         "--out", str(root / "tokens"), "--tokenizer", str(thinker_dir)], work)
    init_cfg = json.dumps(smoke_stage_config(work, "s1"))
    run(["python", "-m", "soundflow.train", "init", "--cfg", init_cfg, "--tokens", str(root / "tokens"),
         "--thinker", str(thinker_dir), "--out", str(root / "init")], work)
    return work, thinker_dir, root / "tokens", root / "init"


def test_tokens_use_the_thinkers_tokenizer_with_specials_above_its_vocabulary(stand_in):
    _, thinker_dir, tokens, _ = stand_in
    tok, own = tk.load(tokens / "tokenizer"), tk.load(thinker_dir)
    assert tok.get_vocab() == own.get_vocab()
    base = len(own) - len(layout.SPECIAL_TOKENS)
    assert sorted(tok.convert_tokens_to_ids(list(layout.SPECIAL_TOKENS))) == list(range(base, len(own)))
    assert tk.encode(tok, "the kettle") == tk.encode(own, "the kettle")
    assert json.loads((tokens / "stats.json").read_text())["vocab_size"] == len(own)


def test_init_loads_every_lm_weight_from_the_thinker(stand_in):
    _, thinker_dir, _, init = stand_in
    ours = load_file(init / "model" / "model.safetensors")
    lm = AutoModelForCausalLM.from_pretrained(thinker_dir).state_dict()
    assert all(torch.equal(ours[f"lm.{k}"], v) for k, v in lm.items() if f"lm.{k}" in ours)
    assert torch.equal(ours["lm.model.embed_tokens.weight"], lm["model.embed_tokens.weight"])
    assert json.loads((init / "metrics.json").read_text())["thinker"] == str(thinker_dir)


def test_a_stage_trains_on_the_thinker(stand_in, tmp_path):
    work, _, tokens, init = stand_in
    cfg = smoke_stage_config(work, "s3")
    cfg["stage"].update(max_steps=2, eval_samples=2, eval_streams=1)
    run(["python", "-m", "soundflow.train", "stage", "--name", "s3", "--cfg", json.dumps(cfg), "--tokens", str(tokens),
         "--frames", str(work / "data/frames"), "--init", str(init / "model"), "--out", str(tmp_path / "s3")],
        work)
    metrics = json.loads((tmp_path / "s3" / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["final"]["loss_lm"] > 0


def test_tokens_of_another_tokenizer_are_refused(stand_in, tmp_path):
    work, thinker_dir, _, _ = stand_in
    proc = run(["python", "-m", "soundflow.train", "init", "--cfg", json.dumps(smoke_stage_config(work, "s1")),
                "--tokens", str(work / "data/tokens"), "--thinker", str(thinker_dir), "--out", str(tmp_path / "init")],
               work, check=False)
    assert proc.returncode != 0 and "is not the tokenizer of the thinker" in proc.stderr
    assert not (tmp_path / "init").exists()
