#!/usr/bin/env bash
# The one-table comparison of the token-objectives issue as one command for a
# lent GPU machine (the `device` tool), within SECONDS: the translation
# recipe's MLE to update 2,000 on the GPU, then 400 updates under each
# objective from that checkpoint with its Adam moments and schedule
# (switch_criterion.py), MLE continued the same way being the control, three
# seeds (every objective's seed 1 first), and tailr, mixce and emo from
# scratch at the recipe's full budget, one seed; eight trainings at once.
#
#   bash scripts/gpu/common.sh PREPARED     # here, once
#   bash scripts/gpu/multi30k_from_mle.sh 540   # there, carry [".whl", ".gpu_carry"]
#
# then unpack $OUT/runs.tgz into results/multi30k_from_mle_gpu/.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/gpu/common.sh
start_device "${1:?usage: multi30k_from_mle.sh SECONDS}"

recipe_run translation "$P" mle label_smoothed_cross_entropy
START=$R/mle/checkpoints/checkpoint_last.pt
export START
[ -f "$R/mle/scores_test.json" ] || { echo "the MLE start did not finish"; pack_runs; exit 1; }

continued() {  # VARIANT SEED: 400 more updates from $START under the recipe's VARIANT
    local name=from_mle/$1_seed$2 registered
    registered=$(python3 -c "import sys; from fairseq_ot.recipes import registered_criterion as r; print(r('translation', sys.argv[1]))" "$1")
    mkdir -p "$R/from_mle"
    python3 scripts/switch_criterion.py "$START" "$R/$name/checkpoints/checkpoint_last.pt" "$registered" > /dev/null
    recipe_run translation "$P" "$name" "$1" --max-update 2400 --seed "$2" \
        --save-interval-updates 200 --keep-interval-updates 2 --log-interval 50
}
export -f continued

OBJECTIVES="label_smoothed_cross_entropy ot_seq ot_seq_copy ot_seq_gumbel ot_seq_logits
            scheduled_sampling_argmax scheduled_sampling_softmax gjs tailr mixce emo"
{
    for objective in $OBJECTIVES; do echo "continued $objective 1"; done
    for objective in tailr mixce emo; do echo "recipe_run translation $P scratch_$objective $objective"; done
    for seed in 2 3; do for objective in $OBJECTIVES; do echo "continued $objective $seed"; done; done
} | run_queue 8
pack_runs
