# SoundFlow-mini workflow: thin entry. Rules live in workflow/rules/, one file per stage family.
# Run everything: snakemake --cores all      (profile: --config profile=smoke|tiny|small|paper)
from snakemake.utils import min_version

min_version("9.0")

configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/corpora.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/tokenize.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/thinker.smk"
include: "workflow/rules/runtime.smk"
include: "workflow/rules/bench.smk"


rule all:
    input:
        rules.corpus.output,
        rules.tokens.output,
        rules.train_report.output,
        "data/models/offline/model",
        BUNDLE,
        OFFLINE_BUNDLE,
        rules.summary.output,


onstart:
    pipeline_start()


onsuccess:
    pipeline_end("FINISHED", log)


onerror:
    pipeline_end("FAILED", log)
