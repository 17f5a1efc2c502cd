"""The Whisper tower (models/whisper_tower.py) and its front end (soundflow.features): streaming computes
exactly the frames the cache computes, nothing looks past the current chunk, long streams cross windows."""
import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor

from soundflow import features, layout
from soundflow.models import WhisperTower, WhisperTowerConfig

CHUNK = features.FEATURE_FRAMES_PER_CHUNK  # 40 mel frames
SMALL = dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, num_mel_bins=80)


def tower(**kw) -> WhisperTower:
    torch.manual_seed(0)
    return WhisperTower(WhisperTowerConfig(whisper_config=WhisperConfig(**SMALL).to_dict(), **kw)).eval()


def stream(model: WhisperTower, feats: torch.Tensor) -> torch.Tensor:
    state, out = model.init_state(), []
    for c in range(feats.shape[1] // model.chunk_features):
        frames, state = model.encode_chunk(feats[:, c * CHUNK:(c + 1) * CHUNK], state)
        out.append(frames)
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("kw", [dict(window_frames=200, carry_frames=60),  # 10-chunk windows, 3 carried
                                dict(window_frames=200, carry_frames=0),
                                dict(attention="chunk")])
def test_streamed_frames_equal_whole_stream_frames_across_windows(kw):
    model = tower(**kw)
    feats = torch.randn(1, 27 * CHUNK, 80)  # 27 chunks: three windows of 10 chunks (or 27 lone chunks)
    with torch.no_grad():
        whole, lengths = model(feats)
    assert whole.shape == (1, 27 * layout.FRAMES_PER_CHUNK, 32) and lengths.tolist() == [270]
    torch.testing.assert_close(stream(model, feats), whole, atol=2e-5, rtol=1e-4)


def test_window_plan_covers_every_chunk_once_with_carried_context():
    model = tower(window_frames=200, carry_frames=60)
    assert model.window_plan(27) == [(0, 0, 10), (7, 10, 17), (14, 17, 24), (21, 24, 27)]
    assert tower().window_plan(80) == [(0, 0, 75), (65, 75, 80)]  # defaults: 30 s windows, 4 s carried


def test_no_look_ahead_and_end_padding_is_harmless():
    model = tower(window_frames=200, carry_frames=60)
    feats = torch.randn(2, 14 * CHUNK, 80)
    with torch.no_grad():
        base, _ = model(feats)
        for k in (0, 6, 12):  # change chunk k (and after): frames of the chunks before it stay put
            changed = feats.clone()
            changed[:, k * CHUNK:] = torch.randn_like(changed[:, k * CHUNK:])
            out, _ = model(changed)
            torch.testing.assert_close(out[:, :k * 10], base[:, :k * 10])
            assert not torch.allclose(out[:, k * 10:(k + 1) * 10], base[:, k * 10:(k + 1) * 10])
        alone, _ = model(feats[1:, :9 * CHUNK])  # a shorter stream padded at the end in a batch
    torch.testing.assert_close(base[1:, :90], alone, atol=2e-5, rtol=1e-4)


def test_block_causal_attention_uses_left_context_and_chunk_mode_does_not():
    feats = torch.randn(1, 4 * CHUNK, 80)
    changed = feats.clone()
    changed[:, :CHUNK] += 1.0  # only the first chunk differs
    for attention, differs in (("block_causal", True), ("chunk", False)):
        model = tower(attention=attention)
        with torch.no_grad():
            a, _ = model(feats)
            b, _ = model(changed)
        assert (not torch.allclose(a[:, 30:], b[:, 30:])) == differs, attention


def test_bad_chunk_sizes_and_settings_are_named():
    model = tower()
    with pytest.raises(ValueError, match="40 feature frames"):
        model.encode_chunk(torch.randn(1, 30, 80), model.init_state())
    with pytest.raises(ValueError, match="whole number of 40-frame chunks"):
        model(torch.randn(1, 50, 80))
    with pytest.raises(ValueError, match="carry_frames"):
        tower(window_frames=200, carry_frames=200)
    with pytest.raises(ValueError, match="attention"):
        tower(attention="full")


def test_logmel_is_whispers_on_each_chunk_with_a_fixed_ceiling():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(3 * features.CHUNK_SAMPLES)).astype(np.float32)
    ours = features.stream_logmel(audio, ceiling=-100.0)  # a floor of -108: never clamps
    assert ours.shape == (3 * CHUNK, 80)
    extractor = WhisperFeatureExtractor(feature_size=80)
    for c in range(3):
        chunk = audio[c * features.CHUNK_SAMPLES:(c + 1) * features.CHUNK_SAMPLES]
        want = extractor(chunk, sampling_rate=16000, padding=False, return_tensors="np")["input_features"][0].T
        got = ours[c * CHUNK:(c + 1) * CHUNK].numpy()
        # Whisper clamps at its input's own maximum - 8: compare where that clamp does not bite
        unclamped = want > want.max() - 2.0
        np.testing.assert_allclose(got[unclamped], want[unclamped], atol=2e-3)
    silent_start = audio.copy()
    silent_start[:features.CHUNK_SAMPLES] = 0.0  # silence sits on the fixed floor, ceiling - 8
    clamped = features.stream_logmel(silent_start, ceiling=features.DEFAULT_CEILING)
    assert float(clamped.min()) == pytest.approx((features.DEFAULT_CEILING - 8 + 4) / 4)
    with pytest.raises(ValueError, match="whole number"):
        features.stream_logmel(audio[:-1])
