"""Tokens stage: tokenizer, log-mel features and token samples of the corpus (DESIGN section 5).

Modules: tokenizer (BPE), features (fbank + CMVN), samples (rows -> token layout), decode (token
layout -> decisions), shards (the stage itself), dataset (what training reads).
"""
