"""Benchmarks 3 (audio QA, MMAU-like) and 4 (spoken QA) of DESIGN section 8.

Both answer turns of test streams and score the model's free-form reply. "The reply to a turn" of a
stream is everything the model said while that turn owned the stream: soundflow.bench.st.split_events
cuts a stream at its turns' start times (turn i: start_i <= time_s < start_{i+1}), and the replies are
joined with spaces. Text is compared after soundflow.bench.asr_metrics.normalize (lower case, digits
spelled out, punctuation dropped).

run_audio_qa: MMAU-like multiple choice over sound, music and speech
=====================================================================
Questions (corpus): every turn of kind "question" that is not a mix-in (history-review, proactive and
silence mix-ins are other benchmarks) in the online test items of
  sound:  au_event_id ("what was that sound"), au_count ("how many times did you hear ..."),
          env_qa ("what is that noise" / "what was that" / "what do you hear");
  music:  au_music ("describe the music");
  speech: chat_emotion (an emotional utterance; the fitting reply depends on what was said and how:
          the only speech-understanding items in the corpus; their question is the speech itself).
(au_narrate asks nothing; it is left out.) ``cfg["categories"]`` can change the lists. Only the first
``cfg["max_questions_per_item"]`` (4; None = all) questions of each stream are asked, to keep the run
short; each stream is then decoded only up to the last whole chunk before the turn that follows its
last asked question (the model is causal, so the asked turns decode as in the full stream).

Options (``make_options``): the reference reply plus ``n_options - 1`` (3) distractors drawn without
replacement from the generator's vocabulary (``option_pool``), deterministically from
(cfg seed, item id, turn index): au_event_id "that was <event>" and env_qa "that sounds like <event>"
over the other procedural events; au_count the same event counted 1..5 times; au_music the other
tempo x direction x timbre descriptions; chat_emotion replies of the other emotions' situations. A
sub-task without a pool draws from the references of its other questions in the run.
Answer mapping (``choose_option``, MMAU's string matching for a model that answers free-form): the
option with the highest sentence chrF (sacrebleu chrF2) against the reply. Ties share the credit
(the correct option among t tied best options scores 1/t, the expectation of a random tie-break);
an empty reply scores 0 and counts as ``no_answer`` (MMAU's unparseable output).

Conditions, all on the same questions (paired):
- ``spoken`` (the paper's audio instruction, A-*): the online stream as it is: the sound, then the
  question spoken inside the stream; streaming decode with the item's instruction as the prefix
  ("listen to the sounds and answer", ...). Reply = the turn's window.
- ``text`` (T-*): the corpus has no item with a typed question, so it is built from the same test
  material: the turn's audio from 0.2 s before its start up to the onset of the spoken question
  (the question cut off) is answered offline (``answer_rows``, offline format) with the question's
  words as the user text. The onset is end_s minus the length of the question clip as the corpus
  placed it (the TTS clip in <corpus>/clips after TFJP, ``question_onset``); a turn whose clip cannot
  be found is left out of ``text`` (``text_skipped``). Speech questions (chat_emotion) carry the
  question in the speech: their ``text`` input is the whole turn with the item's instruction as the
  user text, the same input as ``spoken_offline`` (decoded once, counted in both).
  NB: training has no offline sample whose user text is a question, so ``text`` measures transfer.
- ``spoken_offline``: the whole turn (sound + spoken question, 0.2 s before to 0.4 s after) answered
  offline with the item's instruction as the user text: the same format as ``text``, so
  text vs spoken_offline isolates the instruction's modality; spoken vs spoken_offline the format.
- ``baseline_text`` / ``baseline_spoken_offline``: the same two offline inputs answered by the offline
  baseline (``ctx.offline_bundle``, when given and ``cfg["baseline"]``).
The corpus's own offline au_* items are not used (their questions are not paired with the streams).

External manifest (MMAU copies), one question per line: id, audio (the clip), instruction (the
question as text), lang, category (sound | music | speech), choices (list of strings), answer (one
of the choices, or its 0-based index); optional question_audio (a recording of the question). text:
the clip + the question as user text (offline). With question_audio, the spoken conditions use the
clip, 0.5 s of silence, the question and 1.2 s of silence (written to ctx.work), with
``STREAM_INSTRUCTION[category]`` as the prefix / user text; the reply is the whole stream.

Top-level keys: for each condition C that ran: C_accuracy (micro over questions), C_macro (mean of
the categories), C_sound, C_music, C_speech (None for a category without questions), C_n,
C_no_answer (share of empty replies); chance (mean of 1 / options), n_questions, text_skipped,
wall_s. Nested: per_sub_task {C: {sub_task: accuracy}}, conditions (what each one is), examples, ci95
({C_accuracy: 95 % bootstrap interval over the questions}).

run_spoken_qa: accuracy on spoken questions
============================================
Questions (corpus): the question turns (kind "question", no mix-in) of the online test items of
``cfg["sub_tasks"]`` (chat_factqa, chat_compute, chat_multiturn) that ask something (``is_question``):
a chat_multiturn follow-up (meta depends_on set), or a turn whose first word is an interrogative
(what, how, where, ...) and that is not small talk (text._CHITCHAT); chat_multiturn's statements
("my name is diana" -> "nice to meet you diana") and small talk are left out.
Matching rules, on normalised text:
- ``accuracy``: correct when the whole reference answer ("the capital of ghana is accra") occurs in
  the reply as a run of whole words (``contains``).
- ``key_accuracy`` (lenient, the usual spoken-QA containment of the short answer): correct when every
  key phrase occurs in the reply (``key_phrases``: runs of the answer's words that are not in the
  question and not function words, widened over adjacent number words and am/pm: "accra",
  "one thousand", "three pm"; see its docstring for the fall-backs).
Both use ``phrase_in``: whole words, and a number at a phrase's edge must not continue into a longer
number in the reply ("five" does not match "twenty five").
Reply = the turn's window of the stream. Per sub-task, and ``followup`` = chat_multiturn questions
that need an earlier turn. Offline: the offline test items of the same sub-tasks (one question each,
same filter) via answer_rows with the streaming bundle (offline_*) and the offline baseline (baseline_*).
External manifest: id, audio, instruction, lang, answers (one entry per question, in order; an entry
is a string or a list of acceptable strings: any may match); optional turn_starts (seconds, one per
answer: per-turn windows; otherwise each answer is looked for in everything said over the stream) and
questions (texts, for key_phrases; without them the key is the whole answer).
Top-level keys: accuracy, key_accuracy, n_questions, no_answer, accuracy_<sub_task>,
key_accuracy_<sub_task>, n_<sub_task>, accuracy_followup, key_accuracy_followup, n_followup,
offline_accuracy, offline_key_accuracy, offline_n, baseline_accuracy, baseline_key_accuracy,
baseline_n (offline_*/baseline_* only when they ran), wall_s; ci95 (95 % bootstrap intervals of the
accuracies over the questions, keyed like them).
"""
from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sacrebleu

