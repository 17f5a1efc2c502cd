# Tokenizer and training samples (streaming windows + offline) as shards; text only (the audio's frames
# come from the tower's frame cache, rule encode_frames).
rule tokens:
    input:
        corpus=rules.corpus.output.train,
        dev=rules.corpus.output.dev,
        test=rules.corpus.output.test,
        code=src_files("tokens") + ["src/soundflow/layout.py"],
        thinker=[THINKER_DIR] if THINKER_DIR else [],  # a pretrained thinker brings its own tokenizer
    output:
        directory("data/tokens"),
    params:
        cfg=cfg_slice("tokens"),
        tokenizer=f"--tokenizer {THINKER_DIR}" if THINKER_DIR else "",
    log:
        "logs/tokens.log",
    shell:
        "{PY} -m soundflow.tokens build --cfg {params.cfg:q} --corpus data/corpus --out {output} {params.tokenizer} "
        "2> >(tee {log} >&2)"
