"""SoundFlow-mini: streaming audio-language model workflow (arXiv 2606.05121 at small scale)."""

SAMPLE_RATE = 16000
CHUNK_SECONDS = 0.4
