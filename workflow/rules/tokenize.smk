# Tokenizer and training samples (streaming windows + offline) as shards; text only (the audio's frames
# come from the tower's frame cache, rule encode_frames).
rule tokens:
    input:
        corpus=rules.corpus.output.train,
        dev=rules.corpus.output.dev,
        test=rules.corpus.output.test,
        code=src_files("tokens") + ["src/soundflow/layout.py"],
    output:
        directory("data/tokens"),
    params:
        cfg=cfg_slice("tokens"),
    log:
        "logs/tokens.log",
    shell:
        "{PY} -m soundflow.tokens build --cfg {params.cfg:q} --corpus data/corpus --out {output} "
        "2> >(tee {log} >&2)"
