rule pretrain_inner:
    output:
        paths.INIT,
    log:
        "logs/pretrain_inner/{activation}/seed{seed}.log",
    wildcard_constraints:
        activation=_alternatives(LEARNED),
    params:
        args=get_pretrain_args,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "python -m multiarg --threads {threads} pretrain --activation {wildcards.activation}"
        " --seed {wildcards.seed} --out {output} {params.args} > {log} 2>&1"