from soundflow import CHUNK_SECONDS, SAMPLE_RATE
from soundflow.audio import read_audio, write_wav
from soundflow.bench import bootstrap
from soundflow.bench.asr_metrics import normalize
from soundflow.bench.st import SMALL_STREAM_JOB, join_replies, split_events, spoken_texts, workers_for
from soundflow.bench.streams import BenchContext, answer_rows, decode_streams, load_manifest, load_rows
from soundflow.data import events as data_events
from soundflow.data import text as data_text
from soundflow.data.plan import derive_seed
from soundflow.data.tasks.understanding import PROCEDURAL

SR = SAMPLE_RATE
CATEGORIES = {"sound": ("au_event_id", "au_count", "env_qa"), "music": ("au_music",), "speech": ("chat_emotion",)}
CATEGORY_NAMES = ("sound", "music", "speech")
N_OPTIONS = 4
MAX_QUESTIONS_PER_ITEM = 4  # audio_qa: the first questions of each test stream (speed; None = all)
COUNT_RANGE = range(1, 6)  # au_count draws 1..5 occurrences
STREAM_INSTRUCTION = {"sound": "listen to the sounds and answer", "music": "listen to the music and answer",
                      "speech": "you are a voice assistant answer the user"}
LEAD_S, TAIL_S = 0.2, 0.4  # audio kept before a turn's start / after its end for the offline conditions
AQA_MANIFEST_KEYS = ("category", "choices", "answer")
SQA_MANIFEST_KEYS = ("answers",)
SQA_SUB_TASKS = ("chat_factqa", "chat_compute", "chat_multiturn")
INTERROGATIVES = frozenset("what how where who whom whose when which why at is are do does can".split())
FUNCTION_WORDS = frozenset(
    "the a an is are was were be will it its there in on at of to for and or that this these those you your "
    "i my me we our he she they his her their has have had do does so with by from as".split())
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
    "million billion".split())
