"""Streaming runtime (issue 4): bundle, parity with the training-side model, schedulers, context policy, CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from soundflow import layout
from soundflow.features import stream_logmel
from soundflow.models import AudioInteractionModel
from soundflow.runtime import StreamingSession, load_bundle, run_stream
from soundflow.runtime.bundle import STREAMING_FILE

RNG = np.random.default_rng(7)
CHUNK = 6400


def bursts(levels, chunks_each=2, seed=0):
    """Noise at each RMS level for `chunks_each` chunks: loud parts tip the tiny bundle towards <response>."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, lvl, CHUNK * chunks_each) for lvl in levels]).astype(np.float32)


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


def test_bundle_holds_weights_configs_tokenizer_and_streaming_settings(tiny_bundle, bundle):
    names = {p.name for p in tiny_bundle.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", STREAMING_FILE} <= names
    spec = json.loads((tiny_bundle / STREAMING_FILE).read_text())
    assert spec["sample_rate"] == 16000 and spec["chunk_seconds"] == 0.4 and spec["frames_per_chunk"] == 10
    assert spec["chunk_samples"] == CHUNK and spec["format_version"] == 2
    assert spec["features"] == {"kind": "whisper_logmel", "n_mels": 80, "n_fft": 400, "hop": 160, "per_chunk": True,
                                "ceiling": 1.5}
    assert spec["n_mels"] == 80 and spec["tower_precision"] == "fp32" and bundle.tower_precision == "fp32"
    assert spec["lm_precision"] == "fp32" and bundle.lm_precision == "fp32"
    assert [spec["special_token_ids"][t] for t in layout.SPECIAL_TOKENS] == list(range(len(layout.SPECIAL_TOKENS)))
    assert bundle.settings.max_context_chunks == 8 and bundle.settings.keep_context_chunks == 4


def test_runtime_loads_the_bundle_without_training_code(tiny_bundle):
    code = (
        "import sys, numpy as np\n"
        "from soundflow.runtime import load_bundle, run_stream\n"
        f"b = load_bundle({str(tiny_bundle)!r})\n"
        "events = run_stream(b, np.zeros(16000, dtype=np.float32))\n"
        "loaded = [m for m in ('soundflow.train', 'soundflow.tokens', 'soundflow.data', 'deepspeed') if m in sys.modules]\n"
        "print(len(events), loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "3 []"


def test_bundle_errors_name_the_folder_and_key(tmp_path, tiny_bundle):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_bundle(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    spec = json.loads((tiny_bundle / STREAMING_FILE).read_text())
    del spec["max_reply_tokens"]
    (broken / STREAMING_FILE).write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="streaming.json: missing key 'max_reply_tokens'"):
        load_bundle(broken)


def copy_with(tiny_bundle, folder, **changes):
    """A copy of the tiny bundle with streaming.json keys changed."""
    import shutil

    shutil.copytree(tiny_bundle, folder)
    spec = json.loads((folder / STREAMING_FILE).read_text())
    spec.update(changes)
    (folder / STREAMING_FILE).write_text(json.dumps(spec))
    return folder


def test_old_format_and_bad_precisions_are_refused_by_name(tmp_path, tiny_bundle):
    old = copy_with(tiny_bundle, tmp_path / "v1", format_version=1)  # a Kaldi fbank + CMVN bundle
    with pytest.raises(ValueError, match=r"v1/streaming.json: format_version 1, this runtime reads 2"):
        load_bundle(old)
    bad = copy_with(tiny_bundle, tmp_path / "fp16", tower_precision="fp16")
    with pytest.raises(ValueError, match=r"fp16/streaming.json: tower_precision must be one of bf16, fp32, auto"):
        load_bundle(bad)
    bad = copy_with(tiny_bundle, tmp_path / "lm-fp16", lm_precision="fp16")
    with pytest.raises(ValueError, match=r"lm-fp16/streaming.json: lm_precision must be one of bf16, fp32, auto"):
        load_bundle(bad)
    older = copy_with(tiny_bundle, tmp_path / "no-lm-precision")  # written before the LM had a precision
    spec = json.loads((older / STREAMING_FILE).read_text())
    del spec["lm_precision"]
    (older / STREAMING_FILE).write_text(json.dumps(spec))
    assert load_bundle(older).settings.lm_precision == "auto"
    from soundflow.runtime import export_bundle

    out = tmp_path / "never"
    with pytest.raises(ValueError, match="tower_precision must be one of"):
        export_bundle(tiny_bundle, out, max_context_chunks=8, keep_context_chunks=4, max_reply_tokens=6,
                      default_instruction="x", tower_precision="fp16")
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_streamed_frames_equal_the_frame_cache_recipe_and_bf16_stays_close(tmp_path, tiny_bundle, bundle):
    """ChunkEncoder (log-mel of one chunk, encode_chunk with its state) == the tower's whole-stream forward
    on stream_logmel, the frame cache's recipe; a bundle that asks for a bf16 tower gives nearly the same."""
    from soundflow.runtime.frontend import ChunkEncoder

    audio = bursts([0.01, 0.3, 0.05, 0.2], chunks_each=2)
    tower = bundle.model.encoder
    with torch.no_grad():
        whole, _ = tower(stream_logmel(audio, tower.config.n_mels, tower.config.mel_ceiling).unsqueeze(0))
    encoder = ChunkEncoder(bundle)
    streamed = torch.cat([encoder.frames(c) for c in audio.reshape(-1, CHUNK)], dim=1)
    assert streamed.dtype == torch.float32 and streamed.shape == (1, 80, tower.output_dim)
    torch.testing.assert_close(streamed, whole, atol=2e-5, rtol=1e-4)
    bf16 = ChunkEncoder(load_bundle(copy_with(tiny_bundle, tmp_path / "bf16", tower_precision="bf16")))
    assert bf16.precision == "bf16"
    low = torch.cat([bf16.frames(c) for c in audio.reshape(-1, CHUNK)], dim=1)
    assert low.dtype == torch.float32
    assert float((low - whole).norm() / whole.norm()) < 0.05
    with pytest.raises(ValueError, match="a chunk is 6400 samples"):
        encoder.frames(audio[:100])


def test_a_recording_encoded_in_one_pass_decodes_as_the_live_encoder_does(bundle):
    """stream_frames (the whole recording through the tower at once, as offline answers and the benchmarks
    encode it) gives the live ChunkEncoder's frames, across a window boundary (30 s) and a padded last chunk;
    EncodedStream in a session therefore gives the same events, in both schedulers."""
    from soundflow.runtime.frontend import ChunkEncoder, EncodedStream, stream_frames

    audio = np.tile(bursts([0.002, 0.3, 0.003, 0.25, 0.002, 0.2], chunks_each=2, seed=5), 8)[:-100]  # 38.4 s
    live = ChunkEncoder(bundle)
    padded = np.pad(audio, (0, -audio.size % CHUNK))
    streamed = torch.cat([live.frames(c) for c in padded.reshape(-1, CHUNK)], dim=1)
    assert streamed.shape[1] == 96 * layout.FRAMES_PER_CHUNK
    torch.testing.assert_close(stream_frames(bundle, audio), streamed, atol=2e-5, rtol=1e-4)
    for scheduler in ("sync", "fifo"):
        expected = [e.public() for e in run_stream(bundle, audio, scheduler=scheduler)]
        encoded = EncodedStream(bundle, audio)
        assert [e.public() for e in run_stream(bundle, audio, scheduler=scheduler, encoder=encoded)] == expected
    assert {e["action"] for e in expected} == {"silent", "respond"} and len(expected) == 96
    one = EncodedStream(bundle, audio[:CHUNK])
    one(audio[:CHUNK])
    with pytest.raises(ValueError, match="chunk 1 fed, but the encoded recording holds 1"):
        one(audio[:CHUNK])
    assert stream_frames(bundle, audio[:0]).shape == (1, 0, bundle.model.encoder.output_dim)


def test_a_conv_projector_gets_the_frames_before_each_chunk_live_and_from_one_pass(tiny_bundle):
    """A conv projector reads the tower frames before a chunk: the live ChunkEncoder and EncodedStream carry
    them across chunks, so each chunk's embeddings equal the whole recording's projection at its slots."""
    from soundflow.models.audio_lm import CausalConvProjector
    from soundflow.runtime.frontend import ChunkEncoder, EncodedStream, stream_frames

    b = load_bundle(tiny_bundle)
    torch.manual_seed(0)
    b.model.projector = CausalConvProjector(b.model.encoder.output_dim, b.model.lm.config.hidden_size)
    audio = bursts([0.002, 0.3, 0.003, 0.25], chunks_each=2, seed=5)
    n = layout.FRAMES_PER_CHUNK
    with torch.no_grad():
        whole = b.model.project(stream_frames(b, audio))
    assert whole.shape[1] == 8 * n
    for encoder in (ChunkEncoder(b), EncodedStream(b, audio)):
        for c, pcm in enumerate(audio.reshape(-1, CHUNK)):
            slots = encoder(pcm)[:, 1:1 + n]  # between <audio_begin> and <chunk_end>
            torch.testing.assert_close(slots, whole[:, c * n:(c + 1) * n], atol=5e-5, rtol=1e-4)


@pytest.mark.parametrize("scheduler", ["sync", "fifo"])
def test_the_lm_runs_in_the_bundles_lm_precision_in_either_scheduler(tmp_path, tiny_bundle, scheduler):
    audio = bursts([0.002, 0.3, 0.003], chunks_each=2, seed=5)
    for lm_precision, autocast in (("bf16", True), ("fp32", False)):
        b = load_bundle(copy_with(tiny_bundle, tmp_path / f"{lm_precision}-{scheduler}", lm_precision=lm_precision))
        prefill, seen = b.model.prefill, []

        def watched(embeds, cache):
            seen.append(torch.is_autocast_enabled("cpu"))
            return prefill(embeds, cache)

        b.model.prefill = watched
        session = StreamingSession(b, scheduler=scheduler)
        events = session.feed(audio) + session.close()
        assert len(events) == 6 and len(seen) >= 7  # the prefix, then every chunk (and reply token)
        assert set(seen) == {autocast}  # FIFO's decoder thread enters autocast too


def test_a_longer_chunk_override_runs_the_tower_on_longer_chunks(tiny_bundle):
    """The latency benchmark's chunk-size sweep: 0.8 s chunks, 20 tower frames each."""
    longer = load_bundle(tiny_bundle, chunk_seconds=0.8)
    assert longer.settings.chunk_samples == 2 * CHUNK and longer.settings.frames_per_chunk == 20
    events = run_stream(longer, bursts([0.01, 0.3], chunks_each=2))
    assert [e.chunk for e in events] == [0, 1] and events[-1].time_s == pytest.approx(1.6)
    with pytest.raises(ValueError, match="whole number of 40 ms"):
        load_bundle(tiny_bundle, chunk_seconds=0.5)


def test_parity_with_the_training_side_model(tiny_bundle, bundle):
    """Every token the runtime chose (decisions and replies) is the argmax of the training forward pass
    (log-mel of the frame cache's recipe, the tower's whole-stream forward, one teacher-forced pass over the
    runtime's own token sequence)."""
    audio = bursts([0.01, 0.3, 0.01, 0.2, 0.01], chunks_each=1)  # the random bundle answers two of these chunks
    session = StreamingSession(bundle, "transcribe what you hear", "en")
    events = session.feed(audio) + session.close()
    decisions = [tokens for _, tokens in session.decoder.history]
    assert len(decisions) == len(events) == 5 and session.decoder.rebuilds == 0
    assert {e.action for e in events} == {"silent", "respond"}

    tok = bundle.tokenizer
    ids = tok.convert_tokens_to_ids
    sequence = ids([layout.ONLINE, layout.lang_token("en"), layout.INSTR])
    sequence += tok("transcribe what you hear", add_special_tokens=False)["input_ids"]
    targets = []  # (position predicting it, token, candidates: the decision is <silent> vs <response>)
    decide = [ids(layout.SILENT), ids(layout.RESPONSE)]
    for decision in decisions:
        sequence += [ids(layout.AUDIO_BEGIN)] + [ids(layout.AUDIO)] * 10 + [ids(layout.CHUNK_END)]
        forced_eos = len(decision) == 1 + bundle.settings.max_reply_tokens + 1  # a reply cut at the limit
        for i, token in enumerate(decision):
            if not (forced_eos and i == len(decision) - 1):
                targets.append((len(sequence) - 1, token, decide if i == 0 else None))
            sequence.append(token)
    model = AudioInteractionModel.from_pretrained(tiny_bundle).eval()
    tower = model.encoder.config
    feats = stream_logmel(audio, tower.n_mels, tower.mel_ceiling).unsqueeze(0)
    with torch.no_grad():
        logits = model(torch.tensor([sequence]), features=feats)["logits"][0]
    chosen = [int(logits[pos].argmax()) if cands is None else cands[int(logits[pos, cands].argmax())]
              for pos, _, cands in targets]
    assert chosen == [token for _, token, _ in targets]
    assert len(targets) > len(decisions), "replies were checked too"


@pytest.mark.parametrize("scheduler", ["sync", "fifo"])
def test_no_audio_is_dropped_whatever_the_piece_sizes(bundle, scheduler):
    audio = bursts([0.01, 0.3, 0.01, 0.2, 0.01], chunks_each=3)
    session = StreamingSession(bundle, scheduler=scheduler)
    events, begin = [], 0
    while begin < audio.size:
        size = int(RNG.integers(1, 9000))
        events += session.feed(audio[begin:begin + size])
        begin += size
    events += session.close()
    assert [e.chunk for e in sorted(events, key=lambda e: e.chunk)] == list(range(15))
    assert session.chunks_fed == 15 and len(events) == 15


def test_a_partial_last_chunk_is_padded_not_dropped(bundle):
    events = run_stream(bundle, bursts([0.1], chunks_each=2)[: CHUNK + 100])
    assert [e.chunk for e in events] == [0, 1]
    assert events[-1].time_s == pytest.approx(0.8)


def test_both_schedulers_decide_alike_when_fed_as_fast_as_possible(bundle):
    audio = bursts([0.002, 0.3, 0.003, 0.25, 0.002, 0.2], chunks_each=2, seed=5)
    sync = [e.public() for e in run_stream(bundle, audio, scheduler="sync")]
    fifo = [e.public() for e in run_stream(bundle, audio, scheduler="fifo")]
    assert sync == fifo
    assert {e["action"] for e in sync} == {"silent", "respond"}


def test_fifo_drains_a_backlog_into_the_cache_in_one_call(bundle):
    """Chunks that queue up while the decoder is busy all enter the cache; the model decides on the newest."""
    session = StreamingSession(bundle, scheduler="fifo")
    calls = []
    original = session.decoder.model.prefill

    def slow_prefill(embeds, cache):
        calls.append(embeds.shape[1])
        if len(calls) == 2:
            time.sleep(0.5)  # the encoder keeps going meanwhile
        return original(embeds, cache)

    session.decoder.model.prefill = slow_prefill
    try:
        session.feed(bursts([0.003], chunks_each=1))
        session.wait()
        events = session.feed(bursts([0.003], chunks_each=6, seed=1)) + session.close()
    finally:
        session.decoder.model.prefill = original
    events = sorted(events, key=lambda e: e.chunk)
    assert [e.chunk for e in events] == list(range(1, 7))
    assert any(e.drained for e in events), "the backlog behind the slow call is drained"
    assert max(calls) >= 2 * 12, "one LM call took several chunks"
    held = len(session.decoder.history)
    assert held == 7  # every chunk is in the context


def test_at_real_time_a_slow_decoder_stalls_the_sync_listener_but_not_fifos(bundle, monkeypatch):
    """One LM call that outlasts two chunks: sync takes in nothing meanwhile (stalls); FIFO's encoder keeps
    taking chunks in on time, and the backlog behind the slow call gets late (drained) decisions instead."""
    from soundflow.bench.latency import latency_stats

    original, speed, stats = bundle.model.prefill, 2.0, {}

    def slow_prefill(embeds, cache):
        calls.append(embeds.shape[1])
        if len(calls) == 3:  # the prefix, chunk 0, then chunk 1's call takes 0.5 s (2.5 chunks at speed 2)
            time.sleep(0.5)
        return original(embeds, cache)

    monkeypatch.setattr(bundle.model, "prefill", slow_prefill)
    for scheduler in ("sync", "fifo"):
        calls = []
        events = run_stream(bundle, bursts([0.003], chunks_each=8, seed=2), scheduler=scheduler, realtime=True,
                            speed=speed)
        stats[scheduler] = latency_stats(events, bundle.settings.chunk_seconds / speed)
    assert stats["sync"]["stalls"] >= 1 and stats["sync"]["late"] >= 1
    assert stats["fifo"]["stalls"] == 0 and stats["fifo"]["late"] >= 1


def test_long_stream_memory_is_bounded_by_the_context_policy(bundle):
    """A shortened 'endless' stream (250 chunks, window 8, keep 4): the KV cache and the kept history stay
    under fixed bounds, and resident memory does not grow with the stream."""
    s = bundle.settings
    session = StreamingSession(bundle)
    bound = len(session.decoder.prefix_embeds[0]) + s.max_context_chunks * (12 + 1 + s.max_reply_tokens + 1)
    audio = bursts([0.002, 0.3, 0.01, 0.2, 0.003], chunks_each=1, seed=9)
    sizes, rss = [], []
    for i in range(50):
        session.feed(audio)
        sizes.append(session.decoder.cache_tokens())
        if i in (10, 49):
            with open("/proc/self/statm") as f:
                rss.append(int(f.read().split()[1]) * 4096 / 2**20)
    session.close()
    assert session.chunks_fed == 250
    assert max(sizes) <= bound
    assert len(session.decoder.history) == s.max_context_chunks
    assert session.decoder.rebuilds >= 250 // s.max_context_chunks
    assert rss[1] - rss[0] < 20, f"resident memory grew {rss[1] - rss[0]:.1f} MB over 200 chunks"


def test_bundle_registers_in_the_mlflow_model_registry(tmp_path, tiny_bundle, monkeypatch):
    import mlflow

    from soundflow.runtime.registry import register_bundle

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        run_id = run.info.run_id
    version = register_bundle(tiny_bundle, "soundflow-test", "current", run_id)
    assert version == "1"
    wav = tmp_path / "a.wav"
    sf.write(wav, bursts([0.01, 0.3], chunks_each=1), 16000)
    import pandas as pd

    model = mlflow.pyfunc.load_model("models:/soundflow-test@current")
    out = model.predict(pd.DataFrame({"audio": [str(wav)]}))
    assert [e["chunk"] for e in out[0]] == [0, 1]


# ----- CLI ---------------------------------------------------------------------------------------------

def cli(*args):
    return subprocess.run([sys.executable, "-m", "soundflow.cli", *map(str, args)], capture_output=True, text=True)


def test_listen_reads_any_format_rate_and_channels(tmp_path, tiny_bundle):
    mono16 = bursts([0.01, 0.3, 0.01], chunks_each=1)
    t = np.arange(int(1.2 * 44100)) / 44100
    stereo44 = np.stack([np.interp(t, np.arange(mono16.size) / 16000, mono16)] * 2, axis=1).astype(np.float32)
    files = []
    for fmt in ("wav", "flac", "ogg", "mp3"):
        path = tmp_path / f"clip.{fmt}"
        sf.write(path, stereo44, 44100, format=fmt.upper() if fmt != "ogg" else "OGG")
        files.append(path)
    out = tmp_path / "events.jsonl"
    result = cli("listen", *files, "--bundle", tiny_bundle, "--scheduler", "fifo", "--jsonl", out, "--all")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for path in files:
        chunks = [r["chunk"] for r in rows if r["file"] == str(path)]
        assert chunks[:3] == [0, 1, 2] and len(chunks) in (3, 4)  # mp3 adds encoder padding
    assert result.stdout.count("== ") == 4


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt"])
def test_listen_names_an_unreadable_or_empty_file(tmp_path, tiny_bundle, case):
    path = tmp_path / "bad.wav"
    if case == "empty":
        sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    elif case == "corrupt":
        path.write_bytes(b"RIFF....WAVEfmt garbage")
    out = tmp_path / "events.jsonl"
    result = cli("listen", path, "--bundle", tiny_bundle, "--jsonl", out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and lines[0].startswith("soundflow listen: error:")
    assert not out.exists()
