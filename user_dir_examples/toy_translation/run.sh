#!/usr/bin/env bash
# A criterion on the generated toy corpus with stock fairseq commands and --user-dir;
# the flags are the recipe's (train.args + criterion_CRITERION.args).
# Usage: user_dir_examples/toy_translation/run.sh [WORK_DIR] [CRITERION] [extra fairseq-train flags...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-toy_translation_work}
criterion=${2:-ot_seq}
shift $(( $# < 2 ? $# : 2 ))
mkdir -p "$work"

python -c "import sys; from fairseq_ot.toy_corpus import write_toy_corpus; write_toy_corpus(sys.argv[1])" "$work/raw"
[ -f "$work/data-bin/dict.src.txt" ] || fairseq-preprocess --source-lang src --target-lang tgt \
    --trainpref "$work/raw/train" --validpref "$work/raw/valid" --testpref "$work/raw/test" \
    --destdir "$work/data-bin" --joined-dictionary --workers 1

eval "recipe=($(python -m fairseq_ot.recipes toy_translation "$criterion"))"
fairseq-train "$work/data-bin" --user-dir "$repo/fairseq_ot" --cpu "${recipe[@]}" \
    --no-epoch-checkpoints --save-dir "$work/checkpoints_$criterion" \
    --log-format json --log-file "$work/train_$criterion.log" "$@"

task=$(python -m fairseq_ot.recipes toy_translation "$criterion" --task)
fairseq-generate "$work/data-bin" --user-dir "$repo/fairseq_ot" --cpu --task "$task" \
    --path "$work/checkpoints_$criterion/checkpoint_best.pt" --gen-subset test --beam 5 \
    --required-batch-size-multiple 1 --scoring sacrebleu | tee "$work/generate-test_$criterion.txt" | tail -1
