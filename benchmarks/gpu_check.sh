#!/usr/bin/env bash
# The GPU check: one command that runs and measures the whole experiment on a GPU machine.
#
#   bash benchmarks/gpu_check.sh prepare MNIST_DIR   # here, with the package registry: fills .device/
#   bash benchmarks/gpu_check.sh run OUT_DIR          # on the GPU machine, from the repository root
#
# `prepare` puts in the git-ignored .device/ what a GPU machine without a network needs beside the
# checkout: the four MNIST .gz files of MNIST_DIR, and wheels.tar.xz, the wheels for its Python 3.12 of
# the locked packages its image lacks (DEVICE_NAMES below: DVC and its dependencies, pydantic,
# ruamel.yaml, torchattacks, vl-convert-python, mlxtend; DEVICE_HAS, the runtime dependencies its image
# has: torch, torchvision, numpy, pandas, matplotlib, ...; tests/test_gpu_check.py checks that the two
# cover every runtime dependency). The wheels are stored uncompressed inside an xz tarball: 35 MB where
# the wheels themselves take 53 (vl-convert-python alone 34). `prepare` prints how much the checkout and
# .device take together and fails above SIZE_LIMIT_MIB (default 64). Copy .device to the GPU machine
# beside the checkout.
#
# `run` works in a throw-away copy of the checkout, under a deadline (DEADLINE_S, default 420 s): every
# step runs under `timeout` with what is left, and a step that runs long never loses the others. OUT_DIR
# gets three files, rewritten as it goes: summary.txt (every figure, also printed), logs.tgz (each step's
# whole log) and results.tgz (the repro's dvc.lock, metrics and curves). It prints `dvc repro -f` of the
# default pipeline on the official MNIST with its per-stage split and wall time, the checkpoint hashes of
# two GPU runs of train@model1, the whole-step CUDA-graph rate of the CNN at batch 32/64/128 beside the
# project loop's (benchmarks/gpu_step.py; VARIANTS=1 adds the other layouts and precisions), adversarial
# training's step replayed as a CUDA graph against the same step run eagerly (rates, and whether both end
# with the same weights: benchmarks/adversarial_training_throughput.py), and stage start-up costs.
# Environment: DEADLINE_S; STEPS, the steps to run, in order (default "repro determinism gpu_step
# adversarial startup"); TARGETS, what `dvc repro -f` builds (default: the whole pipeline);
# SIZE_LIMIT_MIB. To keep each command under 10 minutes: `DEADLINE_S=570 STEPS="repro determinism"` gives
# the pipeline the most room (up to 480 s), then a second command `STEPS="gpu_step adversarial startup"`.
# STEPS=queue (not in the default) times the sweep one point after another against `dvc exp run --run-all
# --jobs JOBS` (default 4, each with cores / JOBS torch threads), QUEUE_EPOCHS epochs a point (default
# 5): benchmarks/sweep_queue.py.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# the packages carried (the closure of pyproject.toml's dependencies minus DEVICE_HAS), as locked
DEVICE_NAMES="aiohttp-retry amqp annotated-types antlr4-python3-runtime appdirs asyncssh atpublic billiard celery
cffi click-didyoumean click-plugins click-repl configobj cryptography dictdiffer diskcache distro dpath dulwich dvc
dvc-data dvc-http dvc-objects dvc-render dvc-studio-client dvc-task entrypoints flatten-dict flufl.lock funcy gitdb
GitPython grandalf gto hydra-core iterative-telemetry kombu mlxtend omegaconf orjson platformdirs prompt_toolkit
pycparser pydantic pydantic_core pydantic-settings pydot pygit2 pygtrie python-dotenv ruamel.yaml scmrepo semver
shortuuid shtab smmap sqltrie tomlkit torchattacks typing-inspection tzlocal vine vl-convert-python voluptuous
wcwidth zc.lockfile"
# the runtime dependencies the GPU machine's image has (its package list of 2026-11-17)
DEVICE_HAS="aiohttp attrs click colorama filelock fsspec joblib matplotlib networkx numpy packaging pandas pathspec
pillow psutil pyparsing python-dateutil pyyaml requests rich scikit-learn scipy setuptools tabulate torch
torchvision tqdm typing-extensions urllib3"
SIZE_LIMIT_MIB=${SIZE_LIMIT_MIB:-64}  # the most the checkout and .device may take together

