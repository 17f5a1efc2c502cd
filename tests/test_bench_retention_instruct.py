"""Benchmarks 5 (multi-turn retention) and 6 (streaming instruction following): matching rules on
hand-made replies and responses with known answers, segment cutting and stream building, and
run(ctx) on the random tiny bundle with small external manifests and a two-item fake corpus."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from soundflow import SAMPLE_RATE
from soundflow.bench import instruct as I
from soundflow.bench import retention as R
from soundflow.bench.streams import BenchContext

SR = SAMPLE_RATE


def _clip(path, seconds, seed, loud=((0.3, 0.8),)):
    """Quiet noise with loud bursts at the given [start, end) fractions (the tiny bundle answers loud chunks)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.003, round(seconds * SR)).astype(np.float32)
    for a, b in loud:
        lo, hi = round(a * x.size), round(b * x.size)
        x[lo:hi] = rng.normal(0, 0.3, hi - lo)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, SR, subtype="PCM_16")
    return path


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------------------------------------
# retention: matching


@pytest.mark.parametrize("reply, answers, ok", [
    ("that was a siren", ["that was a siren"], True),
    ("That was a siren!", ["that was a siren"], True),  # case and punctuation
    ("i think that sounds like a siren now", ["that was a siren", "a siren"], True),  # the event phrase
    ("that was a sirens", ["that was a siren", "a siren"], False),  # whole words only
    ("the capital of ghana is accra", ["the capital of ghana is accra"], True),
    ("the capital of ghana is", ["the capital of ghana is accra"], False),
    ("a pentagon has 5 sides", ["a pentagon has five sides"], True),  # digits spelled out
    ("", ["grass is green"], False),
    ("grass is green", "grass is green", True),  # a single string
])
def test_is_correct(reply, answers, ok):
    assert R.is_correct(reply, answers) is ok


def test_accepted_answers():
    assert R.accepted_answers("that was a siren", {"event": "siren"}) == ["that was a siren", "a siren"]
    assert R.accepted_answers("i heard two barks", {"event": "dog_bark", "count": 2}) == ["i heard two barks"]
    assert R.accepted_answers("grass is green", {"question": "what colour is grass"}) == ["grass is green"]


def test_answer_window_text_keeps_what_is_said_after_the_question_starts():
    ev = [{"chunk": 0, "time_s": 0.4, "action": "respond", "text": "early"},
          {"chunk": 4, "time_s": 2.0, "action": "respond", "text": "at start"},  # ends at the start: before
          {"chunk": 5, "time_s": 2.4, "action": "silent", "text": ""},
          {"chunk": 6, "time_s": 2.8, "action": "respond", "text": "one"},
          {"chunk": 9, "time_s": 4.0, "action": "respond", "text": "two"}]
    assert R.answer_window_text(ev, 2.0) == "one two"
    assert R.answer_window_text(ev, 10.0) == ""


def test_settings_validate():
    assert R.settings({})["segments"] == [1, 5]
    with pytest.raises(ValueError, match="unknown key.*bogus"):
        R.settings({"bogus": 1})
    with pytest.raises(ValueError, match="segments"):
        R.settings({"segments": [5]})
    with pytest.raises(ValueError, match="offline_user_text"):
        R.settings({"offline_user_text": "both"})


# ---------------------------------------------------------------------------------------------
# a fake corpus (the test split parquet as load_rows reads it)


def _turn(i, start, end, kind, reply="", meta=None, mixin=""):
    return {"index": i, "start_s": start, "end_s": end, "kind": kind, "mixin": mixin, "pieces": "[]",
            "reply": reply, "emotion": "normal", "meta": json.dumps(meta or {})}


def _tl(chunk, text, kind, turn):
    return {"chunk": chunk, "t_s": chunk * 0.4 + 0.001, "end_s": chunk * 0.4 + 0.001, "action": "respond",
            "text": text, "emotion": "normal", "lang": "en", "turn": turn, "kind": kind}


