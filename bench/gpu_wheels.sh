#!/usr/bin/env bash
# Fetch, on a machine with a package index, the cp312 wheels that the GPU machine lacks for the workflow
# (Snakemake and its dependencies, jsonschema, pyautoattack) into .whl/ (git-ignored), to travel with a
# device call. PuLP is left out: with --scheduler greedy Snakemake never imports it (checked here with pulp made
# unimportable). A package published only as source (pure Python) is built into a wheel here, so nothing is
# built there. pyautoattack's wheel carries 45 MB of example models; it is unpacked into .whl/site without
# them (put that on PYTHONPATH).
#   bash bench/gpu_wheels.sh && du -sh .whl
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  annotated-types==0.8.0 argparse-dataclass==2.0.0 conda-inject==1.3.2 ConfigArgParse==1.9.0
  connection_pool==0.0.3 docutils==0.22.4 dpath==2.2.0 fastjsonschema==2.22.3 gitdb==4.0.12 GitPython==3.2.1
  greenlet==3.5.6 humanfriendly==10.0 immutables==0.21 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  jupyter_core==5.9.1 nbformat==5.11.1 platformdirs==4.14.7 pyautoattack==0.2.0 pydantic==2.14.3
  pydantic_core==2.50.4 referencing==0.37.0 rpds-py==2026.9.1 smart_open==7.7.1 smmap==5.0.3 snakemake==9.27.1
  snakemake-interface-common==1.23.0 snakemake-interface-executor-plugins==9.4.0
  snakemake-interface-logger-plugins==2.1.0 snakemake-interface-report-plugins==1.3.0
  snakemake-interface-scheduler-plugins==2.0.2 snakemake-interface-storage-plugins==4.4.1 SQLAlchemy==2.0.58
  sqlmodel==0.0.37 tenacity==9.2.1 throttler==1.2.3 traitlets==5.16.1 typing-inspection==0.4.5 typing_extensions==4.16.0
  tzdata==2026.6
  yte==1.9.4
)
platforms=()
for n in 17 24 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
for pkg in "${packages[@]}"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 "${platforms[@]}" -d .whl "$pkg" 2>/dev/null \
    || python3 -m pip wheel -q --no-deps --no-binary=:all: -w .whl "$pkg"
done
unzip -q -o .whl/pyautoattack-*.whl -x 'pyautoattack/examples/*' -d .whl/site && rm .whl/pyautoattack-*.whl
