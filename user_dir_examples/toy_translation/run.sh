#!/usr/bin/env bash
# ot_seq on the generated toy corpus with stock fairseq commands and --user-dir.
# Usage: user_dir_examples/toy_translation/run.sh [WORK_DIR] [extra fairseq-train flags...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-toy_translation_work}
shift || true
mkdir -p "$work"

python -c "import sys; from fairseq_ot.toy_corpus import write_toy_corpus; write_toy_corpus(sys.argv[1])" "$work/raw"
[ -f "$work/data-bin/dict.src.txt" ] || fairseq-preprocess --source-lang src --target-lang tgt \
    --trainpref "$work/raw/train" --validpref "$work/raw/valid" --testpref "$work/raw/test" \
    --destdir "$work/data-bin" --joined-dictionary --workers 1

fairseq-train "$work/data-bin" --user-dir "$repo/fairseq_ot" --cpu \
    --task translation --arch transformer --share-all-embeddings \
    --encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 64 --decoder-embed-dim 64 \
    --encoder-ffn-embed-dim 128 --decoder-ffn-embed-dim 128 \
    --encoder-attention-heads 4 --decoder-attention-heads 4 \
    --criterion ot_seq --label-smoothing 0.1 --ot-weight 0.1 --ot-warmup-updates 100 \
    --optimizer adam --adam-betas '(0.9, 0.98)' --lr 0.002 \
    --lr-scheduler inverse_sqrt --warmup-updates 100 \
    --max-tokens 2000 --max-update 400 --no-epoch-checkpoints \
    --save-dir "$work/checkpoints" --log-format json --log-file "$work/train.log" "$@"

fairseq-generate "$work/data-bin" --user-dir "$repo/fairseq_ot" --cpu \
    --path "$work/checkpoints/checkpoint_best.pt" --gen-subset test --beam 5 \
    --required-batch-size-multiple 1 --scoring sacrebleu | tee "$work/generate-test.txt" | tail -1
