# Export (DESIGN section 7): trained models -> self-contained runtime bundles; the streaming model is also
# registered in the MLflow model registry (soundflow-<profile>@<runtime.registry_alias>).
RUNTIME_CODE = src_files("runtime", "models") + ["src/soundflow/layout.py", "src/soundflow/features.py",
                                                 "src/soundflow/precision.py", "src/soundflow/cli.py"]
EXPORT_FROM = {"soundflow": "s4", "offline": "offline"}  # bundle kind -> trained stage
BUNDLE = f"data/export/soundflow-{PROFILE}"
OFFLINE_BUNDLE = f"data/export/offline-{PROFILE}"


def export_cfg():
    import json

    return json.dumps({"runtime": config["runtime"], "max_context_chunks": config["tokens"]["max_chunks"]},
                      sort_keys=True)


rule export:
    input:
        model=lambda w: f"data/models/{EXPORT_FROM[w.kind]}/model",
        tokens=rules.tokens.output,
        code=RUNTIME_CODE,
    output:
        directory(f"data/export/{{kind}}-{PROFILE}"),
    wildcard_constraints:
        kind="soundflow|offline",
    params:
        cfg=export_cfg(),
        registry=lambda w: "" if w.kind == "soundflow" else "--no-registry",
    log:
        f"logs/export_{{kind}}-{PROFILE}.log",
    shell:
        "{PY} -m soundflow.cli export --model {input.model} --out {output} "
        "--cfg {params.cfg:q} {params.registry} 2> >(tee {log} >&2)"
