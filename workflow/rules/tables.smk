rule param_table:
    output:
        csv=report(f"{paths.TABLES}/param_counts.csv", caption="../report/table.rst", category="Tables"),
        md=f"{paths.TABLES}/param_counts.md",
    log:
        "logs/param_table/param_table.log",
    params:
        args=get_param_table_args,
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
    conda:
        ENV
    shell:
        "python -m multiarg param-table --out {output.csv} {params.args} > {log} 2>&1"


rule claims_table:
    input:
        **claims_inputs(),
    output:
        csv=report(f"{paths.TABLES}/claims.csv", caption="../report/table.rst", category="Tables"),
        md=f"{paths.TABLES}/claims.md",
    log:
        "logs/claims_table/claims_table.log",
    params:
        scale=SCALE,
        epochs=f"{config['train']['session2_epochs']} {config['train']['session3_epochs']}",
        optional=lambda wildcards, input: " ".join(
            f"--{k} {input[k]}" for k in ("cifar10c", "table1") if input.get(k)
        ),
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
    conda:
        ENV
    shell:
        "python -m multiarg claims --out {output.csv} --scale {params.scale} --curvature {input.curvature}"
        " --spectra {input.spectra} --maturation {input.maturation} --summary-values {input.summary_values}"
        " --session-epochs {params.epochs}"
        " {params.optional} > {log} 2>&1"
