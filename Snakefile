# Reproduction of "Two-argument activation functions learn soft XOR operations like cortical neurons".
#
#   snakemake --cores 8 all                                        paper scale (config.yaml)
#   snakemake --cores 2 all --configfile workflow/configs/demo.yaml  demo scale
#   snakemake --cores 2 results/figures/fig4.pdf                   one figure
#
# Path scheme (see src/multiarg/paths.py):
#   results/data/{dataset}.pt                                             prepared data + manifest
#   results/init/{activation}/seed{seed}.pt                               session I
#   results/runs/{dataset}/{arch}/{activation}/seed{seed}/session{2,3}/   sessions II and III
#   results/tables/, results/figures/                                     final artefacts
#   logs/{rule}/..., logs/benchmarks/{rule}/...

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/related.smk"


# Local jobs start forked from one process that has imported everything (multiarg.jobserver); under an executor
# that submits jobs elsewhere (SLURM) each runs as its own process. Ctrl-C skips onerror: the server then ends
# when it sees this process gone.
JOB_SERVER = {}


onstart:
    if config["job_server"] and workflow.local_exec:
        JOB_SERVER["process"] = jobserver.start("logs/jobserver.log", inductor=config["compile"] != "none")


onsuccess:
    jobserver.stop(JOB_SERVER.pop("process", None))


onerror:
    jobserver.stop(JOB_SERVER.pop("process", None))


rule all:
    input:
        all_targets(),
