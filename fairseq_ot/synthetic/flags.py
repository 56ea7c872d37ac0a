"""The synthetic test's generator, mediator and training as fairseq-train
flags, shared by the Turing test (fairseq_ot/synthetic/turing_test.py),
the gamma-estimator study (fairseq_ot/analysis/gamma_estimator.py) and the
update benchmark (fairseq_ot/benchmarks/lm_update.py).

Both are the plugin's `fused_lstm_lm`: lstm_lm's model (sizes, initialisation,
dropout) with one nn.LSTM call per forward instead of a Python loop of
LSTMCell steps. An MLE update of the generator costs 1.14x a plain PyTorch
loop's, against 1.24x with lstm_lm (scripts/bench_lm_update.py, README
"Benchmarks")."""

GENERATOR_ARGS = [
    "--arch", "fused_lstm_lm", "--decoder-embed-dim", "32", "--decoder-hidden-size", "32",
    "--decoder-out-embed-dim", "32", "--decoder-layers", "1", "--dropout", "0",
]
MEDIATOR_ARGS = [
    "--task", "mediator_language_modeling", "--mediator-arch", "fused_lstm_lm",
    "--mediator-embed-dim", "64", "--mediator-hidden-dim", "64", "--mediator-dropout", "0.1",
    # 20 words and EOS: samples as long as the data
    "--cot-max-len-b", "21", "--ddp-backend", "legacy_ddp",
]
TRAINING_ARGS = [
    "--sample-break-mode", "eos", "--tokens-per-sample", "32", "--batch-size", "64",
    "--optimizer", "adam", "--adam-betas", "(0.9, 0.95)", "--lr", "1e-3",
    "--keep-interval-updates", "-1", "--no-epoch-checkpoints", "--disable-validation",
    "--log-format", "json", "--log-interval", "50", "--seed", "1",
    # a data-loading process per run would compete for the same 2 cores
    "--num-workers", "0",
]
