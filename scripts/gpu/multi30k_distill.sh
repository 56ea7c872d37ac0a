#!/usr/bin/env bash
# The GPU checks of the distillation issue as one command for a lent GPU
# machine (the `device` tool), within SECONDS:
#   1. distill, distill on-policy, cot (teacher-sized mediator) and ot_seq
#      steps against the student's MLE step on CUDA, float32 and autocast
#      float16 / bfloat16: time and peak memory (bench_criterions.py);
#   2. the Multi30k student runs with three seeds, eight trainings at once on
#      the GPU, every method's seed 1 first; a run unfinished at the deadline
#      is reported as cut, never half-scored.
#
#   bash scripts/gpu/common.sh PREPARED TEACHER.pt     # here, once
#   bash scripts/gpu/multi30k_distill.sh 540           # there, carry [".whl", ".gpu_carry"]
#
# then unpack $OUT/runs.tgz into results/multi30k_distill_gpu/. The teacher
# there is the carried one restored to float32 from its float16 rounding.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/gpu/common.sh
start_device "${1:?usage: multi30k_distill.sh SECONDS}"
restore_teacher
S=/work/prepared/multi30k_en_de_seqkd_gpu
export S

for dtype in float32 float16 bfloat16; do
    timeout "$(left)" python3 scripts/bench_criterions.py --device cuda --dtype $dtype \
        --data "$P/data-bin" --layers 2 --dim 128 --teacher-layers 3 --teacher-dim 256 --mediator teacher \
        --criteria distill distill:on_policy cot ot_seq --sample-length reference --ipot-repeats 0 --rounds 3 \
        --json "$OUT/bench_distill_bucketed_cuda_$dtype.json" 2>&1 | grep -v Warning | tail -12
done

(timeout "$(left)" python3 scripts/build_seqkd.py "$P" "$T" "$S" --cuda --batch-size 256 \
    > "$R/build_seqkd.log" 2>&1 || echo "build_seqkd: exit $?" >> "$R/build_seqkd.log") &

student() {  # CRITERION NAME SEED
    local data=$P teacher=()
    if [ "$1" = label_smoothed_cross_entropy_seqkd ]; then
        while [ ! -f "$S/prepared.json" ] && [ "$(left)" -gt 0 ]; do sleep 5; done
        data=$S
    fi
    case $1 in distill*) teacher=(--teacher-path "$T");; esac
    recipe_run translation_student "$data" "$2" "$1" "${teacher[@]}" --seed "$3"
}
export -f student

METHODS="label_smoothed_cross_entropy:mle distill_word:word distill_onpolicy_beta05:onpolicy_beta05
         label_smoothed_cross_entropy_seqkd:seqkd distill_topk8:topk8 distill_word_alpha:word_alpha
         distill_onpolicy_beta01:onpolicy_beta01 distill_onpolicy_beta09:onpolicy_beta09 distill_mixture:mixture"
for seed in 1 2 3; do
    for method in $METHODS; do echo "student ${method%%:*} ${method##*:}_seed$seed $seed"; done
done | run_queue 8
wait
pack_runs