prepare() {
    local mnist=${1:?usage: gpu_check.sh prepare MNIST_DIR}
    local wheels
    wheels=$(mktemp -d) || exit 1
    rm -rf .device && mkdir -p .device/mnist
    cp "$mnist"/*-ubyte.gz .device/mnist/ || exit 1
    for name in $DEVICE_NAMES; do
        local pin
        pin=$(grep -i "^$name==" requirements.lock) || { echo "gpu_check: $name is not in requirements.lock"; exit 2; }
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d "$wheels" "$pin" 2>/dev/null ||
            python3 -m pip wheel -q --no-deps -w "$wheels" "$pin" ||  # a pure-Python sdist (antlr4)
            { echo "gpu_check: no wheel of $pin for the GPU machine's Python 3.12"; exit 2; }
    done
    # each wheel rewritten with its members stored, not deflated, so that xz compresses the whole
    python3 - "$wheels" <<'PY' || exit 1
import sys, zipfile
from pathlib import Path
for wheel in Path(sys.argv[1]).glob("*.whl"):
    stored = wheel.with_suffix(".stored")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as dst:
        for member in src.infolist():
            content = src.read(member)
            member.compress_type = zipfile.ZIP_STORED
            dst.writestr(member, content)
    stored.replace(wheel)
PY
    tar cf - -C "$wheels" . | xz -6 -T0 >.device/wheels.tar.xz || exit 1
    rm -rf "$wheels"
    local total
    total=$(( ( $(git ls-files -z | xargs -0 cat | wc -c) + $(cat .device/*.tar.xz .device/mnist/* | wc -c) ) / 1048576 ))
    echo "gpu_check: .device holds $(ls .device/mnist | wc -l) MNIST files and $(tar tJf .device/wheels.tar.xz |
        grep -c '\.whl$') wheels; with the checkout, $total MiB (limit: SIZE_LIMIT_MIB=$SIZE_LIMIT_MIB)"
    (( total < SIZE_LIMIT_MIB )) || { echo "gpu_check: over SIZE_LIMIT_MIB ($SIZE_LIMIT_MIB MiB)"; exit 1; }
}

run() {
    local out=${1:?usage: gpu_check.sh run OUT_DIR}
    mkdir -p "$out" && out=$(cd "$out" && pwd)
    local deadline=$(( $(date +%s) + ${DEADLINE_S:-420} )) logs=/tmp/gpu_check_logs
    rm -rf "$logs" && mkdir -p "$logs"
    say() { echo "$*" | tee -a "$out/summary.txt"; }
    # step NAME SECONDS CMD...: CMD under the smaller of SECONDS and what the deadline leaves
    step() {
        local name=$1 limit=$2; shift 2
        local left=$(( deadline - $(date +%s) ))
        (( left < limit )) && limit=$left
        if (( limit < 5 )); then say "$name: skipped (deadline)"; return 1; fi
        local start=$(date +%s.%N)
        timeout "$limit" "$@" >>"$logs/$name.log" 2>&1
        local rc=$?
        say "$name: exit $rc in $(python3 -c "import time; print(f'{time.time() - $start:.1f}')") s (limit $limit s)"
        tar czf "$out/logs.tgz" -C "$logs" .
        return $rc
    }
    export DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
    local start=$(date +%s)
    {   # unpacked by Python's tarfile and lzma: the image may lack the xz program
        rm -rf /tmp/gpu_check_wheels && python3 -c "import sys, tarfile
tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')" .device/wheels.tar.xz /tmp/gpu_check_wheels &&
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            /tmp/gpu_check_wheels/*.whl
    } >"$logs/env.log" 2>&1
    say "wheels unpacked and installed in $(( $(date +%s) - start )) s"
    # dvc.yaml runs `python`: a wrapper of this python3 (a link would leave its venv), in a folder of its own
    local bin=/tmp/gpu_check_bin
    rm -rf "$bin" && mkdir -p "$bin" && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" >"$bin/python"
    chmod +x "$bin/python"
    export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$bin:$PATH
    # a file of its own: pip's warnings (running as root, say) come first in env.log
    { nvidia-smi -L; python -c "import torch, dvc, pydantic, torchattacks, vl_convert; print('torch', torch.__version__,
'dvc', dvc.__version__, 'pydantic', pydantic.__version__, 'cuda', torch.cuda.is_available())"; nproc; } >"$logs/device.log" 2>&1
    say "$(tr '\n' ' ' <"$logs/device.log")"

    local work=/tmp/gpu_check_work
    rm -rf "$work" && mkdir -p "$work" && cp -r "$ROOT"/. "$work"/ && cd "$work" || exit 1
    rm -rf .git .venv .dvc/cache .dvc/tmp models data/mnist logs
    { git init -q && git add -A && git -c user.name=check -c user.email=check@localhost commit -qm check; } \
        >/dev/null 2>&1 || python -m dvc config --local core.no_scm true

    for name in ${STEPS:-repro determinism gpu_step adversarial startup}; do "check_$name"; done
    tar czf "$out/logs.tgz" -C "$logs" .
    say "done; $(( deadline - $(date +%s) )) s of the deadline left"
}

check_startup() {
    say "== stage start-up (each: a fresh interpreter) =="
    step startup 90 python benchmarks/stage_startup.py --repeat 1 --stages check_params train attack robustness report
    grep -E "^  " "$logs/startup.log" | tee -a "$out/summary.txt"
}

check_gpu_step() {
    say "== one SGD step of the CNN: eager, CUDA graph, and the project loop =="
    step gpu_step 150 python benchmarks/gpu_step.py --epochs 2 ${VARIANTS:+--variants}
    grep -vE "^\s*$" "$logs/gpu_step.log" | tail -14 | tee -a "$out/summary.txt"
}

check_queue() {
    say "== the sweep on one GPU: sequential against dvc's queue, --jobs ${JOBS:-4} =="
    step queue 400 python benchmarks/sweep_queue.py --data .device/mnist --epochs "${QUEUE_EPOCHS:-5}" \
        --jobs "${JOBS:-4}"
    grep -E "sweep points|queued" "$logs/queue.log" | tee -a "$out/summary.txt"
}

check_adversarial() {
    say "== adversarial training's step: CUDA graph against eager, the same weights? =="
    step adversarial 120 python benchmarks/adversarial_training_throughput.py --device cuda --images 12000
    grep -E "images/s" "$logs/adversarial.log" | tee -a "$out/summary.txt"
}

check_repro() {
    step mnist 60 python -m stages.fetch_mnist --import .device/mnist
    say "== dvc repro -f ${TARGETS:-}: the default pipeline on the official MNIST =="
    local start=$(date +%s.%N)
    step repro 480 bash -c "set -o pipefail; python -m dvc repro -f ${TARGETS:-} 2>&1 |
        while IFS= read -r line; do printf '%s %s\n' \"\$(date +%s.%N)\" \"\$line\"; done"
    python benchmarks/stage_times.py "$logs/repro.log" --start "$start" | tee -a "$out/summary.txt"
    tar czf "$out/results.tgz" dvc.lock metrics plots/*/*.csv logs 2>/dev/null
}

check_determinism() {
    say "== determinism: train@model1 twice on this GPU =="
    [ -f data/mnist/train.pt ] || step mnist_data 60 bash -c \
        "python -m stages.fetch_mnist --import .device/mnist && python -m stages.fetch_mnist --out data/mnist"
    # the same file name every time: torch.save names the records inside a checkpoint after its file;
    # the repro's own models/model1.pt, when there is one, is the first run
    mkdir -p /tmp/run_a /tmp/run_b
    local first=models/model1.pt
    if [ ! -f "$first" ]; then
        first=/tmp/run_a/model1.pt
        step determinism_1 90 python -m stages.train model1 --data data/mnist --model "$first"
    fi
    step determinism_2 90 python -m stages.train model1 --data data/mnist --model /tmp/run_b/model1.pt
    grep -h "model1:" "$logs"/determinism_*.log | tee -a "$out/summary.txt"
    sha256sum "$first" /tmp/run_b/model1.pt | tee -a "$out/summary.txt"
}

case ${1:-} in
    prepare) shift; prepare "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash benchmarks/gpu_check.sh prepare MNIST_DIR | run OUT_DIR"; exit 2 ;;
esac
