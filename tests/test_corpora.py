"""Real-corpus importers on tiny fake corpora written in each original layout, the planner and composer
drawing from the imported tables, and the TTS round-trip filter (real Whisper peer and a fake ASR)."""
import copy
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from soundflow.data import tts
from soundflow.data.corpora import SOURCES, import_source, write_source
from soundflow.data.corpora.schema import COLUMNS, CorpusError

SR = 16000
CV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment"


def tone(path: Path, seconds: float = 0.5, sr: int = SR, hz: float = 440.0, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), sr, format=fmt)
    return path


def lines(path: Path, *rows: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


# --- fake corpora, one writer per original layout -------------------------------------------------

def fake_librispeech(root: Path) -> Path:
    utts = {"train-clean-100": ("19", "198", ["NORTHANGER ABBEY", "CHAPTER ONE 22 YEARS"]),
            "dev-clean": ("84", "121123", ["GO DO YOU HEAR"]), "test-clean": ("1089", "134686", ["HE HOPED THERE"])}
    for part, (spk, chap, texts) in utts.items():
        d = root / part / spk / chap
        ids = [f"{spk}-{chap}-{i:04d}" for i in range(len(texts))]
        lines(d / f"{spk}-{chap}.trans.txt", *[f"{u} {t}" for u, t in zip(ids, texts)])
        for u in ids:
            tone(d / f"{u}.flac", fmt="FLAC")
    return root


def fake_commonvoice(root: Path) -> Path:
    for lang, rows in {"en": [("train", "a1", "Hello there."), ("dev", "b2", "Good morning."), ("test", "c3", "See you.")],
                       "zh-CN": [("train", "d4", "你好。")]}.items():
        d = root / lang
        for split in ("train", "dev", "test"):
            body = [f"{spk}\tcommon_voice_{lang}_{i}.mp3\t{text}\t2\t0\t\t\t\t\t{lang}\t"
                    for i, (s, spk, text) in enumerate(rows) if s == split]
            lines(d / f"{split}.tsv", CV_HEADER, *body)
        for i in range(len(rows)):
            tone(d / "clips" / f"common_voice_{lang}_{i}.mp3", sr=48000, fmt="MP3")
    return root


def fake_covost2(root: Path) -> Path:
    cv4 = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent"
    pairs = {("en", "zh-CN"): [("train", "The cat sleeps.", "猫在睡觉。"), ("train_covost", "It rains.", "下雨了。"),
                               ("dev", "Open the door.", "开门。"), ("test", "Thank you.", "谢谢。")],
             ("zh-CN", "en"): [("train", "我很好。", "I am fine."), ("test", "再见。", "Goodbye.")]}
    for (src, tgt), rows in pairs.items():
        d = root / src
        names = [f"common_voice_{src}_{i}.mp3" for i in range(len(rows))]
        lines(d / "validated.tsv", cv4, *[f"spk{i}\t{n}\t{r[1]}\t2\t0\t\t\t" for i, (n, r) in enumerate(zip(names, rows))])
        lines(d / f"covost_v2.{src}_{tgt}.tsv", "path\tsentence\ttranslation\tclient_id\tsplit",
              *[f"{n}\t{r[1]}\t{r[2]}\tspk{i}\t{r[0]}" for i, (n, r) in enumerate(zip(names, rows))],
              f"not_validated.mp3\tx\ty\tspk9\ttrain")  # not in validated.tsv: the inner join drops it
        for n in names:
            tone(d / "clips" / n, sr=48000, fmt="MP3")
    return root


def fake_aishell(root: Path) -> Path:
    lines(root / "data_aishell/transcript/aishell_transcript_v0.8.txt",
          "BAC009S0002W0122 而 对 楼市 成交 抑制 作用 最 大 的 限 购", "BAC009S0724W0121 甚至 出现 交易 几乎 停滞 的 情况",
          "BAC009S0764W0121 一二线 城市 虽然 也 处于 调整 中")
    for split, spk, utt in [("train", "S0002", "BAC009S0002W0122"), ("dev", "S0724", "BAC009S0724W0121"),
                            ("test", "S0764", "BAC009S0764W0121"), ("train", "S0002", "BAC009S0002W0999")]:
        tone(root / "data_aishell/wav" / split / spk / f"{utt}.wav")  # W0999 has no transcript: skipped
    return root


ESC_CATEGORIES = ("siren", "glass_breaking", "crying_baby", "car_horn", "dog", "rain", "door_wood_knock", "clock_tick",
                  "footsteps", "church_bells", "keyboard_typing", "water_drops", "wind", "chirping_birds", "helicopter")


def fake_esc50(root: Path) -> Path:
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for target, category in enumerate(ESC_CATEGORIES):
        for fold in (1, 4, 5):
            name = f"{fold}-{100000 + target}-A-{target}.wav"
            rows.append(f"{name},{fold},{target},{category},False,{100000 + target},A")
            tone(root / "audio" / name, seconds=1.0, sr=44100, hz=300 + 40 * target)
    lines(root / "meta/esc50.csv", *rows)
    return root


def fake_fsd50k(root: Path) -> Path:
    gt = root / "FSD50K.ground_truth"
    lines(gt / "dev.csv", "fname,labels,mids,split",
          '64760,"Electric_guitar,Guitar,Plucked_string_instrument,Musical_instrument,Music","/m/02sgy,/m/0342h,/m/0fx80y,/m/04szw,/m/04rlf",train',
          '16399,"Bark,Dog,Domestic_animals_and_pets,Animal","/m/05tny_,/m/0bt9lr,/m/068hy,/m/0jbk",val')
    lines(gt / "eval.csv", "fname,labels,mids", '37199,"Doorbell,Door","/m/03wwcy,/m/02dgv"')
    for part, name in (("dev", "64760"), ("dev", "16399"), ("eval", "37199")):
        tone(root / f"FSD50K.{part}_audio" / f"{name}.wav", sr=44100)
    return root


def fake_audioset(root: Path) -> Path:
    lines(root / "class_labels_indices.csv", "index,mid,display_name", '0,/m/09x0r,"Speech"', '74,/m/0bt9lr,"Dog"',
          '75,/m/05tny_,"Bark"', '396,/m/03kmc9,"Siren"', '137,/m/04rlf,"Music"')
    head = ["# Segments csv created Sun Mar  5 10:54:31 2017", "# num_ytids=3, num_segs=3, num_unique_labels=4, num_positive_labels=5",
            "# YTID, start_seconds, end_seconds, positive_labels"]
    lines(root / "balanced_train_segments.csv", *head, '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/05tny_"',
          '-0SdAVK79lg, 30.000, 40.000, "/m/05tny_,/m/0bt9lr"', 'gonevideo00, 0.000, 10.000, "/m/04rlf"')
    lines(root / "eval_segments.csv", *head, '-0RWZT-miFs, 420.000, 430.000, "/m/03kmc9"')
    tone(root / "audio/balanced_train/Y--PJHxphWEs.wav", seconds=1.0)
    tone(root / "audio/balanced_train/-0SdAVK79lg_30.000_40.000.flac", seconds=1.0, fmt="FLAC")
    tone(root / "audio/eval/Y-0RWZT-miFs.wav", seconds=1.0)
    return root


def fake_musan(root: Path) -> Path:
    tone(root / "noise/free-sound/noise-free-sound-0000.wav", seconds=2.0)
    lines(root / "noise/free-sound/ANNOTATIONS", "noise-free-sound-0000")
    tone(root / "music/fma/music-fma-0000.wav", seconds=1.0)
    tone(root / "music/fma/music-fma-0001.wav", seconds=1.0)
    lines(root / "music/fma/ANNOTATIONS", "music-fma-0000 classical N bach", "music-fma-0001 pop Y singer")
    tone(root / "speech/librivox/speech-librivox-0000.wav", seconds=1.0)
    return root


FAKES = {"librispeech": fake_librispeech, "commonvoice": fake_commonvoice, "covost2": fake_covost2,
         "aishell": fake_aishell, "esc50": fake_esc50, "fsd50k": fake_fsd50k, "audioset": fake_audioset,
         "musan": fake_musan}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Every source imported once from its fake copy: name -> (table, CutSet, root)."""
    base = tmp_path_factory.mktemp("corpora")
    out = {}
    for name in SOURCES:
        root = FAKES[name](base / name)
        out[name] = (*import_source(name, root), root)
    return out


def rows(table: pl.DataFrame) -> dict[str, dict]:
    return {r["id"]: r for r in table.iter_rows(named=True)}


# --- importers -------------------------------------------------------------------------------------

def test_every_source_has_a_fake_and_the_common_schema(imported):
    assert set(FAKES) == set(SOURCES)
    for name, (table, cuts, root) in imported.items():
        assert dict(table.schema) == COLUMNS, name
        assert set(table["source"]) == {name}
        assert all(Path(a).is_file() and Path(a).is_relative_to(root.resolve()) for a in table["audio"]), name
        assert len(cuts) == table.height and {c.id for c in cuts} == set(table["id"]), name


def test_librispeech_through_lhotse(imported):
    table, cuts, _ = imported["librispeech"]
    r = rows(table)
    assert set(r) == {"19-198-0000", "19-198-0001", "84-121123-0000", "1089-134686-0000"}
    assert r["19-198-0001"]["text"] == "CHAPTER ONE 22 YEARS" and r["19-198-0001"]["speaker"] == "19"
    assert [r[k]["split"] for k in ("19-198-0000", "84-121123-0000", "1089-134686-0000")] == ["train", "dev", "test"]
    assert {x["lang"] for x in r.values()} == {"en"} and r["84-121123-0000"]["duration_s"] == pytest.approx(0.5)
    assert cuts["84-121123-0000"].supervisions[0].text == "GO DO YOU HEAR"


def test_commonvoice_through_lhotse(imported):
    r = rows(imported["commonvoice"][0])
    assert set(r) == {"en/common_voice_en_0", "en/common_voice_en_1", "en/common_voice_en_2", "zh-CN/common_voice_zh-CN_0"}
    zh = r["zh-CN/common_voice_zh-CN_0"]
    assert (zh["lang"], zh["text"], zh["speaker"], zh["split"]) == ("zh", "你好。", "d4", "train")
    assert r["en/common_voice_en_1"]["split"] == "dev" and r["en/common_voice_en_1"]["sample_rate"] == 48000


def test_covost2_joins_translations_as_fairseq_does(imported):
    r = rows(imported["covost2"][0])
    assert len(r) == 6  # the row missing from validated.tsv is dropped by the join
    a = r["en_zh-CN/common_voice_en_1"]
    assert (a["text"], a["translation"], a["lang"], a["translation_lang"], a["split"]) == \
        ("It rains.", "下雨了。", "en", "zh", "train")  # train_covost counts as train
    b = r["zh-CN_en/common_voice_zh-CN_1"]
    assert (b["lang"], b["translation"], b["translation_lang"], b["split"], b["speaker"]) == ("zh", "Goodbye.", "en", "test", "spk1")


def test_aishell_through_lhotse(imported):
    r = rows(imported["aishell"][0])
    assert set(r) == {"BAC009S0002W0122", "BAC009S0724W0121", "BAC009S0764W0121"}  # no transcript: skipped
    a = r["BAC009S0002W0122"]
    assert (a["text"], a["lang"], a["speaker"], a["split"], a["translation"]) == \
        ("而对楼市成交抑制作用最大的限购", "zh", "S0002", "train", None)


def test_event_corpora_map_labels_to_event_types(imported):
    esc = rows(imported["esc50"][0])
    assert len(esc) == 3 * len(ESC_CATEGORIES)
    assert (esc["1-100004-A-4.wav".removesuffix(".wav")]["event"], esc["4-100004-A-4"]["split"], esc["5-100004-A-4"]["split"]) == \
        ("dog_bark", "dev", "test")
    assert esc["1-100014-A-14"]["labels"] == ["helicopter"] and esc["1-100014-A-14"]["event"] is None
    fsd = rows(imported["fsd50k"][0])
    assert (fsd["dev-16399"]["event"], fsd["dev-16399"]["split"]) == ("dog_bark", "dev")
    assert fsd["dev-64760"]["event"] is None and "Music" in fsd["dev-64760"]["labels"]
    assert (fsd["eval-37199"]["event"], fsd["eval-37199"]["split"]) == ("doorbell", "test")
    aus = rows(imported["audioset"][0])
    assert set(aus) == {"--PJHxphWEs", "-0SdAVK79lg", "-0RWZT-miFs"}  # gonevideo00 has no local file
    assert aus["-0SdAVK79lg"]["event"] == "dog_bark" and aus["-0SdAVK79lg"]["labels"] == ["Bark", "Dog"]
    assert aus["--PJHxphWEs"]["event"] is None  # a bark under speech is no clean event
    assert aus["-0RWZT-miFs"]["event"] == "siren" and aus["-0RWZT-miFs"]["split"] in ("dev", "test")


def test_musan_through_lhotse_without_vocal_music(imported):
    r = rows(imported["musan"][0])
    assert set(r) == {"noise/noise-free-sound-0000", "music/music-fma-0000", "speech/speech-librivox-0000"}
    assert {x["kind"] for x in r.values()} == {"noise"} and r["music/music-fma-0000"]["labels"] == ["music"]


def test_write_source_writes_table_and_cutset(tmp_path, imported):
    from lhotse import CutSet

    counts = write_source("esc50", imported["esc50"][2], tmp_path / "out")
    assert counts["clips"] == 45 and counts["with_event_type"] == 42 and counts["clips_dev"] == 15
    assert pl.read_parquet(tmp_path / "out/esc50.parquet").height == 45
    assert len(CutSet.from_file(tmp_path / "out/esc50.cuts.jsonl.gz")) == 45


@pytest.mark.parametrize("name,breaks,message", [
    ("librispeech", lambda r: (r / "dev-clean/84/121123/84-121123-0000.flac").unlink(), r"84-121123\.trans\.txt:1: no audio file .*84-121123-0000\.flac"),
    ("librispeech", lambda r: [p.rename(r / ("x" + p.name)) for p in list(r.iterdir())], r"none of the LibriSpeech part folders"),
    ("commonvoice", lambda r: lines(r / "en/dev.tsv", "client_id\tpath\tsentence", "b2\tcommon_voice_en_1.mp3\tGood morning."),
     r"en/dev\.tsv has no column 'age'"),
    ("covost2", lambda r: (r / "en/validated.tsv").unlink(), r"missing Common Voice table: .*en/validated\.tsv"),
    ("aishell", lambda r: (r / "data_aishell/transcript/aishell_transcript_v0.8.txt").unlink(), r"missing transcript file"),
    ("esc50", lambda r: (r / "audio/4-100000-A-0.wav").unlink(), r"esc50\.csv:\d+: no audio file .*4-100000-A-0\.wav"),
    ("fsd50k", lambda r: lines(r / "FSD50K.ground_truth/dev.csv", "fname,labels,mids,split", '16399,"Bark","/m/05tny_",holdout'),
     r"dev\.csv:2: split 'holdout' is not train or val"),
    ("audioset", lambda r: lines(r / "eval_segments.csv", "# a", "# b", "# c", 'x, 0.0, 10.0, "/m/zzz"'),
     r"eval_segments\.csv: line 4: label '/m/zzz' is not in class_labels_indices\.csv"),
    ("musan", lambda r: (r / "music/fma/ANNOTATIONS").unlink(), r"music has no <collection>/ANNOTATIONS"),
])
def test_wrong_layout_is_named(tmp_path, name, breaks, message):
    root = FAKES[name](tmp_path / name)
    breaks(root)
    with pytest.raises(CorpusError, match=message):
        import_source(name, root)


def test_cli_reports_a_wrong_layout_in_one_line(tmp_path, monkeypatch):
    from soundflow.data.corpora.__main__ import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "empty").mkdir()
    assert main(["import", "--source", "esc50", "--path", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o/esc50.parquet").exists()


# --- planner and composer drawing from imported sources -------------------------------------------

@pytest.fixture(scope="module")
def corpus_cfg(imported, tmp_path_factory):
    from tests.conftest import smoke_data_cfg

    out = tmp_path_factory.mktemp("tables")
    for name in ("librispeech", "covost2", "esc50", "musan"):
        write_source(name, imported[name][2], out)
    cfg = copy.deepcopy(smoke_data_cfg())
    cfg["corpora"] = {"dir": str(out), "sources": {n: str(imported[n][2]) for n in ("librispeech", "covost2", "esc50", "musan")},
                      "p_speech": 1.0, "p_event": 1.0, "p_noise": 1.0}
    return cfg


def _pieces(plans, kind):
    return [p for plan in plans for t in plan.turns for p in t.pieces if p.kind == kind]


def test_planner_draws_turns_and_events_from_imported_sources(corpus_cfg):
    from soundflow.data.plan import clip_requests, voice_lang
    from soundflow.data.planner import plan_split

    plans = {split: plan_split(corpus_cfg, split) for split in ("train", "dev")}
    asr = [p for p in plans["train"] if p.sub_task == "asr_clean"]
    voices = {piece.voice.rsplit(":", 1)[0] for p in asr for t in p.turns for piece in t.pieces}
    assert asr and voices <= {"corpus:librispeech:en", "corpus:covost2:en"}  # English speech of both sources
    texts = {t.reply.text for p in asr for t in p.turns}  # train rows only, normalised like the references
    assert texts <= {"northanger abbey", "chapter one twenty two years", "the cat sleeps", "it rains"}
    dev_asr = {t.reply.text for p in plans["dev"] if p.sub_task.startswith("asr_") for t in p.turns if t.kind == "sentence"}
    assert "go do you hear" in dev_asr and dev_asr <= {"go do you hear", "open the door"}  # dev speakers only
    st = [t for p in plans["train"] if p.sub_task == "st_en2zh" for t in p.turns]
    assert {t.reply.text for t in st} <= {"猫在睡觉。", "下雨了。"} and all(t.pieces[0].attrs["source"] == "covost2" for t in st)
    zh2en = [t for p in plans["train"] if p.sub_task == "st_zh2en" for t in p.turns]
    assert {t.reply.text for t in zh2en} == {"I am fine."} and voice_lang(zh2en[0].pieces[0].voice) == "zh"
    events = _pieces(plans["dev"], "event")
    real = [e for e in events if "audio" in e.attrs]
    assert real and all(e.attrs["source"] == "esc50" and e.attrs["clip_id"].startswith("4-") for e in real)
    mapped = {"siren", "glass_break", "baby_cry", "car_horn", "dog_bark", "rain", "door_knock", "clock_tick",
              "footsteps", "bell", "typing", "water_drip", "wind", "birdsong"}
    assert {e.label for e in events if "audio" not in e.attrs}.isdisjoint(mapped)  # p_event = 1: every mapped type is real
    every = [p for s in plans.values() for p in s]
    assert not any(r.voice_id.startswith("corpus:") for r in clip_requests(every))  # imported speech needs no TTS
    assert all(not v.startswith("corpus:") for p in every for v in p.voices())


def test_composer_renders_imported_clips_and_noise(corpus_cfg, tmp_path, monkeypatch):
    from soundflow.data.compose import compose
    from soundflow.data.corpora import sources
    from soundflow.data.plan import clip_requests
    from soundflow.data.planner import plan_item, plan_split

    tracks = []
    real_track = sources.noise_track
    monkeypatch.setattr(sources, "noise_track", lambda *a: tracks.append(real_track(*a)) or tracks[-1])
    speech = plan_item(corpus_cfg, "train", "asr_noisy", 0, "online")  # MUSAN's fake recordings all hash to train
    event = next(p for p in plan_split(corpus_cfg, "dev") if any("audio" in x.attrs for x in _pieces([p], "event")))
    tts.synthesize_batch(clip_requests([speech, event]), tmp_path / "clips", workers=1, progress=False)

    out = compose(speech, tmp_path / "clips", corpus_cfg)
    sources_ = [x["source"] for row in out.turns for x in json.loads(row["pieces"])]
    assert any(s.startswith("corpus:") for s in sources_) and np.isfinite(out.audio).all()
    assert tracks and tracks[0] is not None and len(tracks[0]) == len(out.audio)  # p_noise = 1: a MUSAN recording
    words = " ".join(e["text"] for e in out.timeline if e["kind"] == "asr")
    assert any(t in words for t in ("northanger abbey", "twenty two years", "the cat sleeps", "it rains"))

    out = compose(event, tmp_path / "clips", corpus_cfg)
    sources_ = [x["source"] for row in out.turns for x in json.loads(row["pieces"])]
    assert any(s.startswith("esc50:4-") for s in sources_)


def test_no_sources_leave_plans_untouched(corpus_cfg):
    from soundflow.data.planner import plan_item
    from tests.conftest import smoke_data_cfg

    off = copy.deepcopy(corpus_cfg)
    off["corpora"]["sources"] = {n: None for n in off["corpora"]["sources"]}
    for key in (("train", "asr_clean", 0, "online"), ("dev", "pro_alarm", 1, "online"), ("test", "st_en2zh", 0, "offline")):
        assert plan_item(off, *key).digest() == plan_item(smoke_data_cfg(), *key).digest()


def test_missing_table_is_named(corpus_cfg, tmp_path):
    from soundflow.data.planner import plan_item

    cfg = copy.deepcopy(corpus_cfg)
    cfg["corpora"]["dir"] = str(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match=r"nowhere/covost2\.parquet is missing: run the rule import_corpora"):
        plan_item(cfg, "train", "asr_clean", 0, "online")


# --- TTS round-trip filter ------------------------------------------------------------------------

def _request(voice_id: str, text: str) -> tts.ClipRequest:
    from soundflow.data.roundtrip import _style

    return tts.ClipRequest(voice_id, text, _style(tts.get_voice(voice_id), text))


def test_roundtrip_with_the_whisper_peer(tmp_path):
    from soundflow.bench.peers import WhisperPeer
    from soundflow.data.roundtrip import check_clips

    reqs = [_request("espeak:en-gb+f2", "please turn off the kitchen light"),
            _request("flite:kal16", "my brother bought a new bicycle"), _request("espeak:cmn-latn-pinyin+m1", "你好")]
    verdicts = check_clips(reqs, tmp_path, WhisperPeer(cpu_threads=1).transcribe)
    for r in reqs[:2]:
        v = verdicts[r]
        assert v.checked and v.final == r and v.attempts[0]["wer"] <= 0.10, v.attempts
    assert not verdicts[reqs[2]].checked and verdicts[reqs[2]].final == reqs[2]  # tiny.en hears no Mandarin


class ScriptedASR:
    """Fake ASR: the n-th call returns the n-th scripted hypothesis."""

    def __init__(self, *hyps):
        self.hyps, self.calls = list(hyps), 0

    def __call__(self, audio):
        assert audio.ndim == 1 and audio.size > 1000  # a real synthesized clip
        self.calls += 1
        return self.hyps.pop(0)


def test_roundtrip_keeps_retries_and_drops(tmp_path):
    from soundflow.data.roundtrip import check_clips

    text = "the red kite flies high"
    req = _request("espeak:en-us+m1", text)
    v = check_clips([req], tmp_path, ScriptedASR("the red kite flies high"))[req]
    assert v.final == req and len(v.attempts) == 1
    asr = ScriptedASR("the bread kite flies", "a red night", "the red kite flies high")
    v = check_clips([req], tmp_path, asr)[req]
    voices = [a["voice"] for a in v.attempts]
    assert asr.calls == 3 and v.final is not None and v.final.voice_id == voices[2] and len(set(voices)) == 3
    assert all(tts.get_voice(x).role == "train" and tts.get_voice(x).engine == "espeak" for x in voices)
    one_wrong = "the red kite flies higher now"  # WER 0.4
    v = check_clips([req], tmp_path, ScriptedASR(one_wrong, one_wrong, one_wrong))[req]
    assert v.final is None and len(v.attempts) == 3  # two retries, then dropped
    v = check_clips([req], tmp_path, ScriptedASR("the red kite flies high up"), max_wer=0.2)[req]
    assert v.final == req  # 1 insertion in 5 words = 0.2


def test_roundtrip_filter_drops_and_revoices_plans(tmp_path):
    from soundflow.data.plan import clip_requests
    from soundflow.data.planner import plan_item
    from soundflow.data.roundtrip import filter_plans
    from tests.conftest import smoke_data_cfg

    cfg = copy.deepcopy(smoke_data_cfg())
    plans = [plan_item(cfg, "train", "asr_clean", i, "offline") for i in range(3)]
    assert filter_plans(plans, cfg, tmp_path) is plans  # off (tiny, smoke): untouched
    cfg["tts_roundtrip"] = {"enabled": True, "max_wer": 0.1, "retries": 1}
    reqs = clip_requests(plans)
    assert len(reqs) >= 2
    bad, late = reqs[0], reqs[1]  # bad fails on every voice; late fails once, then passes with another voice
    first = ["garbage" if r in (bad, late) else r.text for r in reqs]
    kept = filter_plans(copy.deepcopy(plans), cfg, tmp_path, transcribe=ScriptedASR(*first, "garbage", late.text))
    uses = lambda p, r: any(x.label == r.text and x.voice == r.voice_id for t in p.turns for x in t.pieces)
    assert {p.id for p in kept} == {p.id for p in plans if not uses(p, bad)}
    revoiced = [p for p in plans if uses(p, late) and not uses(p, bad)]
    for p in (k for k in kept if k.id in {r.id for r in revoiced}):
        piece = next(x for t in p.turns for x in t.pieces if x.label == late.text)
        assert piece.voice != late.voice_id and tts.get_voice(piece.voice).role == tts.get_voice(late.voice_id).role


# --- workflow -------------------------------------------------------------------------------------

def test_import_rule_is_in_the_dag_only_when_a_source_is_set(tmp_path):
    from tests.conftest import copy_workflow, run, set_param

    copy_workflow(tmp_path)
    plain = run(["snakemake", "-n", "--quiet", "rules"], tmp_path).stdout
    assert "import_corpora" not in plain and "corpus_shard" in plain
    set_param(tmp_path, "data.corpora.sources", {"librispeech": "/data/LibriSpeech", "musan": "/data/musan"})
    jobs = run(["snakemake", "-n", "--quiet", "rules"], tmp_path).stdout
    assert {tuple(line.split()) for line in jobs.splitlines() if line.startswith("import_corpora")} == {("import_corpora", "2")}
    shell = run(["snakemake", "-n", "-p", "data/corpora/musan.parquet"], tmp_path).stdout
    assert "-m soundflow.data.corpora import --source musan --path /data/musan --out data/corpora" in shell


def test_ctc_segments_take_imported_english_speakers():
    from soundflow.tokens import ctc

    def turn(start, end, voice, label):
        return {"start_s": start, "end_s": end, "pieces": json.dumps([{"kind": "speech", "voice": voice, "label": label}])}

    row = {"id": "x", "condition": "seen_voice", "turns": [turn(0.5, 1.5, "corpus:librispeech:en:19", "northanger abbey"),
                                                          turn(2.0, 3.0, "corpus:aishell:zh:S0002", "而对楼市")]}
    assert [s["voice"] for s in ctc.segments(row, n_frames=100)] == ["corpus:librispeech:en:19"]


def test_common_voice_rows_never_move_a_covost_clip_or_speaker_to_another_split(imported):
    from soundflow.data.corpora.sources import one_split_per_clip_and_speaker

    cv, cov = imported["commonvoice"][0], imported["covost2"][0]
    # CV's own clips get their own names, except en_0, which is also CoVoST's en_0 (same file name)
    cv = cv.with_columns(pl.when(pl.col("id") == "en/common_voice_en_0").then(pl.col("audio"))
                         .otherwise(pl.col("audio").str.replace("common_voice_", "cv13_")).alias("audio"))
    cov = cov.with_columns(pl.when(pl.col("id") == "en_zh-CN/common_voice_en_2").then(pl.lit("b2"))
                           .otherwise(pl.col("speaker")).alias("speaker"))  # CV's dev speaker b2, in CoVoST's dev too
    kept = set(one_split_per_clip_and_speaker(pl.concat([cov, cv]))["id"])
    assert kept == set(cov["id"]) | {"en/common_voice_en_1", "en/common_voice_en_2", "zh-CN/common_voice_zh-CN_0"}
    cov = cov.with_columns(pl.when(pl.col("speaker") == "b2").then(pl.lit("test")).otherwise(pl.col("split")).alias("split"))
    kept = set(one_split_per_clip_and_speaker(pl.concat([cov, cv]))["id"])
    assert "en/common_voice_en_1" not in kept and "en/common_voice_en_2" in kept  # b2 is a CoVoST test speaker now
