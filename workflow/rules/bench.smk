# Benchmarks (DESIGN section 8) on the test split through the exported bundles: one rule per benchmark
# (wildcard), each writing <REPORTS>/metrics/<bench>.json and its nested MLflow run (REPORTS: common.smk).
BENCHES = ["asr", "st", "audio_qa", "spoken_qa", "retention", "instruct", "proactive"]
# each benchmark's own modules (besides the shared runtime, streams.py and __main__.py): a change reruns it alone
BENCH_MODULES = {
    "asr": ["asr", "asr_metrics", "peers"],
    "st": ["st"],
    "audio_qa": ["qa"],
    "spoken_qa": ["qa"],
    "retention": ["retention", "asr_metrics"],
    "instruct": ["instruct", "asr_metrics"],
    "proactive": ["proactive_run", "proactive", "proactive_data"],
    "latency": ["latency"],
}


def bench_code(name):
    shared = ["streams", "__init__", "__main__", "bootstrap"] + BENCH_MODULES[name]
    return sorted(set(RUNTIME_CODE + [f"src/soundflow/bench/{m}.py" for m in shared]))



rule bench:
    input:
        bundle=BUNDLE,
        offline=OFFLINE_BUNDLE,
        test=rules.corpus.output.test,
        code=lambda w: bench_code(w.bench),
    output:
        report(REPORTS + "/metrics/{bench}.json", caption="../report/bench.rst", category="Benchmarks",
               subcategory="{bench}"),
    wildcard_constraints:
        bench="|".join(BENCHES),
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
        code=bench_code("latency"),
    output:
        metrics=report(f"{REPORTS}/metrics/latency.json", caption="../report/latency.rst", category="Benchmarks",
                       subcategory="latency"),
        plot=report(f"{REPORTS}/figures/latency.png", caption="../report/latency.rst", category="Benchmarks",
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


rule summary:
    input:
        metrics=expand(REPORTS + "/metrics/{bench}.json", bench=BENCHES),
        latency=rules.bench_latency.output.metrics,
        train=rules.train_report.output.metrics,
        reference=expand(SUMMARY_REFERENCE + "/{name}.json", name=BENCHES + ["latency", "train"]) if SUMMARY_REFERENCE else [],
        code=["src/soundflow/bench/summary.py", "src/soundflow/bench/gate.py"],
    output:
        summary=report(f"{REPORTS}/summary.md", caption="../report/summary.rst", category="Summary"),
        plot=report(f"{REPORTS}/figures/proactive.png", caption="../report/bench.rst", category="Benchmarks",
                    subcategory="proactive"),
    params:
        reference=f"--reference {SUMMARY_REFERENCE} --reference-name '{SUMMARY_REFERENCE_NAME}'" if SUMMARY_REFERENCE else "",
    log:
        "logs/summary.log",
    shell:
        "{PY} -m soundflow.bench.summary --metrics {REPORTS}/metrics --out {output.summary} "
        "--figures {REPORTS}/figures {params.reference} 2> >(tee {log} >&2)"
