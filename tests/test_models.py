"""Models: the audio LM on a small random Whisper tower (the tower itself: test_whisper_tower.py): loss masks,
the CTC head, memorisation, save/load, KV-cached streaming decode == full forward, and the Qwen2.5-Omni
paper-backbone loader on a tiny local checkpoint."""
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig

from soundflow import layout
from soundflow.models import AudioInteractionModel, AudioLMConfig, WhisperTowerConfig, load_paper_backbone
from tests.conftest import tiny_tower_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

CHUNK = 4 * layout.FRAMES_PER_CHUNK  # feature frames per 400 ms chunk
TOKENS = list(layout.SPECIAL_TOKENS) + [f"w{i}" for i in range(10)]
ID = {t: i for i, t in enumerate(TOKENS)}


def tiny_config(**overrides) -> AudioLMConfig:
    encoder = tiny_tower_config(window_frames=200, carry_frames=60)  # 10-chunk windows: long streams cross them
    lm = LlamaConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96,
                     vocab_size=len(TOKENS), tie_word_embeddings=True)
    kwargs = dict(encoder_config=encoder, lm_config=lm, audio_token_id=ID[layout.AUDIO], frame_dropout=0.0)
    return AudioLMConfig(**{**kwargs, **overrides})


def stream_sample(replies: list[list[str] | None]):
    """Layout of DESIGN section 5 for len(replies) chunks: ids, labels, label kinds (None = <silent>)."""
    ids = [ID[layout.ONLINE], ID[layout.lang_token("en")]]
    kind = [layout.LABEL_NONE] * 2
    for reply in replies:
        ids += [ID[layout.AUDIO_BEGIN]] + [ID[layout.AUDIO]] * layout.FRAMES_PER_CHUNK + [ID[layout.CHUNK_END]]
        kind += [layout.LABEL_NONE] * (layout.FRAMES_PER_CHUNK + 2)
        if reply is None:
            ids.append(ID[layout.SILENT])
            kind.append(layout.LABEL_STREAM)
        else:
            words = [ID[layout.emotion_token("normal")]] + [ID[w] for w in reply] + [ID[layout.EOS]]
            ids += [ID[layout.RESPONSE]] + words
            kind += [layout.LABEL_STREAM] + [layout.LABEL_LM] * len(words)
    ids, kind = torch.tensor(ids), torch.tensor(kind)
    labels = torch.where(kind == layout.LABEL_NONE, torch.full_like(ids, -100), ids)
    return ids, labels, kind


def batch_of(samples):
    """Right-pad samples to one batch: input_ids, attention_mask, labels, label_kind."""
    length = max(len(s[0]) for s in samples)
    pad = lambda t, v: F.pad(t, (0, length - len(t)), value=v)  # noqa: E731
    ids = torch.stack([pad(s[0], ID[layout.PAD]) for s in samples])
    mask = torch.stack([pad(torch.ones_like(s[0]), 0) for s in samples])
    labels = torch.stack([pad(s[1], -100) for s in samples])
    kind = torch.stack([pad(s[2], layout.LABEL_NONE) for s in samples])
    return ids, mask, labels, kind


# ----- audio LM -----------------------------------------------------------------------------------------

