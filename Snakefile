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


rule all:
    input:
        all_targets(),
