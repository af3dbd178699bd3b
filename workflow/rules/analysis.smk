rule analyze_nonlinearities:
    input:
        **analysis_inputs(),
    output:
        records="results/analysis/nonlinearities.pt",
        fits=report(ANALYSIS_TABLES["fits"], caption="../report/table.rst", category="Tables"),
        curvature=report(ANALYSIS_TABLES["curvature_tests"], caption="../report/table.rst", category="Tables"),
        spectra=report(ANALYSIS_TABLES["spectra"], caption="../report/table.rst", category="Tables"),
        maturation=report(ANALYSIS_TABLES["maturation"], caption="../report/table.rst", category="Tables"),
        md=[p.replace(".csv", ".md") for p in ANALYSIS_TABLES.values()],
    log:
        "logs/analyze_nonlinearities/analyze_nonlinearities.log",
    params:
        isa=CPU_ISA,
        args=get_analyze_args,
    threads: 1
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
    conda:
        ENV
    shell:
        "python -m multiarg --threads {threads} {params.isa} analyze --out {output.records} --fits {output.fits}"
        " --curvature {output.curvature} --spectra {output.spectra} --models {input.models}"
        " --inputs {input.inputs} --inits {input.inits} --snapshots {input.snapshots} --starts {input.starts}"
        " --maturation {output.maturation} {params.args} > {log} 2>&1"
