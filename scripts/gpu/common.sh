# Sourced by the scripts of scripts/gpu/ (one prepared command per GPU check, for
# a lent GPU machine that reaches no network): the device's Python packages,
# the prepared corpus at the path the CPU runs' scores name, a deadline that no
# run outlives, a queue of runs several at a time on the one GPU, and the
# results packed into $OUT.
#
# Once on this machine, before the first such run:
#   bash scripts/gpu/common.sh PREPARED [TEACHER.pt]
# writes .whl/ (wheels for the device's Python 3.12) and .gpu_carry/ (the
# prepared corpus without its tokenized text; the teacher rounded to float16,
# so that it all fits the device's 64 MiB transfer). Each run then carries
# [".whl", ".gpu_carry"].

CARRY=.gpu_carry
R=/tmp/runs

prepare_carry() {  # PREPARED [TEACHER.pt]
    local prepared=$1 teacher=${2:-}
    rm -rf "$CARRY/multi30k_en_de" .whl && mkdir -p "$CARRY/multi30k_en_de" .whl
    for name in prepared.json bpe.codes bpe data-bin references; do cp -r "$prepared/$name" "$CARRY/multi30k_en_de/"; done
    if [ -n "$teacher" ]; then
        python - "$teacher" "$CARRY/teacher_fp16.pt" <<'PY'
import sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
state["last_optimizer_state"] = None
halves = {}  # tied embeddings stay one tensor, saved once
def half(value):
    key = (value.data_ptr(), value.shape)
    return halves.setdefault(key, value.half()) if value.is_floating_point() else value
state["model"] = {k: half(v) for k, v in state["model"].items()}
torch.save(state, sys.argv[2])
PY
    fi
    local platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
    for wheel in fairseq-fixed==0.12.3.1 bitarray cffi pycparser hydra-core==1.3.2 omegaconf==2.3.0 \
                 sacremoses subword-nmt tensorboardX nltk; do
        python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            $platforms -d .whl "$wheel"
    done
    python -m pip download -q --no-deps -d "$CARRY" antlr4-python3-runtime==4.9.3
    python -m pip wheel -q --no-deps --no-build-isolation "$CARRY"/antlr4-python3-runtime-4.9.3.tar.gz -w .whl
    rm "$CARRY"/antlr4-python3-runtime-4.9.3.tar.gz
    du -sh .whl "$CARRY"
}

start_device() {  # SECONDS: the deadline, the packages, the corpus at /work/prepared/multi30k_en_de
    deadline=$(($(date +%s) + $1))
    : "${OUT:?the device tool sets OUT}"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 deadline R
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
    python3 -c "import torch, fairseq; print('torch', torch.__version__, 'fairseq', fairseq.__version__)" \
        | tee -a "$OUT/device.txt"
    P=/work/prepared/multi30k_en_de
    mkdir -p /work/prepared "$R" && cp -r "$CARRY/multi30k_en_de" "$P"
    export P
}

left() { echo $((deadline - $(date +%s))); }

restore_teacher() {  # the float16 teacher of the carry, back in float32, at $T
    T=/tmp/teacher.pt
    python3 - "$CARRY/teacher_fp16.pt" "$T" <<'PY'
import sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
state["model"] = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
torch.save(state, sys.argv[2])
PY
    export T
}

recipe_run() {  # RECIPE DATA NAME CRITERION [fairseq-train flags]: one scored run in $R/NAME, or "cut"
    local recipe=$1 data=$2 name=$3 criterion=$4 seconds
    shift 4
    seconds=$(left)
    [ "$seconds" -gt 60 ] || { echo "cut (no time left): $name"; return 0; }
    timeout "$seconds" python3 scripts/run_text_recipe.py --device cuda "$recipe" "$data" "$R/$name" "$criterion" \
        -- "$@" > "$R/$name.out" 2>&1 && echo "done $name, $(left) s left" || echo "cut or failed (exit $?): $name"
}
export -f left recipe_run

run_queue() {  # PARALLEL: one job a line on stdin, a function exported with export -f and its arguments
    xargs -P "$1" -L 1 bash -c '"$@"' _
}

pack_runs() {  # every run's logs, generations and scores (no checkpoints) as $OUT/runs.tgz
    tar czf "$OUT/runs.tgz" -C "$R" --exclude checkpoints --exclude '*.pt' .
    ls "$R"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    cd "$(dirname "$0")/../.."
    prepare_carry "$@"
fi
