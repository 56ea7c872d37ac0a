"""The synthetic test's generator and mediator as fairseq-train flags, shared
by the Turing test (fairseq_ot/cli/synthetic_turing_test.py) and the
gamma-estimator study (fairseq_ot/analysis/gamma_estimator.py)."""

GENERATOR_ARGS = [
    "--arch", "lstm_lm", "--decoder-embed-dim", "32", "--decoder-hidden-size", "32",
    "--decoder-out-embed-dim", "32", "--decoder-layers", "1", "--dropout", "0",
]
MEDIATOR_ARGS = [
    "--task", "mediator_language_modeling", "--mediator-arch", "lstm_lm",
    "--mediator-embed-dim", "64", "--mediator-hidden-dim", "64", "--mediator-dropout", "0.1",
    # 20 words and EOS: samples as long as the data
    "--cot-max-len-b", "21", "--ddp-backend", "legacy_ddp",
]