def test_shapes_frames_and_label_masks():
    torch.manual_seed(0)
    model = AudioInteractionModel(tiny_config()).eval()
    samples = [stream_sample([None, ["w1", "w2"]]), stream_sample([["w3"], None, None])]
    ids, mask, labels, kind = batch_of(samples)
    features = torch.randn(2, 3 * CHUNK, layout.N_MELS)
    lengths = torch.tensor([2 * CHUNK, 3 * CHUNK])
    out = model(ids, mask, features, lengths, labels=labels, label_kind=kind)
    assert out["logits"].shape == (2, ids.shape[1], len(TOKENS))

    # i-th <audio> slot = projected i-th tower frame of that sample; 10 frames per 40 feature frames
    frames, frame_lengths = model.encode_audio(features, lengths)
    assert frames.shape == (2, 30, 32) and frame_lengths.tolist() == [20, 30]
    embeds = model.embed(ids, frames, frame_lengths)
    slots = (ids[1] == ID[layout.AUDIO]).nonzero().flatten()
    assert torch.allclose(embeds[1, slots], model.projector(frames[1, :30]), atol=1e-6)
    # precomputed (cached) frames give the same result as features
    cached = model(ids, mask, audio_frames=[frames[0, :20], frames[1, :30]], labels=labels, label_kind=kind)
    assert torch.allclose(cached["logits"], out["logits"], atol=1e-5)

    # each loss is the mean CE over exactly its own kind of position (position t predicts t + 1)
    logp = out["logits"][:, :-1].log_softmax(-1)
    nll = -logp.gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    for name, value in (("loss_stream", layout.LABEL_STREAM), ("loss_lm", layout.LABEL_LM)):
        sel = kind[:, 1:] == value
        assert torch.allclose(out[name], nll[sel].mean(), atol=1e-5)
    assert torch.allclose(out["loss"], out["loss_lm"] + out["loss_stream"])
    weighted = model(ids, mask, features, lengths, labels=labels, label_kind=kind, lm_weight=0.5, stream_weight=2.0)
    assert torch.allclose(weighted["loss"], 0.5 * out["loss_lm"] + 2.0 * out["loss_stream"], atol=1e-6)

    # zeroing one kind: the LM positions become unlabelled -> loss_lm 0, loss_stream untouched
    no_lm = torch.where(kind == layout.LABEL_LM, torch.full_like(kind, layout.LABEL_NONE), kind)
    only_stream = model(ids, mask, features, lengths, labels=labels, label_kind=no_lm)
    assert only_stream["loss_lm"].item() == 0.0
    assert torch.allclose(only_stream["loss_stream"], out["loss_stream"])
    # and the stream loss gets gradient only from logits that predict a LABEL_STREAM token
    logits = out["logits"].detach().requires_grad_()
    from soundflow.models import split_losses
    split_losses(logits, labels, kind)["loss_stream"].backward()
    touched = logits.grad.abs().sum(-1)[:, :-1] > 0
    assert torch.equal(touched, kind[:, 1:] == layout.LABEL_STREAM)

    # plain dicts without model_type (params.yaml slices) override the default Whisper tower / Llama LM
    cfg = AudioLMConfig(encoder_config={"attention": "chunk"}, lm_config={"hidden_size": 64}, vocab_size=50)
    assert cfg.encoder_config["model_type"] == "soundflow_whisper_tower" and cfg.encoder_config["attention"] == "chunk"
    assert cfg.encoder_config["whisper_config"]["model_type"] == "whisper" and cfg.ctc_vocab_size == 0
    assert cfg.lm_config["model_type"] == "llama" and cfg.lm_config["hidden_size"] == 64
    assert cfg.lm_config["vocab_size"] == cfg.vocab_size == 50 and cfg.lm_config["num_hidden_layers"] == 4

    with pytest.raises(ValueError, match="sample 1 has 30 <audio> slots but only 20"):
        model(ids, mask, audio_frames=[frames[0, :20], frames[1, :20]])


@pytest.fixture(scope="module")
def memorised():
    """A tiny model trained until it reproduces 8 short streams (the decision and reply depend on the audio)."""
    torch.manual_seed(0)
    model = AudioInteractionModel(tiny_config())
    replies = [[None, [f"w{i}", f"w{(i + 3) % 10}"]] if i % 2 else [[f"w{i}"], None] for i in range(8)]
    samples = [stream_sample(r) for r in replies]
    ids, mask, labels, kind = batch_of(samples)
    features = torch.randn(8, 2 * CHUNK, layout.N_MELS)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(300):
        out = model(ids, mask, features, labels=labels, label_kind=kind)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
        if losses[-1] < 0.02:
            break
    return model.eval(), replies, features, losses


def test_tiny_model_memorises_eight_samples(memorised):
    _, _, _, losses = memorised
    assert losses[0] > 5.0  # starts near chance: ln(32) = 3.5 for each of the two losses
    assert losses[-1] < 0.05 and len(losses) < 300


def test_save_pretrained_round_trip(tmp_path, memorised):
    model = memorised[0]
    samples = [stream_sample(r) for r in memorised[1][:2]]
    ids, mask, labels, kind = batch_of(samples)
    features = memorised[2][:2]
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = AudioInteractionModel.from_pretrained(tmp_path).eval()
    assert loaded.config.encoder_config == model.config.encoder_config
    assert loaded.config.lm_config["hidden_size"] == 48 and loaded.config.vocab_size == len(TOKENS)
    with torch.no_grad():
        a = model(ids, mask, features, labels=labels, label_kind=kind)
        b = loaded(ids, mask, features, labels=labels, label_kind=kind)
    assert torch.equal(a["logits"], b["logits"]) and torch.equal(a["loss"], b["loss"])
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), name