NUMBERISH = NUMBER_WORDS | {"am", "pm"}
N_EXAMPLES = 8


# =============================================================================================
# multiple choice


def option_pool(sub_task: str, turn: dict) -> list[str] | None:
    """Candidate answers of a question from its generator's vocabulary (None: no known pool)."""
    if sub_task == "au_event_id":
        return [f"that was {data_text.EVENT_TEXT[n][0]}" for n in PROCEDURAL]
    if sub_task == "env_qa":
        return [data_text.identify_event(n) for n in PROCEDURAL]
    if sub_task == "au_count":
        event = (turn.get("meta") or {}).get("event")
        return [data_text.count_reply(event, k) for k in COUNT_RANGE] if event in data_text.COUNT_NOUNS else None
    if sub_task == "au_music":
        return [data_text.music_description(*c) for c in itertools.product(
            data_events.MUSIC_TEMPOS, data_events.MUSIC_DIRECTIONS, data_events.MUSIC_TIMBRES)]
    if sub_task == "chat_emotion":
        emotion = turn.get("emotion") or "normal"
        return [reply for e, pairs in data_text.EMOTION_SITUATIONS.items() if e != emotion for _, reply in pairs]
    return None


def make_options(reference: str, pool: Sequence[str], key: Sequence, n_options: int = N_OPTIONS,
                 seed: int = 0) -> tuple[list[str], int]:
    """(options, index of the reference): the reference plus up to n_options - 1 distinct distractors
    from `pool`, drawn and shuffled deterministically from (seed, key)."""
    if n_options < 2:
        raise ValueError(f"n_options must be >= 2, got {n_options}")
    ref_norm = normalize(reference)
    candidates = sorted({p for p in pool if normalize(p) != ref_norm and normalize(p)})
    rng = np.random.default_rng(derive_seed("audio_qa", seed, *key))
    picks = [candidates[i] for i in rng.choice(len(candidates), min(n_options - 1, len(candidates)), replace=False)]
    options = [reference, *picks]
    order = rng.permutation(len(options))
    options = [options[i] for i in order]
    return options, int(np.flatnonzero(order == 0)[0])


def option_similarity(reply: str, option: str) -> float:
    """Sentence chrF (0..100) of the normalised reply against the normalised option."""
    return float(sacrebleu.sentence_chrf(normalize(reply), [normalize(option)]).score)


def choose_option(reply: str, options: Sequence[str]) -> list[int]:
    """Indices of the options most similar to the reply (several on a tie; [] for an empty reply)."""
    if not normalize(reply):
        return []
    sims = [option_similarity(reply, o) for o in options]
    best = max(sims)
    return [i for i, s in enumerate(sims) if abs(s - best) < 1e-9]


def mc_credit(reply: str, options: Sequence[str], answer: int) -> float:
    """1 when the reply maps to the correct option alone, 1/t when it ties t options including it, else 0."""
    best = choose_option(reply, options)
    return 1.0 / len(best) if answer in best else 0.0


# =============================================================================================
# audio QA


def question_onset(corpus: Path, turn: dict) -> float | None:
    """Stream time (s) at which the turn's spoken question (its last piece) starts: end_s minus the
    length of the question clip as composition placed it (TTS clip from <corpus>/clips after TFJP).
    None when the last piece is not speech, the clip is not there, or the result is implausible."""
    from soundflow.data import tfjp, tts

    pieces = turn.get("pieces") or []
    if len(pieces) < 2 or pieces[-1].get("kind") != "speech":
        return None
    piece = pieces[-1]
    try:
        voice = tts.get_voice(piece["voice"])
        style = tts.draw_style(voice, np.random.default_rng(derive_seed("style", piece["voice"], piece["label"])))
        path = tts.cache_path(Path(corpus) / "clips", tts.clip_key(voice, piece["label"], style))
        if not path.is_file():
            return None
        length = len(tfjp.tfjp(read_audio(path, SR), SR)) / SR
    except (KeyError, ValueError, OSError):
        return None
    onset = float(turn["end_s"]) - length
    return onset if float(turn["start_s"]) < onset < float(turn["end_s"]) else None


