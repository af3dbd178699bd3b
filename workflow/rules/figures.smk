rule fig4:
    input:
        **fig4_inputs(),
    output:
        pdf=f"{paths.FIGURES}/fig4.pdf",
        png=report(f"{paths.FIGURES}/fig4.png", caption="../report/fig4.rst", category="Figures"),
    log:
        "logs/figures/fig4.log",
    params:
        scale=SCALE,
        mass=config["analysis"]["mass"],
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(20),
    conda:
        ENV
    shell:
        "python -m multiarg fig4 --out {output.pdf} --scale {params.scale} --mass {params.mass}"
        " --inputs {input.inputs} --inits {input.inits} --models {input.models} --metrics {input.metrics}"
        " > {log} 2>&1"


rule fig5:
    input:
        **fig5_inputs(),
        analysis="results/analysis/nonlinearities.pt",
    output:
        pdf=f"{paths.FIGURES}/fig5.pdf",
        png=report(f"{paths.FIGURES}/fig5.png", caption="../report/fig5.rst", category="Figures"),
    log:
        "logs/figures/fig5.log",
    params:
        scale=SCALE,
        mass=config["analysis"]["mass"],
        epochs=",".join(map(str, config["figures"]["fig5"]["epochs"])),
        maturity=cli_args({k: config["analysis"][k] for k in ("maturity_r2", "maturity_epochs")}),
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(20),
    conda:
        ENV
    shell:
        "python -m multiarg fig5 --out {output.pdf} --scale {params.scale} --mass {params.mass}"
        " --epochs {params.epochs} --snapshots {input.snapshots} --inputs {input.inputs}"
        " --analysis {input.analysis} {params.maturity} > {log} 2>&1"


rule fig7_fig8:
    input:
        "results/analysis/nonlinearities.pt",
    output:
        pdf=f"{paths.FIGURES}/{{fig}}.pdf",
        png=report(f"{paths.FIGURES}/{{fig}}.png", caption="../report/analysis_figure.rst", category="Figures"),
    log:
        "logs/figures/{fig}.log",
    wildcard_constraints:
        fig="fig7|fig8",
    params:
        options=analysis_figure_options,
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(20),
    conda:
        ENV
    shell:
        "python -m multiarg {wildcards.fig} --out {output.pdf} --analysis {input} {params.options}"
        " > {log} 2>&1"