def test_cached_streaming_decode_matches_full_forward(memorised):
    model, replies, features, _ = memorised
    ids, labels, kind = stream_sample(replies[1])
    with torch.no_grad():
        full = model(ids[None], features=features[1:2])["logits"][0]
    # push the same tokens chunk by chunk: prefix, then per chunk audio tokens + decision tokens
    cache, state, logits = model.new_cache(), model.init_encoder_state(), []
    logits.append(model.prefill(model.embed_chunk(ids[:2]), cache)[0])
    pos = 2
    for c in range(2):
        frames, state = model.encode_chunk(features[1:2, c * CHUNK:(c + 1) * CHUNK], state)
        end = pos + layout.FRAMES_PER_CHUNK + 2
        logits.append(model.prefill(model.embed_chunk(ids[pos:end], frames), cache)[0])
        pos = end
        while pos < len(ids) and ids[pos] != ID[layout.AUDIO_BEGIN]:
            logits.append(model.prefill(model.embed_chunk(ids[pos:pos + 1]), cache)[0])
            pos += 1
    assert cache.get_seq_length() == len(ids)
    assert torch.allclose(torch.cat(logits), full, atol=1e-4)


def test_cached_streaming_decode_matches_full_forward_across_tower_windows(memorised):
    """23 chunks through 10-chunk tower windows (3 carried): streaming tower + KV-cached LM == one full pass."""
    model = memorised[0]
    n = 23
    ids, _, _ = stream_sample([None] * n)
    torch.manual_seed(1)
    features = torch.randn(1, n * CHUNK, layout.N_MELS)
    with torch.no_grad():
        full = model(ids[None], features=features)["logits"][0]
    cache, state, logits = model.new_cache(), model.init_encoder_state(), []
    logits.append(model.prefill(model.embed_chunk(ids[:2]), cache)[0])
    pos = 2
    for c in range(n):
        frames, state = model.encode_chunk(features[:, c * CHUNK:(c + 1) * CHUNK], state)
        end = pos + layout.FRAMES_PER_CHUNK + 3  # <audio_begin> <audio>x10 <chunk_end> <silent>
        logits.append(model.prefill(model.embed_chunk(ids[pos:end], frames), cache)[0])
        pos = end
    assert pos == len(ids) and state.chunks_in_window == 9  # windows: chunks [0, 10), [7, 17), [14, 23)
    torch.testing.assert_close(torch.cat(logits), full, atol=1e-4, rtol=1e-4)


def test_conv_projector_reads_earlier_frames_only_and_streams_chunk_by_chunk_as_in_one_pass():
    """The conv projector reads the 12 tower frames before each frame and none after it. Chunk by chunk, each
    chunk given the frames before it (runtime.decoder.keep_past keeps the last 12), the KV-cached LM's logits
    equal one full pass; an mlp projector reads none."""
    from soundflow.runtime.decoder import keep_past

    torch.manual_seed(0)
    model = AudioInteractionModel(tiny_config(projector_type="conv")).eval()
    assert model.projector_context == 12 and AudioInteractionModel(tiny_config()).projector_context == 0
    assert keep_past(AudioInteractionModel(tiny_config()), torch.randn(1, 30, 32)) is None
    n = 6
    ids, _, _ = stream_sample([None] * n)
    features = torch.randn(1, n * CHUNK, layout.N_MELS)
    with torch.no_grad():
        full = model(ids[None], features=features)["logits"][0]
        frames, _ = model.encode_audio(features)
        later = frames.clone()
        later[:, 25:] += 1.0
        torch.testing.assert_close(model.project(later)[:, :25], model.project(frames)[:, :25])
        assert not torch.allclose(model.project(later)[:, 25:], model.project(frames)[:, 25:])
        # a chunk projected without the frames before it differs: streaming must pass them
        assert not torch.allclose(model.project(frames[:, 20:30]), model.project(frames)[:, 20:30], atol=1e-3)
        cache = model.new_cache()
        logits = [model.prefill(model.embed_chunk(ids[:2]), cache)[0]]
        pos, per = 2, layout.FRAMES_PER_CHUNK
        for c in range(n):
            end = pos + per + 3  # <audio_begin> <audio>x10 <chunk_end> <silent>
            past = keep_past(model, frames[:, :c * per])
            assert past is None if c == 0 else past.shape[1] == min(12, c * per)
            logits.append(model.prefill(model.embed_chunk(ids[pos:end], frames[:, c * per:(c + 1) * per], past), cache)[0])
            pos = end
    torch.testing.assert_close(torch.cat(logits), full, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="projector_type must be one of mlp, conv, linear, got 'lstm'"):
        tiny_config(projector_type="lstm")