@pytest.fixture(scope="module")
def fake_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    items = []
    # two chat items of 12 s: questions at [1, 3) and [6, 8); the second item has a mix-in question too
    for k in range(2):
        _clip(root / f"audio/chat{k}.wav", 12.0, k, loud=((1 / 12, 3 / 12), (6 / 12, 8 / 12)))
        turns = [_turn(0, 1.0, 3.0, "question", f"answer {k} zero", {"question": "q0"}),
                 _turn(1, 6.0, 8.0, "question", f"answer {k} one", {"question": "q1"},
                       mixin="history_review" if k else "")]
        items.append({"id": f"test-chat_factqa-onl{k:05d}", "sub_task": "chat_factqa", "audio": f"audio/chat{k}.wav",
                      "duration_s": 12.0, "instruction": "you are a voice assistant answer the user",
                      "turns": turns, "timeline": [_tl(7, "answer zero", "answer", 0)]})
    # an instruction-following item: ack at chunk 8, triggers at chunks 20 and 40
    _clip(root / "audio/if0.wav", 20.0, 7, loud=((0.4, 0.55), (0.78, 0.9)))
    items.append({"id": "test-if_notify-onl00000", "sub_task": "if_notify", "audio": "audio/if0.wav",
                  "duration_s": 20.0, "instruction": "follow the user's instructions while you listen",
                  "turns": [_turn(0, 1.0, 3.0, "instruction", "okay i will")],
                  "timeline": [_tl(8, "okay i will", "ack", 0), _tl(20, "i hear rain now", "notify", 1),
                               _tl(40, "i hear rain now", "notify", 2)]})
    rows = [{**it, "mode": "online", "split": "test", "lang": "en", "references": "{}"} for it in items]
    pl.DataFrame(rows).write_parquet(root / "test.parquet")
    return root


def test_corpus_segments_cut_between_turns(fake_corpus):
    segs = R.corpus_segments(fake_corpus, ["chat_factqa"], lead_s=1.0, tail_s=2.0)
    # the mix-in question of item 1 is left out
    assert [s.id for s in segs] == ["test-chat_factqa-onl00000-t00", "test-chat_factqa-onl00000-t01",
                                    "test-chat_factqa-onl00001-t00"]
    first, second = segs[0], segs[1]
    assert first.cut == (0.0, 5.0) and first.question_start_s == 1.0  # lead 1 s, tail 2 s
    assert second.cut == (5.0, 10.0) and second.question_start_s == 1.0
    assert first.answers == ["answer 0 zero"] and first.source == "test-chat_factqa-onl00000"
    tight = R.corpus_segments(fake_corpus, ["chat_factqa"], lead_s=4.0, tail_s=5.0)
    assert tight[0].cut == (0.0, 6.0) and tight[1].cut == (3.0, 12.0)  # stops at the neighbours / item ends


def _segments(n):
    return [R.Segment(id=f"s{k}", source=f"src{k // 2}", sub_task="x", audio="", cut=None, question_start_s=0.5,
                      instruction="i", lang="en", question="", answers=["a"]) for k in range(n)]


def test_prefixes_come_from_other_sources_and_are_seeded():
    pool = _segments(10)
    for target in pool:
        order = R.prefix_order(target, pool, seed=3)
        assert len(order) == 8 and all(s.source != target.source for s in order)
        assert [s.id for s in order] == [s.id for s in R.prefix_order(target, pool, seed=3)]
    assert [s.id for s in R.prefix_order(pool[0], pool, 3)] != [s.id for s in R.prefix_order(pool[0], pool, 4)]
    picked = R.pick_targets(pool, 4, seed=1)
    assert len(picked) == 4 and len({s.id for s in picked}) == 4


def test_build_streams_concatenates_and_is_deterministic(tmp_path):
    paths = [_clip(tmp_path / f"in/c{k}.wav", 1.0 + 0.2 * k, k) for k in range(6)]
    pool = [R.Segment(id=f"c{k}", source=f"c{k}", sub_task="x", audio=str(p), cut=None, question_start_s=0.3,
                      instruction="i", lang="en", question="", answers=["a"]) for k, p in enumerate(paths)]
    rows = R.build_streams(pool[:2], pool, [1, 5], seed=0, out=tmp_path / "a")
    assert [r["id"] for r in rows] == ["c0-n1", "c0-n5", "c1-n1", "c1-n5"]
    n1, n5 = rows[0], rows[1]
    assert n1["duration_s"] == 1.0 and n1["question_start_s"] == 0.3
    lengths = {f"c{k}": 1.0 + 0.2 * k for k in range(6)}
    assert n5["segments"][-1] == "c0" and "c0" not in n5["segments"][:-1]
    assert n5["duration_s"] == pytest.approx(sum(lengths[s] for s in n5["segments"]), abs=1e-3)
    assert n5["question_start_s"] == pytest.approx(sum(lengths[s] for s in n5["segments"][:-1]) + 0.3, abs=1e-3)
    assert sf.info(n5["audio"]).frames == round(n5["duration_s"] * SR)
    again = R.build_streams(pool[:2], pool, [1, 5], seed=0, out=tmp_path / "b")
    for r, s in zip(rows, again):
        assert open(r["audio"], "rb").read() == open(s["audio"], "rb").read()
    assert len((tmp_path / "a/streams.jsonl").read_text().splitlines()) == 4
    R.build_streams(pool[1:2], pool, [1, 5], seed=0, out=tmp_path / "a")  # a later run: stale streams go
    assert sorted(p.name for p in (tmp_path / "a/streams").glob("*.wav")) == ["c1-n1.wav", "c1-n5.wav"]
    with pytest.raises(ValueError, match="needs 4 segments"):
        R.build_streams(pool[:1], pool[:3], [1, 5], seed=0, out=tmp_path / "c")