def corpus_questions(rows: Sequence[dict], categories: dict[str, Sequence[str]], n_options: int = N_OPTIONS,
                     seed: int = 0, max_per_item: int | None = None) -> list[dict]:
    """Multiple-choice questions of corpus items (module docstring), in row and turn order; at most
    `max_per_item` (the first ones) per item when given."""
    category_of = {sub: cat for cat, subs in categories.items() for sub in subs}
    questions = []
    for r, row in enumerate(rows):
        taken = 0
        for k, turn in enumerate(row["turns"] or []):
            if turn["kind"] != "question" or turn["mixin"] or not turn["reply"]:
                continue
            if max_per_item and taken >= max_per_item:
                break
            taken += 1
            speech = [p for p in turn["pieces"] if p.get("kind") == "speech"]
            category = category_of.get(row["sub_task"]) or next(  # load_rows matches sub-task prefixes
                c for c, subs in categories.items() if any(row["sub_task"].startswith(p) for p in subs))
            questions.append({"id": row["id"], "sub_task": row["sub_task"], "category": category,
                              "row": r, "turn": k, "reference": turn["reply"],
                              "question": speech[-1]["label"] if speech and len(turn["pieces"]) > 1 else None,
                              "start_s": float(turn["start_s"]), "end_s": float(turn["end_s"]), "_turn": turn})
    by_sub: dict[str, list[str]] = defaultdict(list)
    for q in questions:
        by_sub[q["sub_task"]].append(q["reference"])
    for q in questions:
        pool = option_pool(q["sub_task"], q["_turn"]) or by_sub[q["sub_task"]]
        q["options"], q["answer"] = make_options(q["reference"], pool, (q["id"], q["turn"]), n_options, seed)
    return questions