def test_ctc_head_reads_the_projected_frames_and_survives_save_load(tmp_path):
    from soundflow.tokens import ctc

    torch.manual_seed(0)
    model = AudioInteractionModel(tiny_config(ctc_vocab_size=ctc.VOCAB_SIZE)).eval()
    assert model.ctc_head.in_features == 48 and ctc.VOCAB_SIZE == 29
    frames = torch.randn(2, 15, 32)
    logp = model.ctc_log_probs(frames)
    assert logp.shape == (2, 15, 29) and logp.dtype == torch.float32
    torch.testing.assert_close(logp, model.ctc_head(model.projector(frames)).log_softmax(-1))
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 15))
    model.save_pretrained(tmp_path)
    loaded = AudioInteractionModel.from_pretrained(tmp_path).eval()
    assert loaded.config.ctc_vocab_size == 29 and torch.equal(loaded.ctc_log_probs(frames), logp)
    assert isinstance(loaded.encoder.config, WhisperTowerConfig)
    assert loaded.encoder.config.to_dict() == model.encoder.config.to_dict()
    model.train()  # frame dropout reaches the CTC head as it reaches the LM
    model.config.frame_dropout = 0.5
    assert not torch.allclose(model.ctc_log_probs(frames), logp)
    with pytest.raises(ValueError, match="no CTC head"):
        AudioInteractionModel(tiny_config()).ctc_log_probs(frames)


