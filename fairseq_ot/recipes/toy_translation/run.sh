#!/usr/bin/env bash
# A criterion on the generated toy corpus with stock fairseq commands and --user-dir;
# the flags are the recipe's (train.args + criterion_CRITERION.args).
# Usage: fairseq_ot/recipes/toy_translation/run.sh [WORK_DIR] [CRITERION] [extra fairseq-train flags...]
set -euo pipefail
# torch threads per fairseq process (THREADS, default 1: fastest measured on a shared 2-core machine)
export OMP_NUM_THREADS=${THREADS:-1}
plugin=$(cd "$(dirname "$0")/../.." && pwd)  # the fairseq_ot package, for --user-dir
work=${1:-toy_translation_work}
criterion=${2:-ot_seq}
shift $(( $# < 2 ? $# : 2 ))
mkdir -p "$work"

python -c "import sys; from fairseq_ot.toy_corpus import write_toy_corpus; write_toy_corpus(sys.argv[1])" "$work/raw"
[ -f "$work/data-bin/dict.src.txt" ] || fairseq-preprocess --source-lang src --target-lang tgt \
    --trainpref "$work/raw/train" --validpref "$work/raw/valid" --testpref "$work/raw/test" \
    --destdir "$work/data-bin" --joined-dictionary --workers 1

eval "recipe=($(python -m fairseq_ot.recipes toy_translation "$criterion"))"
fairseq-train "$work/data-bin" --user-dir "$plugin" --cpu "${recipe[@]}" \
    --no-epoch-checkpoints --save-dir "$work/checkpoints_$criterion" \
    --log-format json --log-file "$work/train_$criterion.log" "$@"

task=$(python -m fairseq_ot.recipes toy_translation "$criterion" --task)
fairseq-generate "$work/data-bin" --user-dir "$plugin" --cpu --task "$task" \
    --path "$work/checkpoints_$criterion/checkpoint_best.pt" --gen-subset test --beam 5 \
    --required-batch-size-multiple 1 --scoring sacrebleu | tee "$work/generate-test_$criterion.txt" | tail -1
