# StreamAudio-mini corpus in data.shards jobs: each plans, synthesizes and composes its share of the items
# (every n-th item), then `corpus` merges the shard manifests into the split manifests and writes the report.
# A plain expand over range(n): n is a parameter of params.yaml, known when the DAG is built, so no
# checkpoint is needed, and `scattergather:` would add a second knob (--set-scatter) beside params.yaml.
CORPUS_SHARDS = config["data"]["shards"]
SHARD_MANIFEST = f"data/corpus/shards/{{index}}-of-{CORPUS_SHARDS}.parquet"


rule corpus_shard:
    input:
        code=src_files("data"),
        corpora=corpora_tables,  # imported real-corpus tables (workflow/rules/corpora.smk); none in tiny/smoke
    output:
        SHARD_MANIFEST,
    wildcard_constraints:
        index=r"\d+",
    params:
        cfg=cfg_slice("data"),
    threads: workflow.cores
    log:
        f"logs/corpus_shard/{{index}}-of-{CORPUS_SHARDS}.log",
    shell:
        "{PY} -m soundflow.data shard --cfg {params.cfg:q} --out data/corpus --index {wildcards.index} "
        "--count " + str(CORPUS_SHARDS) + " --manifest {output} --workers {threads} 2> >(tee {log} >&2)"


rule corpus:
    input:
        code=src_files("data"),
        shards=expand(SHARD_MANIFEST, index=range(CORPUS_SHARDS)),
    output:
        train="data/corpus/train.parquet",
        dev="data/corpus/dev.parquet",
        test="data/corpus/test.parquet",
        table=report("reports/data/corpus.csv", caption="../report/corpus.rst", category="Data"),
        summary="reports/data/corpus_summary.json",
        examples=directory("reports/data/examples"),
    params:
        cfg=cfg_slice("data"),
    threads: 1
    log:
        "logs/corpus.log",
    shell:
        "{PY} -m soundflow.data merge --cfg {params.cfg:q} --out data/corpus --report-dir reports/data "
        "{input.shards:q} 2> >(tee {log} >&2)"
