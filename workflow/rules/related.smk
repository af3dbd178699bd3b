rule train_rnn:
    input:
        data=paths.DATA.format(dataset="mnist"),
        init=lambda wildcards: paths.INIT.format(**wildcards) if wildcards.activation.startswith("arg") else [],
    output:
        summary=f"{RNN_RUN}/summary.json",
        model=f"{RNN_RUN}/model.pt",
        metrics=f"{RNN_RUN}/metrics.csv",
    log:
        "logs/train_rnn/{sequence}/{activation}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train_rnn/{sequence}/{activation}/seed{seed}.tsv"
    wildcard_constraints:
        activation=_alternatives(RNN["activations"]),
    params:
        step=MODEL_STEP,
        args=get_rnn_args,
        init=get_init_arg,
        out_dir=RNN_RUN,
    threads: 1
    resources:
        mem_mb=per_attempt(6000),
        runtime=per_attempt(24 * 60),
        gpu=1,
    conda:
        ENV
    shell:
        "{params.step} --threads {threads} train-rnn --data {input.data} --activation {wildcards.activation}"
        " --seed {wildcards.seed} --sequence {wildcards.sequence} --out-dir {params.out_dir} {params.init}"
        " {params.args} > {log} 2>&1"


rule rnn_table:
    input:
        rnn_summaries(),
    output:
        csv=report(f"{paths.TABLES}/rnn.csv", caption="../report/table.rst", category="Tables"),
        md=f"{paths.TABLES}/rnn.md",
    log:
        "logs/rnn_table/rnn_table.log",
    params:
        scale=SCALE,
        mass=config["analysis"]["mass"],
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    conda:
        ENV
    shell:
        "python -m multiarg rnn-table --out {output.csv} --scale {params.scale} --mass {params.mass}"
        " --summaries {input} > {log} 2>&1"


rule fig_rnn:
    input:
        summaries=rnn_summaries(),
        models=rnn_summaries("model.pt"),
    output:
        pdf=f"{paths.FIGURES}/rnn.pdf",
        png=report(f"{paths.FIGURES}/rnn.png", caption="../report/rnn.rst", category="Figures"),
    log:
        "logs/figures/rnn.log",
    params:
        scale=SCALE,
        examples=config["figures"]["fig7"]["examples"],
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    conda:
        ENV
    shell:
        "python -m multiarg fig-rnn --out {output.pdf} --scale {params.scale} --examples {params.examples}"
        " --summaries {input.summaries} > {log} 2>&1"


rule summary_table:
    input:
        **summary_inputs(),
    output:
        csv=report(f"{paths.TABLES}/summary.csv", caption="../report/table.rst", category="Tables"),
        md=f"{paths.TABLES}/summary.md",
        values=f"{paths.TABLES}/summary_values.json",
        versus_relu=report(f"{paths.TABLES}/versus_relu.csv", caption="../report/table.rst", category="Tables"),
        versus_relu_md=f"{paths.TABLES}/versus_relu.md",
        versus_reference=report(f"{paths.TABLES}/versus_reference.csv", caption="../report/table.rst",
                                category="Tables"),
        versus_reference_md=f"{paths.TABLES}/versus_reference.md",
    log:
        "logs/summary_table/summary_table.log",
    params:
        scale=SCALE,
        early_epochs=config["summary"]["early_epochs"],
        reference=config["matching"]["reference"],
        optional=lambda wildcards, input: " ".join(
            f"--{k} {' '.join(input[k])}" for k in ("cifar10c", "autoattack", "rnn") if input.get(k)
        ),
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(20),
    conda:
        ENV
    shell:
        "python -m multiarg summary --out {output.csv} --scale {params.scale} --models {input.models}"
        " --values {output.values} --metrics {input.metrics} --session2-models {input.session2_models}"
        " --versus-relu {output.versus_relu}"
        " --versus-reference {output.versus_reference} --reference {params.reference}"
        " --param-table {input.params}"
        " --early-epochs {params.early_epochs}"
        " {params.optional} > {log} 2>&1"


rule fig_compare:
    input:
        rules.summary_table.output.csv,
    output:
        pdf=f"{paths.FIGURES}/compare.pdf",
        png=report(f"{paths.FIGURES}/compare.png", caption="../report/compare.rst", category="Figures"),
    log:
        "logs/figures/compare.log",
    params:
        scale=SCALE,
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    conda:
        ENV
    shell:
        "python -m multiarg fig-compare --summary {input} --out {output.pdf} --scale {params.scale} > {log} 2>&1"


rule fig_versus:
    input:
        rules.summary_table.output.versus_relu,
        rules.summary_table.output.versus_reference,
    output:
        pdf=f"{paths.FIGURES}/versus.pdf",
        png=report(f"{paths.FIGURES}/versus.png", caption="../report/versus.rst", category="Figures"),
    log:
        "logs/figures/versus.log",
    params:
        scale=SCALE,
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    conda:
        ENV
    shell:
        "python -m multiarg fig-versus --tables {input} --out {output.pdf} --scale {params.scale} > {log} 2>&1"
