"""Staged training (DESIGN section 7) on the frozen Whisper tower's cached frames: s1 format, s2 adapter
(with a CTC head on the projected frames), s3 streaming SFT, s4 instruction fine-tuning, and the offline
baseline; DeepSpeed engine in every profile."""
