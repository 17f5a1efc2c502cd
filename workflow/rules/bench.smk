# Benchmarks (DESIGN section 8) on the test split through the exported bundles: one rule per benchmark
# (wildcard), each writing reports/metrics/<bench>.json and its nested MLflow run.
BENCH_CODE = RUNTIME_CODE + src_files("bench")
BENCHES = ["latency"]


rule bench:
    input:
        bundle=BUNDLE,
        offline=OFFLINE_BUNDLE,
        test=rules.corpus.output.test,
        code=BENCH_CODE,
    output:
        report("reports/metrics/{bench}.json", caption="../report/bench.rst", category="Benchmarks",
               subcategory="{bench}"),
    wildcard_constraints:
        bench="|".join(b for b in BENCHES if b != "latency"),
    params:
        cfg=lambda w: cfg_slice(f"bench.{w.bench}"),
    threads: workflow.cores
    log:
        "logs/bench_{bench}.log",
    shell:
        "{PY} -m soundflow.bench --name {wildcards.bench} --bundle {input.bundle} --offline-bundle {input.offline} "
        "--corpus data/corpus --work data/bench/{wildcards.bench} --cfg {params.cfg:q} --workers {threads} "
        "--out {output} 2> >(tee {log} >&2)"


rule bench_latency:
    input:
        bundle=BUNDLE,
        test=rules.corpus.output.test,
        code=BENCH_CODE,
    output:
        metrics=report("reports/metrics/latency.json", caption="../report/latency.rst", category="Benchmarks",
                       subcategory="latency"),
        plot=report("reports/figures/latency.png", caption="../report/latency.rst", category="Benchmarks",
                    subcategory="latency"),
    params:
        cfg=cfg_slice("bench.latency"),
    threads: workflow.cores  # alone on the machine: it measures wall-clock latency
    log:
        "logs/bench_latency.log",
    shell:
        "{PY} -m soundflow.bench --name latency --bundle {input.bundle} --corpus data/corpus "
        "--work data/bench/latency --cfg {params.cfg:q} --out {output.metrics} --plot {output.plot} "
        "2> >(tee {log} >&2)"