# ---------------------------------------------------------------------------------------------
# retention: run


def _check_retention(out, targets):
    assert out["targets"] == targets
    for system in ("online", "offline"):
        for n in (1, 5):
            assert 0.0 <= out[f"{system}_acc_n{n}"] <= 1.0
            assert out[f"{system}_acc_n{n}"] == out[f"{system}_correct_n{n}"] / targets
        base = out[f"{system}_acc_n1"]
        assert out[f"{system}_retained"] == (out[f"{system}_acc_n5"] / base if base else 0.0)
    assert len(out["items"]) == 2 * targets
    for item in out["items"]:
        assert item["online_correct"] == R.is_correct(item["online_reply"], item["answers"])
        assert item["offline_correct"] == R.is_correct(item["offline_reply"], item["answers"])
    json.dumps(out)


def test_retention_run_on_external_manifest(tmp_path, tiny_bundle):
    rows = []
    for k in range(5):
        _clip(tmp_path / f"m/clip{k}.wav", 2.0, k)
        rows.append({"id": f"q{k}", "audio": f"clip{k}.wav", "instruction": "transcribe what you hear", "lang": "en",
                     "answer": "a dog barked twice" if k % 2 else ["the kettle", "kettle is whistling"],
                     "question_start_s": 0.4})
    manifest = _jsonl(tmp_path / "m/manifest.jsonl", rows)
    ctx = BenchContext(bundle=tiny_bundle, offline_bundle=tiny_bundle, corpus=tmp_path / "none", work=tmp_path / "w",
                       cfg={"max_targets": 3}, manifest=manifest, workers=1)
    out = R.run(ctx)
    _check_retention(out, 3)
    assert out["audio_s"] == pytest.approx(3 * (2.0 + 10.0))
    assert len(list((tmp_path / "w/streams").glob("*.wav"))) == 6


def test_retention_run_on_corpus_and_without_offline_bundle(tmp_path, tiny_bundle, fake_corpus):
    ctx = BenchContext(bundle=tiny_bundle, offline_bundle=None, corpus=fake_corpus, work=tmp_path / "w",
                       cfg={"segments": [1, 2]}, workers=1)
    out = R.run(ctx)
    assert out["targets"] == 3 and not any(k.startswith("offline") for k in out)
    assert {"online_acc_n1", "online_acc_n2", "online_retained"} <= out.keys()


def test_retention_manifest_errors(tmp_path, tiny_bundle):
    _clip(tmp_path / "c.wav", 1.0, 0)
    bad = _jsonl(tmp_path / "bad.jsonl", [{"id": "a", "audio": "c.wav", "instruction": "x", "lang": "en"}])
    ctx = BenchContext(bundle=tiny_bundle, offline_bundle=None, corpus=tmp_path, work=tmp_path / "w", cfg={},
                       manifest=bad, workers=1)
    with pytest.raises(ValueError, match="missing key 'answer'"):
        R.run(ctx)


# ---------------------------------------------------------------------------------------------
# instruct: matching


def test_match_stream_known_answer():
    triggers = [{"chunk": 10, "text": "i hear rain now"}, {"chunk": 20, "text": "twice"}, {"chunk": 30, "text": "x"}]
    responses = [{"chunk": 5, "text": "okay i will"},  # the ack: matched to the other reference, not false
                 {"chunk": 9, "text": "I hear rain now."},  # trigger 10, 0.4 s early, right text
                 {"chunk": 25, "text": "once"},  # trigger 20, 5 chunks late (the window's edge), wrong text
                 {"chunk": 26, "text": "again"},  # nothing left to match: false
                 {"chunk": 40, "text": "late"}]  # trigger 30 ends at 35: false; trigger 30 missed
    res = I.match_stream(triggers, [5], responses, before=3, after=5)
    assert [(h["ref_chunk"], h["chunk"], h["error_s"], h["text_ok"]) for h in res["hits"]] == [
        (10, 9, -0.4, True), (20, 25, 2.0, False)]
    assert res["misses"] == [30] and res["false"] == [26, 40]
    s = I.summarize([res], audio_s=60.0)
    assert s["triggers"] == 3 and s["hits"] == 2 and s["trigger_accuracy"] == pytest.approx(2 / 3)
    assert s["false_triggers"] == 2 and s["false_triggers_per_min"] == pytest.approx(2.0)
    assert s["trigger_precision"] == pytest.approx(0.5)
    assert s["timing_mae_s"] == pytest.approx(1.2) and s["timing_bias_s"] == pytest.approx(0.8)
    assert s["text_accuracy"] == pytest.approx(1 / 3)


