# Real corpora (soundflow.data.corpora): one job per local corpus copy named in data.corpora.sources,
# each writing its clip-source table for the corpus stage. With no source set (tiny, smoke) no rule here
# is in the DAG and the corpus is synthetic only.
CORPORA = sorted(name for name, path in config["data"].get("corpora", {}).get("sources", {}).items() if path)
CORPORA_DIR = config["data"].get("corpora", {}).get("dir", "data/corpora")


def corpora_tables(wildcards=None):
    """The imported source tables a corpus job reads: none unless the profile names sources."""
    return expand(f"{CORPORA_DIR}/{{source}}.parquet", source=CORPORA)


rule import_corpora:
    input:
        code=src_files("data/corpora"),
    output:
        table=f"{CORPORA_DIR}/{{source}}.parquet",
        cuts=f"{CORPORA_DIR}/{{source}}.cuts.jsonl.gz",
        counts=f"{CORPORA_DIR}/{{source}}.json",
    wildcard_constraints:
        source="|".join(CORPORA) or "no-source",
    params:
        path=lambda wildcards: config["data"]["corpora"]["sources"][wildcards.source],
    log:
        "logs/import_corpora/{source}.log",
    shell:
        "{PY} -m soundflow.data.corpora import --source {wildcards.source} --path {params.path:q} "
        "--out " + CORPORA_DIR + " 2> >(tee {log} >&2)"