def word_tokenizer():
    """A word-level tokenizer over TOKENS, so the runtime's decoder runs on the memorised model."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    inner = Tokenizer(models.WordLevel(ID, unk_token=layout.PAD))
    inner.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=inner)


def test_chunk_decoder_reproduces_memorised_streams(memorised):
    from soundflow.runtime.decoder import ChunkDecoder, chunk_embeddings

    model, replies, features, _ = memorised
    tok = word_tokenizer()
    for i, reply in enumerate(replies):
        decoder = ChunkDecoder(model, tok, stream_sample([])[0], max_reply_tokens=8)
        state = model.init_encoder_state()
        emitted, texts = [], []
        for c in range(2):
            frames, state = model.encode_chunk(features[i:i + 1, c * CHUNK:(c + 1) * CHUNK], state)
            decision = decoder.step(chunk_embeddings(model, decoder.ids, frames))
            emitted.append([TOKENS[t] for t in decision.tokens])
            texts.append(decision.text)
        expected = [[layout.SILENT] if r is None else
                    [layout.RESPONSE, layout.emotion_token("normal"), *r, layout.EOS] for r in reply]
        assert emitted == expected
        assert texts == ["" if r is None else " ".join(r) for r in reply]
        # every token but the pending last one is in the cache: prefix + 2 x (chunk + decision)
        assert decoder.cache_tokens() == 2 + sum(12 + len(e) for e in emitted) - 1


# ----- paper backbone -----------------------------------------------------------------------------------

def tiny_qwen_thinker_config():
    from transformers.models.qwen2_5_omni import Qwen2_5OmniThinkerConfig

    audio = dict(num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32,
                 output_dim=48)
    text = dict(vocab_size=64, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                        "mrope_section": [2, 1, 3]})
    vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=48,
                  fullatt_block_indexes=[0])
    return Qwen2_5OmniThinkerConfig(audio_config=audio, text_config=text, vision_config=vision)


@pytest.mark.parametrize("layout_kind", ["thinker", "omni"])
def test_paper_backbone_loads_tiny_local_qwen_omni_checkpoint(tmp_path, monkeypatch, layout_kind):
    from transformers.models.qwen2_5_omni import (
        Qwen2_5OmniConfig,
        Qwen2_5OmniForConditionalGeneration,
        Qwen2_5OmniThinkerForConditionalGeneration,
    )

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    if layout_kind == "thinker":  # keys audio_tower.*, model.*, lm_head.*
        thinker = Qwen2_5OmniThinkerForConditionalGeneration(tiny_qwen_thinker_config())
        thinker.save_pretrained(tmp_path)
    else:  # the released layout: the same under thinker.*, config.json of the whole Omni model
        omni = Qwen2_5OmniForConditionalGeneration(
            Qwen2_5OmniConfig(thinker_config=tiny_qwen_thinker_config().to_dict(), enable_audio_output=False))
        omni.save_pretrained(tmp_path)
        thinker = omni.thinker
    thinker.eval()

    audio_id = 60  # a spare id of the tiny vocabulary plays <audio>; 70 ids after growing for our tokens
    model = load_paper_backbone(tmp_path, audio_token_id=audio_id, vocab_size=70).eval()
    assert model.config.vocab_size == 70 and model.lm.get_input_embeddings().weight.shape == (70, 48)
    assert torch.equal(model.encoder.tower.conv1.weight, thinker.model.audio_tower.conv1.weight)

    # the tower encodes each 40-frame chunk alone: whole utterance == chunk by chunk == the tower on [40, 40]
    features = torch.randn(1, 2 * CHUNK, 128)
    with torch.no_grad():
        frames, frame_lengths = model.encode_audio(features)
        tower = thinker.model.audio_tower(features[0].T, feature_lens=torch.tensor([CHUNK, CHUNK])).last_hidden_state
        streamed = [model.encode_chunk(features[:, c * CHUNK:(c + 1) * CHUNK], None)[0] for c in range(2)]
    assert frames.shape == (1, 20, 48) and frame_lengths.tolist() == [20]
    assert torch.allclose(frames[0], tower, atol=1e-5)
    assert torch.allclose(torch.cat(streamed, 1), frames, atol=1e-5)
    # the thinker text stack (multimodal RoPE, equal positions) == the Qwen2 LM it was loaded into
    embeds = torch.randn(1, 12, 48)
    with torch.no_grad():
        ref = thinker.lm_head(thinker.model.language_model(inputs_embeds=embeds).last_hidden_state)
        assert torch.allclose(model.lm(inputs_embeds=embeds).logits[..., :64], ref, atol=1e-5)
    # the linear projector starts as the identity: tower outputs reach the LM unchanged
    assert torch.equal(model.projector(frames), frames)

    # forward + backward with the streaming layout
    model.train()
    base = [1, 2] + [3] + [audio_id] * 10 + [4, 5] + [3] + [audio_id] * 10 + [4, 6, 7, 8]
    ids = torch.tensor([base])
    kind = torch.zeros_like(ids)
    kind[0, [14, 27]] = layout.LABEL_STREAM
    kind[0, [28, 29]] = layout.LABEL_LM
    labels = torch.where(kind > 0, ids, torch.full_like(ids, -100))
    out = model(ids, torch.ones_like(ids), features, labels=labels, label_kind=kind)
    out["loss"].backward()
    assert out["loss_lm"] > 0 and out["loss_stream"] > 0 and torch.isfinite(out["loss"])
    assert model.projector.weight.grad.abs().sum() > 0
    assert model.encoder.tower.layers[0].fc1.weight.grad.abs().sum() > 0
    assert model.lm.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_labelled_logits_only_gives_the_same_losses():
    """The training speed-up (LM head only where a label is predicted) must not change the losses."""
    torch.manual_seed(0)
    config = AudioLMConfig(
        encoder_config=tiny_tower_config(),
        lm_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "num_key_value_heads": 2, "intermediate_size": 64},
        vocab_size=40, audio_token_id=5, frame_dropout=0.0)
    model = AudioInteractionModel(config).eval()
    ids = torch.randint(6, 40, (2, 30))
    ids[:, 3:13] = 5
    labels = torch.full_like(ids, -100)
    kind = torch.zeros_like(ids)
    labels[:, 14], kind[:, 14] = ids[:, 14], layout.LABEL_STREAM
    labels[:, 20:25], kind[:, 20:25] = ids[:, 20:25], layout.LABEL_LM
    frames = [torch.randn(10, 32), torch.randn(10, 32)]
    full = model(ids, audio_frames=frames, labels=labels, label_kind=kind, stream_weight=0.7)
    fast = model(ids, audio_frames=frames, labels=labels, label_kind=kind, stream_weight=0.7, labelled_logits_only=True)
    for key in ("loss", "loss_lm", "loss_stream"):
        assert torch.allclose(full[key], fast[key], atol=1e-5), key
