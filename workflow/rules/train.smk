rule train_session2:
    input:
        data=paths.DATA,
        init=get_init,
    output:
        model=run_file(2, "model.pt"),
        metrics=run_file(2, "metrics.csv"),
        snapshots=run_file(2, "snapshots.pt"),
    log:
        "logs/train_session2/{dataset}/{arch}/{activation}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train_session2/{dataset}/{arch}/{activation}/seed{seed}.tsv"
    params:
        step=MODEL_STEP,
        args=get_train_args,
        init=get_init_arg,
        epochs=config["train"]["session2_epochs"],
        out_dir=S2,
    threads: 1
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(24 * 60),
        gpu=1,
    conda:
        ENV
    shell:
        "{params.step} --threads {threads} train --session 2 --data {input.data}"
        " --dataset {wildcards.dataset} --activation {wildcards.activation} --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --max-epochs {params.epochs} {params.init} {params.args} > {log} 2>&1"


rule train_session3:
    input:
        data=paths.DATA,
        source=run_file(2, "model.pt"),
    output:
        model=run_file(3, "model.pt"),
        metrics=run_file(3, "metrics.csv"),
    log:
        "logs/train_session3/{dataset}/{arch}/{activation}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train_session3/{dataset}/{arch}/{activation}/seed{seed}.tsv"
    params:
        step=MODEL_STEP,
        args=get_train_args,
        epochs=config["train"]["session3_epochs"],
        out_dir=S3,
    threads: 1
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(48 * 60),
        gpu=1,
    conda:
        ENV
    shell:
        "{params.step} --threads {threads} train --session 3 --data {input.data}"
        " --dataset {wildcards.dataset} --activation {wildcards.activation} --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --max-epochs {params.epochs} --source-model {input.source}"
        " {params.args} > {log} 2>&1"


rule collect_inputs:
    input:
        data=paths.DATA,
        model=run_file(2, "model.pt"),
    output:
        run_file(2, "inputs.pt"),
    log:
        "logs/collect_inputs/{dataset}/{arch}/{activation}/seed{seed}.log",
    wildcard_constraints:
        activation=_alternatives(LEARNED),
    params:
        step=MODEL_STEP,
        args=get_inputs_args,
    threads: 2
    resources:
        mem_mb=per_attempt(6000),
        runtime=per_attempt(60),
        gpu=1,
    conda:
        ENV
    shell:
        "{params.step} --threads {threads} inputs --model {input.model} --data {input.data}"
        " --out {output} {params.args} > {log} 2>&1"
