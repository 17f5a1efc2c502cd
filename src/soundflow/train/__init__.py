"""Staged training (DESIGN section 7): s0 encoder CTC warm-up, s1 format, s2 adapter, s3 streaming SFT,
s4 instruction fine-tuning, and the offline baseline; DeepSpeed engine in every profile."""
