#!/usr/bin/env bash
# Everything issue 6 measures on a GPU, time-boxed to fit device calls of under 10 minutes, from the repo root:
#   bench  bench/inner_net.py --sweep, bench/precision.py (each mode's error against float64 and against its
#          emulation), bench/train_step.py (with profiles of arg2, dac and relu), the fused kernels against PyTorch
#          on CUDA (tests/fused_cases.py, on 4 pytest-xdist workers where the image has xdist),
#          bench/estimate_cost.py (paper scale, fused-tf32), bench/dac_layer.py --sweep, bench/concurrency.py (1, 4,
#          8 training processes sharing the GPU, without and with MPS), bench/train_step.py again with relu and the
#          fused arg2 step torch.compile'd and as CUDA graphs, and last, if time is left, bench/input_grad.py. The
#          benchmarks compile their kernels side by side first (bench/common.py compile_ahead); Triton compiles each
#          on one CPU core.
#   quick  the whole DAG at GPU quick scale (workflow/configs/gpu-quick.yaml, or the CONFIG given), timed, under MPS
#          if a concurrency record of this machine or a committed one says MPS is faster; in the time it leaves,
#          bench/estimate_cost.py for that config; and the run's summary (bench/run_summary.py: jobs, times,
#          versions, figures and tables, each rule against that estimate). Under QUICK_MIN seconds (default 420)
#          left, the DAG waits for a later call rather than start and be cut off.
#   all    bench, then quick in the time left
# Each stage runs under a timeout cut to the time left before SECONDS (default 570) have passed, so what was
# measured always comes back; one left less than its allowance and under a minute waits for a later call. A second
# call on the same warm machine goes on where the first stopped (a fresh machine starts over). Results:
# stages.txt (rc and seconds of each stage, every call's), gpu.txt, bench.tar.gz (the JSON and logs of every call
# so far, re-packed after every stage), quick-results.tar.gz. GPU_SLOTS (default 8) is Snakemake's gpu resource.
# Before: bash bench/gpu_wheels.sh; cp -r ../shared/data .data. Carry .whl and .data (with the tracked tree, 55 MiB
# of the 64 a call may send); results land in $OUT.
# A lease of 15 device minutes, its start included, has two calls' worth (the machine stays warm 30 s after one):
#   bash bench/gpu_session.sh bench "$OUT" 330       # run(timeout_s=360)
#   bash bench/gpu_session.sh bench "$OUT" S         # at once after it: S = budget_left_s - 120, timeout_s = S + 30
# The DAG needs about 8 minutes of a call: quick, in a lease of its own (one call, S = 540, timeout_s = 570).
# After: bench.tar.gz's records have the names bench/performance.py reads: put its *.json and quick-cuda/ in
# bench/results/, then python bench/performance.py --readme fills the README's table from them.
set -uo pipefail
part=${1:?usage: gpu_session.sh bench|quick|all OUT [SECONDS] [CONFIG]}
out=${2:?usage: gpu_session.sh bench|quick|all OUT [SECONDS] [CONFIG]}
deadline=$(( $(date +%s) + ${3:-570} ))
config=${4:-workflow/configs/gpu-quick.yaml}
work=/tmp/bench && mkdir -p "$work/done"
# once per machine: a later call on the same warm machine finds the packages, the shim and the Triton cache there
if [[ ! -e /tmp/site/installed ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  # the rules call `python`; make it the interpreter that holds PyTorch there, whatever else PATH offers
  mkdir -p /tmp/site/bin
  printf '#!/bin/sh\nexec %s "$@"\n' "$(python3 -c 'import sys; print(sys.executable)')" >/tmp/site/bin/python
  chmod +x /tmp/site/bin/python
  touch /tmp/site/installed
fi
export PYTHONPATH=/tmp/site:$PWD/.whl/site:$PWD/src PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
export MULTIARG_DATA_MIRROR=$PWD/.data
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >"$out/gpu.txt" || echo "no nvidia-smi"

log() { echo "$*" | tee -a "$work/stages.txt"; }
pack() {
  cp "$work/stages.txt" "$out/"
  tar czf "$out/bench.tar.gz" -C "$work" --exclude ./done .
}
log "call $(date -u +%FT%TZ): $part, ${3:-570} s"

# stage NAME CAP RESERVE CMD...: CMD under a timeout of CAP seconds, or less so that RESERVE seconds stay before
# the deadline; its output goes to $work/NAME.log. A failed or cut-off stage is recorded and the next one runs.
# A later call on this machine skips a stage that ended or used its whole CAP, and runs again one that the
# deadline cut short. With less than CAP left, a stage starts only with LEAST seconds (default 60; LEAST=N stage ...).
stage() {
  local name=$1 cap=$2 reserve=$3 least=${LEAST:-60} begin rc limit
  shift 3
  if [[ -e $work/done/$name ]]; then
    log "$name: ran in an earlier call"
    return
  fi
  begin=$(date +%s)
  limit=$(( deadline - begin - reserve ))
  (( limit > cap )) && limit=$cap
  # a stage cut far short of its allowance may write nothing (the estimate writes once, at its end): keep it for
  # a later call rather than spend the time
  if (( limit < 15 || (limit < cap && limit < least) )); then
    log "$name skipped: ${limit} s left, kept for a later call"
    return
  fi
  timeout -k 10 "$limit" "$@" >"$work/$name.log" 2>&1
  rc=$?
  (( (rc != 124 && rc != 137) || limit == cap )) && touch "$work/done/$name"
  log "$name rc=$rc seconds=$(( $(date +%s) - begin )) limit=$limit"
  tail -n 4 "$work/$name.log"
  pack
}

bench() {
  # first the goals 1-3, inner_net first: its processes compile the tuple layout's kernels side by side,
  # and precision's sizes specialise them alike, so it finds them compiled
  stage inner_net 120 60 python3 bench/inner_net.py --sweep --out "$work/inner_net-cuda.json"
  stage precision 45 60 python3 bench/precision.py --out "$work/precision-cuda.json"
  stage train_step 90 40 python3 bench/train_step.py \
    --profile arg2/fused-tf32,arg2/fused-bf16,arg2/eager,dac/fused-fp32,relu/eager --out "$work/train_step-cuda.json"
  # the correctness check before the estimate: the two fill one call of 330 s, and a second goes on here
  # -v: each case's verdict is in the log as it ends, so a cut-off stage still says which passed (the XML is
  # written only at the end); --durations: what to trim if it does not fit; xdist: the cases compile their kernels
  # on the CPU, and the workflow case and the three seed-noise cases are minutes of serial work
  local workers=()
  python3 -c "import xdist" 2>/dev/null && workers=(-n 4)
  stage fused_cases 150 30 python3 -m pytest -v "${workers[@]}" -p no:cacheprovider -rs --durations 15 \
    tests/fused_cases.py --junitxml "$work/fused_cases-cuda.xml"
  # goal 3, written only at its end: a cut-off estimate is lost, so it takes a long allowance or waits for one
  LEAST=150 stage estimate 210 20 python3 bench/estimate_cost.py --inner-kernel fused-tf32 \
    --out "$work/estimate-cuda-fused-tf32.json"
  stage dac_layer 60 15 python3 bench/dac_layer.py --sweep --out "$work/dac_layer-cuda.json"
  # the workflow's way of sharing the GPU (a process per job), with and without MPS; short bursts, one round: at 8
  # processes a burst lasts up to 8 solo bursts if they only queue up
  stage concurrency 90 15 python3 bench/concurrency.py --mps off,on --seconds 0.3 --rounds 1 \
    --out "$work/concurrency-cuda.json"
  # last: torch.compile takes tens of seconds a model. ReLU and the fused 2-arg step compiled, and replayed as CUDA
  # graphs; the MLP first, whose small step is the one launches would bound
  stage train_step_compile 150 10 python3 bench/train_step.py --settings mnist-mlp,cifar10-cnn --activations relu,arg2 \
    --compile relu,arg2/fused-tf32 --graphs relu,arg2/fused-tf32 --out "$work/train_step-compile-cuda.json"
  # if any time is left: what freezing the weights saves an attack's gradient on the fused kernels
  stage input_grad 45 5 python3 bench/input_grad.py --out "$work/input_grad-cuda.json"
}

# MPS only where a record of this machine, else a committed GPU record, measured it faster: with none, the DAG
# runs without, rather than spend its time measuring. The jobs, and the job server Snakemake starts, inherit the
# pipe folder.
mps_start() {
  local record=$work/concurrency-cuda.json
  [[ -s $record ]] || record=bench/results/concurrency-cuda.json
  if [[ ! -s $record ]]; then
    echo "no concurrency record: MPS off" >"$work/mps-verdict.txt"
    return 1
  fi
  if python3 bench/concurrency.py --verdict "$record" >"$work/mps-verdict.txt" 2>&1; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps
    mkdir -p /tmp/mps && nvidia-cuda-mps-control -d && return
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  fi
  return 1
}

quick() {
  local mps=off against=() cached
  if [[ ! -e $work/done/quick ]]; then
    if (( deadline - $(date +%s) - 25 < ${QUICK_MIN:-420} )); then
      log "quick skipped: under ${QUICK_MIN:-420} s left, kept for a later call"
      pack
      return
    fi
    mps_start && mps=on
    # the DAG's time depends on what earlier calls left compiled: say how much that was
    cached=$(find "${TRITON_CACHE_DIR:-$HOME/.triton/cache}" -name '*.cubin' 2>/dev/null | wc -l)
    log "quick: config $config, gpu=${GPU_SLOTS:-8}, MPS $mps, $cached kernels in Triton's cache at the start"
    # a cut-off run still sends back what it made; Snakemake removes the outputs of the jobs it stops
    # --keep-going: a failed job costs only what depends on it, and the summary says which
    stage quick 600 25 python3 -m snakemake --cores 16 --resources "gpu=${GPU_SLOTS:-8}" --scheduler greedy \
      --keep-going all --configfile "$config"
    if [[ $mps == on ]]; then
      echo quit | nvidia-cuda-mps-control
      unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    fi
  fi
  # only in the time the DAG left: the same GPU's estimate of the run just made checks the cost model that the
  # paper-scale estimate rests on
  stage quick_estimate 90 25 python3 bench/estimate_cost.py --configfile "$config" --repeats 3 --startup-repeats 2 \
    --out "$work/estimate-quick.json"
  [[ -s $work/estimate-quick.json ]] && against=(--estimate "$work/estimate-quick.json")
  stage quick_summary 20 5 python3 bench/run_summary.py --configfile "$config" --copy --out "$work/quick-cuda" \
    "${against[@]}"
  tar czf "$out/quick-results.tar.gz" --ignore-failed-read results/tables results/figures logs
}

case $part in
  bench) bench ;;
  quick) quick ;;
  all) bench; quick ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
pack
