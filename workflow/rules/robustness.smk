rule cifar10c:
    input:
        paths.DATA.format(dataset="cifar10"),
    output:
        directory(C10C_DIR),  # manifest.json and the corrupted sets it lists (labels.npy too, if published)
    log:
        "logs/cifar10c/cifar10c.log",
    params:
        args=lambda wildcards: cli_args({"seed": C10C["seed"], "source": C10C["source"],
                                         "test_limit": c10c_test_limit(), "split_seed": config["data"]["split_seed"]}),
    threads: 1
    resources:
        mem_mb=per_attempt(6000),
        runtime=per_attempt(60),
    conda:
        ENV
    shell:
        "python -m multiarg --threads {threads} cifar10c --data {input} --out-dir {output} {params.args}"
        " > {log} 2>&1"


rule eval_cifar10c:
    input:
        data=paths.DATA,
        model=run_file(3, "model.pt"),
        c10c=rules.cifar10c.output[0],
    output:
        run_file(3, "cifar10c_errors.json"),
    log:
        "logs/eval_cifar10c/{dataset}/{arch}/{activation}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/eval_cifar10c/{dataset}/{arch}/{activation}/seed{seed}.tsv"
    wildcard_constraints:
        dataset="cifar10",
    params:
        step=MODEL_STEP,
        args=lambda wildcards: cli_args({"batch_size": C10C["batch_size"], "test_limit": c10c_test_limit(),
                                         "split_seed": config["data"]["split_seed"], "device": config["device"]}),
    threads: 1
    resources:
        mem_mb=per_attempt(6000),
        runtime=per_attempt(120),
        gpu=1,
    conda:
        ENV
    shell:
        "{params.step} --threads {threads} eval-corruptions --model {input.model} --data {input.data}"
        " --cifar10c {input.c10c} --out {output} {params.args} > {log} 2>&1"


rule cifar10c_table:
    input:
        c10c_errors(),
    output:
        csv=report(f"{paths.TABLES}/cifar10c.csv", caption="../report/table.rst", category="Tables"),
        md=f"{paths.TABLES}/cifar10c.md",
    log:
        "logs/cifar10c_table/cifar10c_table.log",
    params:
        scale=SCALE,
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    conda:
        ENV
    shell:
        "python -m multiarg cifar10c-table --out {output.csv} --scale {params.scale} --errors {input} > {log} 2>&1"


rule fig9:
    input:
        c10c_errors(),
    output:
        pdf=f"{paths.FIGURES}/fig9.pdf",
        png=report(f"{paths.FIGURES}/fig9.png", caption="../report/fig9.rst", category="Figures"),
    log:
        "logs/figures/fig9.log",
    params:
        scale=SCALE,
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    conda:
        ENV
    shell:
        "python -m multiarg fig9 --out {output.pdf} --scale {params.scale} --errors {input} > {log} 2>&1"


rule train_adversarial:
    input:
        data=paths.DATA,
        source=get_adversarial_source,
    output:
        model=f"{ADV_RUN}/model.pt",
        metrics=f"{ADV_RUN}/metrics.csv",
    log:
        "logs/train_adversarial/{dataset}/{arch}/{activation}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train_adversarial/{dataset}/{arch}/{activation}/seed{seed}.tsv"
    params:
        step=MODEL_STEP,
        args=lambda wildcards: get_train_args(wildcards, ADV["patience"], ADV["train_limit"]),
        adversarial=get_adversarial_args,
        source=lambda wildcards, input: f"--source-model {input.source}" if input.get("source") else "",
        out_dir=ADV_RUN,
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
        " --out-dir {params.out_dir} {params.source} {params.adversarial} {params.args} > {log} 2>&1"


rule autoattack:
    input:
        data=paths.DATA,
        model=rules.train_adversarial.output.model,
    output:
        result=f"{ADV_RUN}/autoattack.json",
        attack_log=f"{ADV_RUN}/autoattack.log",  # AutoAttack's own, written beside the result
    log:
        "logs/autoattack/{dataset}/{arch}/{activation}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/autoattack/{dataset}/{arch}/{activation}/seed{seed}.tsv"
    params:
        step=MODEL_STEP,
        args=get_autoattack_args,
    threads: 2
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(12 * 60),
        gpu=1,
    conda:
        ENV
    shell:
        "{params.step} --threads {threads} autoattack --model {input.model} --data {input.data}"
        " --out {output.result} {params.args} > {log} 2>&1"


rule table1:
    input:
        autoattack_results(),
    output:
        csv=report(f"{paths.TABLES}/table1.csv", caption="../report/table.rst", category="Tables"),
        md=f"{paths.TABLES}/table1.md",
        tex=f"{paths.TABLES}/table1.tex",
    log:
        "logs/table1/table1.log",
    params:
        scale=SCALE,
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    conda:
        ENV
    shell:
        "python -m multiarg table1 --out {output.csv} --scale {params.scale} --results {input} > {log} 2>&1"
