#!/usr/bin/env bash
# Flickr8k captioning with one criterion: prepare (idempotent), train, generate
# the test captions (one per image), score them against all five references.
# Usage: fairseq_ot/recipes/captioning/run.sh RUN_DIR [CRITERION] [extra fairseq-train flags...]
# Environment: RAW (raw Flickr8k folder, default ../shared/data/flickr8k),
# DATA (prepared folder, default RUN_DIR/../flickr8k-data-bin),
# PREPARE_FLAGS (more flags of scripts/prepare_flickr8k.py), BEAM (default 3),
# SCORE_FLAGS (more flags of scripts/score_captions.py, e.g. --no-meteor),
# DEVICE (cpu, the default, or cuda: train and generate on the GPU), THREADS (default 1),
# SKIP_TRAIN (1: only generate and score RUN_DIR/checkpoints/checkpoint_best.pt,
# e.g. of a fairseq-ot-hydra-train run).
set -euo pipefail
# torch threads per fairseq process (THREADS, default 1: fastest measured on a shared 2-core machine)
export OMP_NUM_THREADS=${THREADS:-1}
plugin=$(cd "$(dirname "$0")/../.." && pwd)  # the fairseq_ot package, for --user-dir
run_dir=${1:?usage: run.sh RUN_DIR [CRITERION] [fairseq-train flags...]}
criterion=${2:-label_smoothed_cross_entropy}
shift $(( $# < 2 ? $# : 2 ))
raw=${RAW:-$plugin/../../shared/data/flickr8k}
data=${DATA:-$(dirname "$run_dir")/flickr8k-data-bin}
case ${DEVICE:-cpu} in
    cpu) device=(--cpu) ;;
    cuda) device=() ;;
    *) echo "run.sh: DEVICE must be cpu or cuda, not ${DEVICE}" >&2; exit 2 ;;
esac
case ${SKIP_TRAIN:-0} in
    0|1) ;;
    *) echo "run.sh: SKIP_TRAIN must be 0 or 1, not ${SKIP_TRAIN}" >&2; exit 2 ;;
esac
mkdir -p "$run_dir"

# shellcheck disable=SC2086  # PREPARE_FLAGS holds several words
python -m fairseq_ot.cli.prepare_flickr8k "$raw" --dest "$data" ${PREPARE_FLAGS:-}

if [[ ${SKIP_TRAIN:-0} != 1 ]]; then
    eval "recipe=($(python -m fairseq_ot.recipes captioning "$criterion"))"
    fairseq-train "$data" --user-dir "$plugin" "${device[@]}" "${recipe[@]}" \
        --no-epoch-checkpoints --save-dir "$run_dir/checkpoints" \
        --log-format json --log-file "$run_dir/train.log" "$@"
fi

task=$(python -m fairseq_ot.recipes captioning "$criterion" --task)
fairseq-generate "$data" --user-dir "$plugin" "${device[@]}" --task "$task" \
    --path "$run_dir/checkpoints/checkpoint_best.pt" --gen-subset test \
    --beam "${BEAM:-3}" --max-len-a 0 --max-len-b 40 --batch-size 64 \
    --required-batch-size-multiple 1 --post-process subword_nmt > "$run_dir/generate-test.txt"

# shellcheck disable=SC2086
python -m fairseq_ot.cli.score_captions "$run_dir/generate-test.txt" --data "$data" --split test \
    --run-dir "$run_dir" --recipe captioning --criterion "$criterion" ${SCORE_FLAGS:-}
