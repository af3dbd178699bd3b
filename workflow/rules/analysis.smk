rule analyze_nonlinearities:
    input:
        **analysis_inputs(),
    output:
        records="results/analysis/nonlinearities.pt",
        fits=ANALYSIS_TABLES["fits"],
        curvature=ANALYSIS_TABLES["curvature_tests"],
        spectra=ANALYSIS_TABLES["spectra"],
        md=[p.replace(".csv", ".md") for p in ANALYSIS_TABLES.values()],
    log:
        "logs/analyze_nonlinearities/analyze_nonlinearities.log",
    params:
        args=get_analyze_args,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m multiarg --threads {threads} analyze --out {output.records} --fits {output.fits}"
        " --curvature {output.curvature} --spectra {output.spectra} --models {input.models}"
        " --inputs {input.inputs} --inits {input.inits} {params.args} > {log} 2>&1"
