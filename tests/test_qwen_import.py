"""The paper profile's import path (issue 15): a local Qwen2.5-Omni folder gives the tower (rule tower) and the
thinker (rule thinker), and `train init` builds the model from both. Tested on the tiny random checkpoint of the
same transformers classes that the paper-smoke profile runs on (soundflow.pretrained.qwen_omni.make_tiny)."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM
from transformers.models.qwen2_5_omni import Qwen2_5OmniThinkerForConditionalGeneration

from soundflow import config, layout
from soundflow.models import QwenChunkedAudioEncoder
from soundflow.pretrained import qwen_omni, thinker
from soundflow.pretrained.__main__ import main as pretrained_cli
from soundflow.pretrained.ct2 import ConversionError
from soundflow.tokens.tokenizer import check_specials, load as load_tokenizer
from soundflow.train.stages import build_model

CHUNK = 40  # log-mel frames per 400 ms chunk


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """(the tiny Omni checkpoint as its own class, imported tower folder, imported thinker folder)."""
    root = tmp_path_factory.mktemp("qwen")
    qwen_omni.make_tiny(root / "omni")
    assert pretrained_cli(["tower", "--source", str(root / "omni"), "--out", str(root / "tower")]) == 0
    assert pretrained_cli(["thinker", "--source", str(root / "omni"), "--out", str(root / "thinker")]) == 0
    omni = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(root / "omni").eval()
    return omni, root / "tower", root / "thinker"


def test_tower_folder_holds_the_checkpoints_audio_tower(imported):
    omni, tower_dir, _ = imported
    tower = QwenChunkedAudioEncoder.from_pretrained(tower_dir)
    theirs = omni.model.audio_tower.state_dict()
    ours = {k.removeprefix("tower."): v for k, v in tower.state_dict().items()}
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert tower.config.n_mels == 128 and json.loads((tower_dir / "source.json").read_text())["num_mel_bins"] == 128
    # chunk by chunk, as the runtime will call it, equals the Omni tower on 40-frame utterances
    feats = torch.randn(1, 3 * CHUNK, 128)
    with torch.no_grad():
        streamed = torch.cat([tower.encode_chunk(feats[:, c * CHUNK:(c + 1) * CHUNK])[0] for c in range(3)], 1)
        ref = omni.model.audio_tower(feats[0].T, feature_lens=torch.tensor([CHUNK] * 3)).last_hidden_state
    assert torch.allclose(streamed[0], ref, atol=1e-5)


def test_thinker_folder_is_the_text_stack_with_the_special_tokens(imported):
    omni, _, thinker_dir = imported
    lm = AutoModelForCausalLM.from_pretrained(thinker_dir).eval()
    tok = load_tokenizer(thinker_dir)
    check_specials(tok, thinker_dir)
    record = json.loads((thinker_dir / "source.json").read_text())
    assert record["kind"] == "qwen2_5_omni" and len(record["special_tokens"]["added"]) == len(layout.SPECIAL_TOKENS)
    # the special tokens take the ids after the tokenizer's own (the Omni modality rows there are unused by us)
    kept = min(record["special_tokens"]["added"].values())
    embeds = torch.randn(1, 9, lm.config.hidden_size)
    with torch.no_grad():
        ref = omni.lm_head(omni.model.language_model(inputs_embeds=embeds).last_hidden_state)
        assert torch.allclose(lm(inputs_embeds=embeds).logits[..., :kept], ref[..., :kept], atol=1e-5)
    for text in ("the kettle in the kitchen is boiling", "我饿了我们吃饭吧"):
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_init_builds_the_model_on_the_qwen_tower_and_thinker(imported, tmp_path):
    omni, tower_dir, thinker_dir = imported
    load_tokenizer(thinker_dir).save_pretrained(tmp_path / "tokenizer")  # tokens built with the thinker's tokenizer
    model_cfg = config.load(profile="paper-smoke")["model"]
    model = build_model(model_cfg, tmp_path, tower_dir, thinker_dir)
    assert type(model.encoder).__name__ == "QwenChunkedAudioEncoder" and model.encoder.config.mel_ceiling == 1.5
    assert torch.equal(model.encoder.tower.conv1.weight, omni.model.audio_tower.conv1.weight)
    assert torch.equal(model.lm.model.layers[0].mlp.up_proj.weight, omni.model.language_model.layers[0].mlp.up_proj.weight)
    assert torch.equal(model.projector.weight, torch.eye(64))  # linear, between equal widths: the identity

    with pytest.raises(ValueError, match="model.tower.attention: the Qwen2.5-Omni tower .* set it to chunk"):
        build_model({**model_cfg, "tower": {**model_cfg["tower"], "attention": "block_causal"}}, tmp_path,
                    tower_dir, thinker_dir)


def test_a_folder_that_is_not_qwen_omni_is_refused_in_one_line(imported, tmp_path, capsys):
    _, tower_dir, _ = imported  # a transformers folder, but of our tower class: neither Omni nor CTranslate2
    assert pretrained_cli(["tower", "--source", str(tower_dir), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no model.bin" in err and len(err.splitlines()) == 1 and not (tmp_path / "t").exists()
    with pytest.raises(ConversionError, match="not a Qwen2.5-Omni folder"):
        qwen_omni.import_tower(tower_dir, tmp_path / "t")
