#!/usr/bin/env bash
# The GPU checks of the distillation issue, as one command for a lent GPU
# machine (the `device` tool's run; see docs/distill.md):
#   1. distill, distill on-policy, cot (teacher-sized mediator) and ot_seq
#      steps against the student's MLE step on CUDA, float32 and autocast
#      float16 / bfloat16: time and peak memory (bench_criterions.py);
#   2. the Multi30k student runs with three seeds, several trainings at once
#      on the one GPU, in the order of METHODS, until the deadline; a run not
#      finished by then is reported as cut, never half-scored.
#
# On this machine, first (once; the wheels are for the device's Python 3.12,
# the teacher rounded to float16 so that everything fits the 64 MiB transfer):
#   bash scripts/gpu/multi30k_distill.sh --prepare PREPARED TEACHER.pt
# then, with carry [".whl", ".gpu_carry"]:
#   bash scripts/gpu/multi30k_distill.sh SECONDS
# and unpack $OUT/runs.tgz into results/multi30k_distill_gpu/.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=.gpu_carry

if [ "${1:-}" = --prepare ]; then
    prepared=$2 teacher=$3
    mkdir -p "$CARRY" .whl
    rm -rf "$CARRY/multi30k_en_de" && mkdir "$CARRY/multi30k_en_de"
    # the tokenized text is only the source of the BPE files: not needed there
    for name in prepared.json bpe.codes bpe data-bin references; do cp -r "$prepared/$name" "$CARRY/multi30k_en_de/"; done
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
    platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
    for wheel in fairseq-fixed==0.12.3.1 bitarray cffi pycparser hydra-core==1.3.2 omegaconf==2.3.0 \
                 sacremoses subword-nmt tensorboardX nltk; do
        python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            $platforms -d .whl "$wheel"
    done
    python -m pip download -q --no-deps -d "$CARRY" antlr4-python3-runtime==4.9.3
    python -m pip wheel -q --no-deps --no-build-isolation "$CARRY"/antlr4-python3-runtime-4.9.3.tar.gz -w .whl
    rm "$CARRY"/antlr4-python3-runtime-4.9.3.tar.gz
    du -sh .whl "$CARRY"
    exit 0
fi

budget=${1:?usage: multi30k_distill.sh SECONDS (or --prepare PREPARED TEACHER.pt)}
deadline=$(($(date +%s) + budget))
left() { echo $((deadline - $(date +%s))); }
OUT=${OUT:?the device tool sets OUT}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch, fairseq; print('torch', torch.__version__, 'fairseq', fairseq.__version__)" | tee -a "$OUT/device.txt"

# the paths the CPU runs' scores name, so that collect_results finds the references here and there
P=/work/prepared/multi30k_en_de S=/work/prepared/multi30k_en_de_seqkd_gpu T=/tmp/teacher.pt R=/tmp/runs
mkdir -p /work/prepared "$R" && cp -r "$CARRY/multi30k_en_de" "$P"
python3 - "$CARRY/teacher_fp16.pt" "$T" <<'PY'
import sys, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
state["model"] = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
torch.save(state, sys.argv[2])
PY

for dtype in float32 float16 bfloat16; do
    timeout "$(left)" python3 scripts/bench_criterions.py --device cuda --dtype $dtype \
        --data "$P/data-bin" --layers 2 --dim 128 --teacher-layers 3 --teacher-dim 256 --mediator teacher \
        --criteria distill distill:on_policy cot ot_seq --sample-length reference --ipot-repeats 0 --rounds 3 \
        --json "$OUT/bench_distill_bucketed_cuda_$dtype.json" 2>&1 | grep -v Warning | tail -12
done

# most informative first: every method's seed 1, then seeds 2 and 3
METHODS="label_smoothed_cross_entropy:mle distill_word:word distill_onpolicy_beta05:onpolicy_beta05
         label_smoothed_cross_entropy_seqkd:seqkd distill_topk8:topk8 distill_word_alpha:word_alpha
         distill_onpolicy_beta01:onpolicy_beta01 distill_onpolicy_beta09:onpolicy_beta09 distill_mixture:mixture"
jobs=()
for seed in 1 2 3; do
    for method in $METHODS; do
        jobs+=("${method%%:*} ${method##*:}_seed$seed $seed")
    done
done
(timeout "$(left)" python3 scripts/build_seqkd.py "$P" "$T" "$S" --cuda --batch-size 256 \
    > "$R/build_seqkd.log" 2>&1 || echo "build_seqkd: exit $?" >> "$R/build_seqkd.log") &
run_one() {  # criterion name seed
    local data=$P
    if [ "$1" = label_smoothed_cross_entropy_seqkd ]; then
        while [ ! -f "$S/prepared.json" ] && [ "$(left)" -gt 0 ]; do sleep 5; done
        data=$S
    fi
    local seconds; seconds=$(left)
    [ "$seconds" -gt 60 ] || { echo "cut (no time left): $2"; return; }
    local teacher=()
    case $1 in distill*) teacher=(--teacher-path "$T");; esac
    timeout "$seconds" python3 scripts/run_text_recipe.py --device cuda translation_student "$data" "$R/$2" "$1" \
        -- "${teacher[@]}" --seed "$3" > "$R/$2.out" 2>&1 && echo "done $2, $(left) s left" \
        || echo "cut or failed (exit $?): $2"
}
export -f run_one left
export P S T R deadline
printf '%s\n' "${jobs[@]}" | xargs -P 8 -L 1 bash -c 'run_one $0 $1 $2'
wait
tar czf "$OUT/runs.tgz" -C "$R" --exclude checkpoints --exclude '*.pt' .
ls "$R"
