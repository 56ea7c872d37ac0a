"""The synthetic test's generator and mediator as fairseq-train flags, shared
by the Turing test (fairseq_ot/cli/synthetic_turing_test.py) and the
gamma-estimator study (fairseq_ot/analysis/gamma_estimator.py).

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
