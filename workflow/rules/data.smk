# StreamAudio-mini corpus: plan items, synthesize TTS clips, compose streams, write manifests.
rule corpus:
    input:
        code=src_files("data"),
    output:
        train="data/corpus/train.parquet",
        dev="data/corpus/dev.parquet",
        test="data/corpus/test.parquet",
        table=report("reports/data/corpus.csv", caption="../report/corpus.rst", category="Data"),
        summary="reports/data/corpus_summary.json",
        examples=directory("reports/data/examples"),
    params:
        cfg=cfg_slice("data"),
    threads: workflow.cores
    log:
        "logs/corpus.log",
    shell:
        "{PY} -m soundflow.data build --cfg {params.cfg:q} --out data/corpus "
        "--report-dir reports/data --workers {threads} 2> >(tee {log} >&2)"
