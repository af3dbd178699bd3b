#!/usr/bin/env bash
# Everything issue 6 measures, in two device calls of under 10 minutes each, from the repository root:
#   bench  the fused kernels against PyTorch on CUDA (tests/fused_cases.py), bench/inner_net.py --sweep,
#          bench/estimate_cost.py (paper scale; fused-tf32 and eager) and bench/train_step.py --compile
#   quick  the whole DAG at GPU quick scale (workflow/configs/gpu-quick.yaml, or the CONFIG given), timed
# Before: bash bench/gpu_wheels.sh; cp -r ../shared/data .data. Carry .whl and .data; results land in $OUT.
#   bash bench/gpu_session.sh bench "$OUT"
#   bash bench/gpu_session.sh quick "$OUT" [CONFIG]
set -euo pipefail
part=${1:?usage: gpu_session.sh bench|quick OUT}
out=${2:?usage: gpu_session.sh bench|quick OUT}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/.whl/site:$PWD/src PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
export MULTIARG_DATA_MIRROR=$PWD/.data
# the rules call `python`; make it the interpreter that holds PyTorch there, whatever else PATH offers
printf '#!/bin/sh\nexec %s "$@"\n' "$(python3 -c 'import sys; print(sys.executable)')" >/tmp/site/bin/python
chmod +x /tmp/site/bin/python
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >"$out/gpu.txt" || echo "no nvidia-smi"
case $part in
  bench)
    # a failed case is recorded in the log and the benchmarks still run: they measure errors too
    python3 -m pytest -q -p no:cacheprovider -rs tests/fused_cases.py >"$out/fused_cases.log" 2>&1 \
      || echo "FUSED CASES FAILED" | tee -a "$out/fused_cases.log"
    tail -n 3 "$out/fused_cases.log"
    python3 bench/inner_net.py --sweep --out "$out/inner_net-cuda.json"
    for kernel in fused-tf32 eager; do
      python3 bench/estimate_cost.py --inner-kernel "$kernel" --out "$out/estimate-cuda-$kernel.json"
    done
    # last: its torch.compile variants are the slowest part (it writes its JSON after each setting)
    python3 bench/train_step.py --compile --out "$out/train_step-cuda.json" ;;
  quick)
    start=$(date +%s)
    # on failure, what was made and the logs still come back
    python3 -m snakemake --cores 16 --resources gpu=8 --scheduler greedy all \
      --configfile "${3:-workflow/configs/gpu-quick.yaml}" >"$out/quick.log" 2>&1 || echo "SNAKEMAKE FAILED ($?)"
    echo "quick DAG wall seconds: $(( $(date +%s) - start ))" | tee -a "$out/quick.log"
    tail -n 20 "$out/quick.log"
    tar czf "$out/quick-results.tar.gz" --ignore-failed-read results/tables results/figures logs ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
