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
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python -m multiarg param-table --out {output.csv} {params.args} > {log} 2>&1"
