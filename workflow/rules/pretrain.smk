rule pretrain_inner:
    output:
        paths.INIT,
    log:
        "logs/pretrain_inner/{activation}/seed{seed}.log",
    wildcard_constraints:
        activation=_alternatives(PRETRAINED),
    params:
        isa=CPU_ISA,
        args=get_pretrain_args,
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    conda:
        ENV
    shell:
        "python -m multiarg --threads {threads} {params.isa} pretrain --activation {wildcards.activation}"
        " --seed {wildcards.seed} --out {output} {params.args} > {log} 2>&1"
