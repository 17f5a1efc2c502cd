"""SoundFlow-mini: streaming audio-language model workflow (arXiv 2606.05121 at small scale)."""
from soundflow.layout import CHUNK_SECONDS, SAMPLE_RATE  # noqa: F401  (one definition, in the token layout)
