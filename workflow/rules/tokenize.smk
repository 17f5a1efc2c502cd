# Tokenizer, log-mel features and training samples (streaming windows + offline) as shards.
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
    threads: workflow.cores
    log:
        "logs/tokens.log",
    shell:
        "{PY} -m soundflow.tokens build --cfg {params.cfg:q} --corpus data/corpus --out {output} "
        "--workers {threads} 2> >(tee {log} >&2)"
