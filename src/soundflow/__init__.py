"""SoundFlow-mini: streaming audio-language model workflow (arXiv 2606.05121 at small scale)."""
import os

# MKL (torch's CPU BLAS here) picks its kernels by the memory alignment of the operands unless told not
# to, so a 28-step s1 run changed with the size of its environment; such float-level differences grow over
# the steps (about 0.01 in decision accuracy at the end of a run). Strict conditional numerical
# reproducibility removes that, at no measured cost (250 s3 steps, runs alternated: 111.6 and 111.2 s with
# it, 112.5 and 113.3 s without): s0, s1 and s3 then reran bit for bit equal to the pipeline's (one
# unexplained difference remains: README, reproducibility). Set before torch first loads MKL; a value the
# user exported wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from soundflow.layout import CHUNK_SECONDS, SAMPLE_RATE  # noqa: E402,F401  (one definition, in the token layout)
