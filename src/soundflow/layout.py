"""Token layout of Audio-Interaction samples (DESIGN section 5): the one contract between tokens, models and runtime.

Streaming sample:
    <online> <lang_xx> <instr> instruction-text
    then per 400 ms chunk:  <audio_begin> <audio> x10 <chunk_end> DECISION
    DECISION = <silent>  |  <response> <emo_*> reply-text <eos>
Offline sample:
    <offline> <lang_xx> <audio_begin> <audio> x(10 per chunk) <chunk_end> <user> text <assistant> <emo_*> reply-text <eos>

The ten <audio> slots of a chunk receive the encoder's ten 40 ms frames. Only decisions (L_stream) and
emotion + reply + <eos> (L_LM) carry labels.
"""
from __future__ import annotations

SAMPLE_RATE = 16000
CHUNK_SECONDS = 0.4
FRAMES_PER_CHUNK = 10  # encoder frames of 40 ms in one chunk
FEATURE_HOP_MS = 10  # log-mel hop; the encoder subsamples 4x to 40 ms
N_MELS = 80

PAD = "<pad>"
SILENT = "<silent>"
RESPONSE = "<response>"
EOS = "<eos>"
AUDIO_BEGIN = "<audio_begin>"
AUDIO = "<audio>"
CHUNK_END = "<chunk_end>"
ONLINE = "<online>"
OFFLINE = "<offline>"
INSTR = "<instr>"
USER = "<user>"
ASSISTANT = "<assistant>"
LANGS = ("en", "zh")
EMOTIONS = ("normal", "happy", "sad", "angry", "surprise", "urgent")


def lang_token(lang: str) -> str:
    if lang not in LANGS:
        raise KeyError(f"unknown language '{lang}' (known: {', '.join(LANGS)})")
    return f"<lang_{lang}>"


def emotion_token(emotion: str) -> str:
    if emotion not in EMOTIONS:
        raise KeyError(f"unknown emotion '{emotion}' (known: {', '.join(EMOTIONS)})")
    return f"<emo_{emotion}>"


SPECIAL_TOKENS = (
    PAD, SILENT, RESPONSE, EOS, AUDIO_BEGIN, AUDIO, CHUNK_END, ONLINE, OFFLINE, INSTR, USER, ASSISTANT,
    *(lang_token(lang) for lang in LANGS),
    *(emotion_token(e) for e in EMOTIONS),
)

# Label kinds in a sample's loss mask.
LABEL_NONE, LABEL_STREAM, LABEL_LM = 0, 1, 2