def test_match_stream_window_edges_and_one_to_one():
    def hits(resp_chunks, trig=(10,)):
        res = I.match_stream([{"chunk": t, "text": ""} for t in trig], [],
                             [{"chunk": c, "text": ""} for c in resp_chunks], before=3, after=5)
        return len(res["hits"]), res["false"]

    assert hits([7]) == (1, []) and hits([6]) == (0, [6])
    assert hits([15]) == (1, []) and hits([16]) == (0, [16])
    assert hits([10, 11, 12]) == (1, [11, 12])  # repeats are false triggers
    assert hits([11], trig=(10, 12)) == (1, [])  # one response hits one trigger
    assert hits([11, 13], trig=(10, 12)) == (2, [])
    assert hits([8, 9], trig=(10, 14)) == (1, [9])  # 9 is outside 14's window [11, 19]


def test_summarize_without_hits():
    s = I.summarize([{"hits": [], "misses": [3], "false": []}], audio_s=30.0)
    assert s["trigger_accuracy"] == 0.0 and s["timing_mae_s"] is None and s["trigger_precision"] == 0.0


def test_corpus_references_and_chunk_of(fake_corpus):
    from soundflow.bench.streams import load_rows

    (row,) = load_rows(fake_corpus, ("if_",))
    triggers, others = I.corpus_references(row)
    assert [t["chunk"] for t in triggers] == [20, 40] and others == [8]
    assert I.chunk_of(6.001) == 15 and I.chunk_of(6.0) == 15 and I.chunk_of(5.999) == 14 and I.chunk_of(1.2) == 3


# ---------------------------------------------------------------------------------------------
# instruct: run


def test_instruct_run_on_corpus(tmp_path, tiny_bundle, fake_corpus):
    ctx = BenchContext(bundle=tiny_bundle, offline_bundle=None, corpus=fake_corpus, work=tmp_path, cfg={}, workers=1)
    out = I.run(ctx)
    assert out["streams"] == 1 and out["triggers"] == 2 and out["audio_min"] == pytest.approx(20.0 / 60, abs=1e-4)
    assert out["hits"] + len(out["streams_detail"][0]["misses"]) == 2
    assert out["trigger_accuracy"] == out["hits"] / 2
    assert out["per_sub_task"]["if_notify"]["triggers"] == 2
    json.dumps(out)


def test_instruct_run_on_external_manifest(tmp_path, tiny_bundle):
    _clip(tmp_path / "a.wav", 6.0, 1, loud=((0.5, 0.7),))
    _clip(tmp_path / "b.wav", 4.0, 2, loud=())
    manifest = _jsonl(tmp_path / "m.jsonl", [
        {"id": "a", "audio": "a.wav", "instruction": "transcribe what you hear", "lang": "en",
         "triggers": [{"t_s": 3.3, "text": "a dog barked"}], "responses": [0.5]},
        {"id": "b", "audio": "b.wav", "instruction": "transcribe what you hear", "lang": "en", "triggers": []}])
    ctx = BenchContext(bundle=tiny_bundle, offline_bundle=None, corpus=tmp_path, work=tmp_path / "w",
                       cfg={"after_s": 0.8}, manifest=manifest, workers=1)
    out = I.run(ctx)
    assert out["streams"] == 2 and out["triggers"] == 1 and out["window_chunks"] == [-3, 2]
    assert out["per_sub_task"].keys() == {"manifest"}
    bad = _jsonl(tmp_path / "bad.jsonl", [{"id": "a", "audio": "a.wav", "instruction": "x", "lang": "en",
                                           "triggers": ["soon"]}])
    with pytest.raises(ValueError, match="'triggers'.*not a time"):
        I.run(BenchContext(bundle=tiny_bundle, offline_bundle=None, corpus=tmp_path, work=tmp_path, cfg={},
                           manifest=bad, workers=1))
    with pytest.raises(ValueError, match="unknown key"):
        I.settings({"window": 2})