def _truncated_streams(rows: Sequence[dict], questions: Sequence[dict], out_dir: Path) -> list[dict]:
    """Rows whose stream stops at the last whole chunk before the turn after their last asked question
    (nothing after it is scored; the streaming model is causal, so the asked turns decode exactly as
    in the full stream). Rows with no question keep one chunk; rows asked to the end are unchanged."""
    last: dict[int, int] = {}
    for q in questions:
        last[q["row"]] = max(last.get(q["row"], -1), q["turn"])
    out = []
    for r, row in enumerate(rows):
        turns = row["turns"] or []
        k = last.get(r)
        if k is not None and k + 1 >= len(turns):
            out.append(row)
            continue
        cut_s = float(turns[k + 1]["start_s"]) if k is not None else CHUNK_SECONDS
        chunk = round(CHUNK_SECONDS * SR)
        n = max(int(round(cut_s * SR, 6)) // chunk, 1) * chunk
        path = out_dir / f"{row['id']}.wav"
        write_wav(path, read_audio(row["audio"], SR)[:n])
        out.append({**row, "audio": str(path)})
    return out


def _segment(audio: np.ndarray, a: float, b: float) -> np.ndarray:
    return audio[max(0, round(a * SR)): max(round(b * SR), round(a * SR) + 1)]


def _score_condition(questions: Sequence[dict], replies: Sequence[str | None]) -> dict:
    """Accuracy per category and overall for one condition (None replies = question not asked)."""
    cells: dict[str, list[float]] = defaultdict(list)
    per_sub: dict[str, list[float]] = defaultdict(list)
    empty = 0
    for q, reply in zip(questions, replies):
        if reply is None:
            continue
        credit = mc_credit(reply, q["options"], q["answer"])
        empty += not normalize(reply)
        cells[q["category"]].append(credit)
        per_sub[q["sub_task"]].append(credit)
    every = [c for cs in cells.values() for c in cs]
    out = {"accuracy": float(np.mean(every)) if every else None, "accuracy_ci95": bootstrap.mean_interval(every)}
    cats = [float(np.mean(cells[c])) for c in CATEGORY_NAMES if cells[c]]
    out["macro"] = float(np.mean(cats)) if cats else None
    for c in CATEGORY_NAMES:
        out[c] = float(np.mean(cells[c])) if cells[c] else None
    out["n"] = len(every)
    out["no_answer"] = empty / len(every) if every else None
    out["per_sub_task"] = {s: float(np.mean(v)) for s, v in sorted(per_sub.items())}
    return out


def _corpus_audio_qa(ctx: BenchContext, cfg: dict) -> tuple[list[dict], dict[str, list], dict]:
    categories = {c: tuple(s) for c, s in cfg.get("categories", CATEGORIES).items()}
    unknown = set(categories) - set(CATEGORY_NAMES)
    if unknown:
        raise ValueError(f"audio_qa categories must be among {CATEGORY_NAMES}, got {sorted(unknown)}")
    rows = load_rows(ctx.corpus, tuple(s for subs in categories.values() for s in subs), "online")
    if not rows:
        raise ValueError(f"no online audio-QA test items in {ctx.corpus}")
    questions = corpus_questions(rows, categories, int(cfg.get("n_options", N_OPTIONS)), int(cfg.get("seed", 0)),
                                 cfg.get("max_questions_per_item", MAX_QUESTIONS_PER_ITEM))
    replies: dict[str, list] = {}

    stream_rows = _truncated_streams(rows, questions, Path(ctx.work) / "streams")
    events = decode_streams(ctx.bundle, stream_rows, workers_for(len(stream_rows), ctx.workers, SMALL_STREAM_JOB),
                            cfg.get("scheduler", "sync"), desc="audio_qa: streams")
    windows = [split_events(evs, [t["start_s"] for t in row["turns"]]) for row, evs in zip(rows, events)]
    replies["spoken"] = [join_replies(spoken_texts(windows[q["row"]][q["turn"]]), "en") for q in questions]

    # offline inputs: spoken_offline for every question, text where the question can be cut off
    seg_dir = Path(ctx.work) / "segments"
    off_rows, spoken_at, text_at = [], [], []
    skipped = 0
    audio_cache: dict[int, np.ndarray] = {}
    for q in questions:
        row = rows[q["row"]]
        if q["row"] not in audio_cache:
            audio_cache.clear()
            audio_cache[q["row"]] = read_audio(row["audio"], SR)
        audio = audio_cache[q["row"]]
        stem = f"{q['id']}-t{q['turn']:02d}"
        path = seg_dir / f"{stem}-turn.wav"
        write_wav(path, _segment(audio, q["start_s"] - LEAD_S, q["end_s"] + TAIL_S))
        spoken_at.append(len(off_rows))
        off_rows.append({"audio": str(path), "instruction": row["instruction"], "lang": row["lang"]})
        if q["category"] == "speech" or q["question"] is None:
            text_at.append(spoken_at[-1])  # the question is the speech itself: same input
            continue
        onset = question_onset(ctx.corpus, q["_turn"])
        if onset is None:
            text_at.append(None)
            skipped += 1
            continue
        path = seg_dir / f"{stem}-sound.wav"
        write_wav(path, _segment(audio, q["start_s"] - LEAD_S, onset))
        text_at.append(len(off_rows))
        off_rows.append({"audio": str(path), "instruction": q["question"], "lang": row["lang"]})

    def offline(bundle, prefix: str, desc: str) -> None:
        answers = answer_rows(bundle, off_rows, workers_for(len(off_rows), ctx.workers), desc=desc)
        replies[f"{prefix}text"] = [answers[i]["text"] if i is not None else None for i in text_at]
        replies[f"{prefix}spoken_offline"] = [answers[i]["text"] for i in spoken_at]

    offline(ctx.bundle, "", "audio_qa: offline")
    if ctx.offline_bundle and cfg.get("baseline", True):
        offline(ctx.offline_bundle, "baseline_", "audio_qa: baseline")
    return questions, replies, {"text_skipped": skipped}


def _manifest_audio_qa(ctx: BenchContext, cfg: dict) -> tuple[list[dict], dict[str, list], dict]:
    rows = load_manifest(ctx.manifest, AQA_MANIFEST_KEYS)
    questions = []
    for row in rows:
        where = f"{ctx.manifest}: item {row['id']}"
        if row["category"] not in CATEGORY_NAMES:
            raise ValueError(f"{where}: 'category' must be one of {CATEGORY_NAMES}, got {row['category']!r}")
        choices = row["choices"]
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise ValueError(f"{where}: 'choices' must be a list of at least two strings")
        answer = row["answer"]
        if isinstance(answer, bool) or not (isinstance(answer, int) and 0 <= answer < len(choices)
                                            or isinstance(answer, str) and answer in choices):
            raise ValueError(f"{where}: 'answer' must be one of the choices or its index, got {answer!r}")
        questions.append({"id": row["id"], "sub_task": "external", "category": row["category"], "turn": 0,
                          "reference": choices[answer] if isinstance(answer, int) else answer,
                          "question": row["instruction"], "options": list(choices),
                          "answer": answer if isinstance(answer, int) else choices.index(answer)})
    replies: dict[str, list] = {}
    text_rows = [{"audio": r["audio"], "instruction": r["instruction"], "lang": r["lang"]} for r in rows]
    spoken_rows, spoken_of = [], []
    for row in rows:
        q_audio = row.get("question_audio")
        if not q_audio:
            spoken_of.append(None)
            continue
        q_path = Path(q_audio) if Path(q_audio).is_absolute() else Path(ctx.manifest).parent / q_audio
        if not q_path.is_file():
            raise ValueError(f"{ctx.manifest}: item {row['id']}: key 'question_audio': audio file not found: {q_path}")
        joined = np.concatenate([read_audio(row["audio"], SR), np.zeros(SR // 2, np.float32),
                                 read_audio(q_path, SR), np.zeros(round(1.2 * SR), np.float32)])
        path = Path(ctx.work) / "spoken" / f"{row['id']}.wav"
        write_wav(path, joined)
        spoken_of.append(len(spoken_rows))
        spoken_rows.append({"audio": str(path), "instruction": STREAM_INSTRUCTION[row["category"]],
                            "lang": row["lang"]})
    if spoken_rows:
        events = decode_streams(ctx.bundle, spoken_rows, workers_for(len(spoken_rows), ctx.workers, SMALL_STREAM_JOB),
                                cfg.get("scheduler", "sync"), desc="audio_qa: streams")
        said = [join_replies(spoken_texts(e), "en") for e in events]
        replies["spoken"] = [said[i] if i is not None else None for i in spoken_of]

    def offline(bundle, prefix: str, desc: str) -> None:
        jobs = text_rows + spoken_rows
        answers = answer_rows(bundle, jobs, workers_for(len(jobs), ctx.workers), desc=desc)
        replies[f"{prefix}text"] = [a["text"] for a in answers[: len(text_rows)]]
        if spoken_rows:
            rest = answers[len(text_rows):]
            replies[f"{prefix}spoken_offline"] = [rest[i]["text"] if i is not None else None for i in spoken_of]

    offline(ctx.bundle, "", "audio_qa: offline")
    if ctx.offline_bundle and cfg.get("baseline", True):
        offline(ctx.offline_bundle, "baseline_", "audio_qa: baseline")
    return questions, replies, {"text_skipped": 0}


AQA_CONDITIONS = {
    "spoken": "streaming decode; the question spoken inside the stream (audio instruction)",
    "text": "offline format; the sound without the spoken question, the question as user text",
    "spoken_offline": "offline format; the sound and the spoken question, the item instruction as user text",
    "baseline_text": "offline baseline bundle, the text inputs",
    "baseline_spoken_offline": "offline baseline bundle, the spoken_offline inputs",
}


def run_audio_qa(ctx: BenchContext) -> dict:
    """Benchmark 3 (module docstring). cfg: categories, n_options, seed, scheduler, baseline."""
    t0 = time.perf_counter()
    cfg = ctx.cfg or {}
    if ctx.manifest:
        questions, replies, extra = _manifest_audio_qa(ctx, cfg)
    else:
        questions, replies, extra = _corpus_audio_qa(ctx, cfg)
    result: dict = {}
    per_sub = {}
    for cond in AQA_CONDITIONS:
        if cond not in replies:
            continue
        s = _score_condition(questions, replies[cond])
        per_sub[cond] = s.pop("per_sub_task")
        result.setdefault("ci95", {})[f"{cond}_accuracy"] = s.pop("accuracy_ci95")
        for k, v in s.items():
            result[f"{cond}_{k}"] = v
    result["chance"] = float(np.mean([1 / len(q["options"]) for q in questions])) if questions else None
    result["n_questions"] = len(questions)
    result["text_skipped"] = extra["text_skipped"]
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    result["per_sub_task"] = per_sub
    result["conditions"] = {c: d for c, d in AQA_CONDITIONS.items() if c in replies}
    result["examples"] = [
        {"id": q["id"], "turn": q["turn"], "category": q["category"], "options": q["options"], "answer": q["answer"],
         **{c: replies[c][i] for c in replies}}
        for i, q in enumerate(questions[:N_EXAMPLES])]
    return result


# =============================================================================================
# spoken QA


def _chitchat_questions() -> frozenset[str]:
    return frozenset(q for q, _ in getattr(data_text, "_CHITCHAT", ()))


def is_question(turn: dict) -> bool:
    """A turn that asks something (module docstring): a follow-up, or an interrogative that is not small talk."""
    meta = turn.get("meta") or {}
    if meta.get("depends_on") is not None:
        return True
    question = normalize(meta.get("question", ""))
    words = question.split()
    return bool(words) and words[0] in INTERROGATIVES and question not in _chitchat_questions()


def key_phrases(answer: str, question: str | None = None) -> list[str]:
    """The short answer inside a full reference reply, as phrases that must all be said (module docstring):
    runs of the answer's words that are not in the question and not function words, each run widened
    over neighbouring number words and am/pm ("there are one thousand grams in one kilogram" ->
    ["one thousand"]; "it is twelve pm" after "... two pm" -> ["twelve pm"]). Without new words: the
    answer with function words stripped from both ends ("it is one am" -> ["one am"]). Without a
    question: the whole answer."""
    words = normalize(answer).split()
    if not words:
        return []
    if question is None:
        return [" ".join(words)]
    asked = set(normalize(question).split())
    marked = [w not in asked and w not in FUNCTION_WORDS for w in words]
    if not any(marked):
        core = [i for i, w in enumerate(words) if w not in FUNCTION_WORDS]
        return [" ".join(words[core[0]: core[-1] + 1])] if core else words[-1:]
    changed = True
    while changed:  # widen runs over number words (and am/pm) next to a marked number
        changed = False
        for i, w in enumerate(words):
            if marked[i] and w in NUMBERISH:
                for j in (i - 1, i + 1):
                    if 0 <= j < len(words) and not marked[j] and words[j] in NUMBERISH:
                        marked[j] = changed = True
    phrases, run = [], []
    for w, m in zip(words, marked):
        if m:
            run.append(w)
        elif run:
            phrases.append(" ".join(run))
            run = []
    if run:
        phrases.append(" ".join(run))
    return phrases


def phrase_in(reply: str, phrase: str) -> bool:
    """The normalised phrase occurs in the normalised reply as a run of whole words, and a number at
    either end of it is not part of a longer number there ("five" is not in "twenty five")."""
    r, p = normalize(reply).split(), normalize(phrase).split()
    n = len(p)
    if not n:
        return False
    for i in range(len(r) - n + 1):
        if r[i: i + n] != p:
            continue
        if p[0] in NUMBER_WORDS and i > 0 and r[i - 1] in NUMBER_WORDS:
            continue
        if p[-1] in NUMBER_WORDS and i + n < len(r) and r[i + n] in NUMBER_WORDS:
            continue
        return True
    return False


def contains(reply: str, reference: str) -> bool:
    """The whole normalised reference occurs in the reply (phrase_in)."""
    return phrase_in(reply, reference)


def key_match(reply: str, phrases: Sequence[str]) -> bool:
    """Every key phrase occurs in the reply (phrase_in)."""
    return bool(phrases) and all(phrase_in(reply, p) for p in phrases)


def judge(reply: str, answers: str | Sequence[str], question: str | None = None) -> tuple[bool, bool]:
    """(strict, key) correctness of a reply against one answer or a list of acceptable answers."""
    alts = [answers] if isinstance(answers, str) else list(answers)
    strict = any(contains(reply, a) for a in alts)
    lenient = any(key_match(reply, key_phrases(a, question)) for a in alts)
    return strict, lenient


def spoken_questions(rows: Sequence[dict]) -> list[dict]:
    """The scored question turns of corpus rows: {id, sub_task, row, turn, question, answer, followup}."""
    out = []
    for r, row in enumerate(rows):
        for k, turn in enumerate(row["turns"] or []):
            if turn["kind"] != "question" or turn["mixin"] or not turn["reply"] or not is_question(turn):
                continue
            meta = turn["meta"]
            out.append({"id": row["id"], "sub_task": row["sub_task"], "row": r, "turn": k,
                        "question": meta.get("question"), "answer": turn["reply"],
                        "followup": meta.get("depends_on") is not None})
    return out


def _tally(questions: Sequence[dict], replies: Sequence[str]) -> list[dict]:
    graded = []
    for q, reply in zip(questions, replies):
        strict, lenient = judge(reply, q["answer"], q["question"])
        graded.append({**q, "reply": reply, "correct": strict, "key_correct": lenient})
    return graded


def _rates(graded: Sequence[dict]) -> tuple[float | None, float | None]:
    """(accuracy, key_accuracy) of graded questions (None when there are none)."""
    n = len(graded)
    if not n:
        return None, None
    return sum(g["correct"] for g in graded) / n, sum(g["key_correct"] for g in graded) / n


def _rate_intervals(graded: Sequence[dict], prefix: str) -> dict:
    """95 % bootstrap intervals of accuracy and key_accuracy over the graded questions."""
    return {f"{prefix}accuracy": bootstrap.share_interval([g["correct"] for g in graded]),
            f"{prefix}key_accuracy": bootstrap.share_interval([g["key_correct"] for g in graded])}


def run_spoken_qa(ctx: BenchContext) -> dict:
    """Benchmark 4 (module docstring). cfg: sub_tasks, scheduler, offline, baseline."""
    t0 = time.perf_counter()
    cfg = ctx.cfg or {}
    scheduler = cfg.get("scheduler", "sync")
    result: dict = {}
    sub_tasks = tuple(cfg.get("sub_tasks", SQA_SUB_TASKS))
    if ctx.manifest:
        rows = load_manifest(ctx.manifest, SQA_MANIFEST_KEYS)
        events = decode_streams(ctx.bundle, rows, workers_for(len(rows), ctx.workers, SMALL_STREAM_JOB), scheduler,
                                desc="spoken_qa: streams")
        graded = []
        for row, evs in zip(rows, events):
            answers, starts = row["answers"], row.get("turn_starts")
            if not isinstance(answers, list) or not answers:
                raise ValueError(f"{ctx.manifest}: item {row['id']}: 'answers' must be a non-empty list")
            texts = row.get("questions") or [None] * len(answers)
            if len(texts) != len(answers):
                raise ValueError(f"{ctx.manifest}: item {row['id']}: {len(texts)} questions for {len(answers)} answers")
            windows = (split_events(evs, starts) if starts and len(starts) == len(answers)
                       else [evs] * len(answers))
            for k, (ans, question, own) in enumerate(zip(answers, texts, windows)):
                reply = join_replies(spoken_texts(own), row["lang"])
                strict, lenient = judge(reply, ans, question)
                graded.append({"id": row["id"], "sub_task": "external", "turn": k, "question": question,
                               "answer": ans, "followup": False, "reply": reply, "correct": strict,
                               "key_correct": lenient})
    else:
        rows = load_rows(ctx.corpus, sub_tasks, "online")
        if not rows:
            raise ValueError(f"no online test items of {sub_tasks} in {ctx.corpus}")
        questions = spoken_questions(rows)
        events = decode_streams(ctx.bundle, rows, workers_for(len(rows), ctx.workers, SMALL_STREAM_JOB), scheduler,
                                desc="spoken_qa: streams")
        windows = [split_events(evs, [t["start_s"] for t in row["turns"]]) for row, evs in zip(rows, events)]
        graded = _tally(questions, [join_replies(spoken_texts(windows[q["row"]][q["turn"]]), "en")
                                    for q in questions])
    result["accuracy"], result["key_accuracy"] = _rates(graded)
    result["ci95"] = _rate_intervals(graded, "")
    result["n_questions"] = len(graded)
    result["no_answer"] = sum(not normalize(g["reply"]) for g in graded) / len(graded) if graded else None
    groups = {sub: [g for g in graded if g["sub_task"] == sub] for sub in sorted({g["sub_task"] for g in graded})}
    groups["followup"] = [g for g in graded if g["followup"]]
    for name, mine in groups.items():
        result[f"accuracy_{name}"], result[f"key_accuracy_{name}"] = _rates(mine)
        result[f"n_{name}"] = len(mine)

    if not ctx.manifest and cfg.get("offline", True):
        off_rows = load_rows(ctx.corpus, sub_tasks, "offline")
        off_q = spoken_questions(off_rows)
        asked = [off_rows[q["row"]] for q in off_q]
        if asked:
            for prefix, bundle in (("offline_", ctx.bundle),
                                   ("baseline_", ctx.offline_bundle if cfg.get("baseline", True) else None)):
                if bundle is None:
                    continue
                answers = answer_rows(bundle, asked, workers_for(len(asked), ctx.workers),
                                      desc=f"spoken_qa: {prefix[:-1]}")
                graded_off = _tally(off_q, [a["text"] for a in answers])
                result[f"{prefix}accuracy"], result[f"{prefix}key_accuracy"] = _rates(graded_off)
                result["ci95"] |= _rate_intervals(graded_off, prefix)
                result[f"{prefix}n"] = len(off_q)
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    result["examples"] = [{k: g[k] for k in ("id", "turn", "question", "answer", "reply", "correct", "key_correct")}
                          for g in graded[:N_EXAMPLES]]
    return result
