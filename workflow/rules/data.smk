rule prepare_data:
    output:
        data=paths.DATA,
        manifest=paths.DATA.replace(".pt", ".manifest.json"),
    log:
        "logs/prepare_data/{dataset}.log",
    params:
        cache="results/downloads",
    threads: 2
    resources:
        mem_mb=per_attempt(6000),
        runtime=per_attempt(30),
    conda:
        ENV
    shell:
        "python -m multiarg prepare-data --dataset {wildcards.dataset} --out {output.data}"
        " --cache-dir {params.cache} > {log} 2>&1"
