"""Tokens stage: tokenizer and token samples of the corpus (DESIGN section 5).

Modules: tokenizer (BPE), samples (rows -> token layout), ctc (English speech segments for the CTC head),
decode (token layout -> decisions), shards (the stage itself), dataset (what training reads).
"""
