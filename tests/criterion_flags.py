"""Flags of every criterion (and mode) that the data-parallel, resumption and
mixed-precision tests train: small, with every random draw and schedule on."""

MEDIATOR = ["--task", "mediator_translation", "--ddp-backend", "legacy_ddp",
            "--mediator-embed-dim", "16", "--mediator-hidden-dim", "32", "--mediator-dropout", "0"]
CRITERIA = {
    "label_smoothed_cross_entropy": ["--criterion", "label_smoothed_cross_entropy",
                                     "--label-smoothing", "0.1"],
    # warm-ups that are still running when the resumed run starts
    "ot_seq": ["--criterion", "ot_seq", "--ot-weight", "0.5", "--ot-iters", "10",
               "--ot-warmup-updates", "3"],
    "ot_seq-copy": ["--criterion", "ot_seq", "--ot-weight", "0.5", "--ot-copy-weight", "0.3",
                    "--ot-iters", "10", "--ot-warmup-updates", "3"],
    "scheduled_sampling-two_pass": ["--criterion", "scheduled_sampling", "--ss-mode", "two_pass",
                                    "--ss-schedule", "linear", "--ss-k", "0.9", "--ss-c", "0.1"],
    "scheduled_sampling-stepwise": ["--criterion", "scheduled_sampling", "--ss-mode", "stepwise",
                                    "--ss-schedule", "linear", "--ss-k", "0.9", "--ss-c", "0.1"],
    "gjs-token": ["--criterion", "gjs", "--gjs-mode", "token", "--gjs-pi", "0.3",
                  "--label-smoothing", "0.1"],
    # --cot-mediator-steps 2: generator terms at even updates only, across the resume
    "gjs-mediator": ["--criterion", "gjs", "--gjs-mode", "mediator", "--gjs-pi", "0.3",
                     "--cot-mediator-steps", "2", *MEDIATOR],
    "cot": ["--criterion", "cot", "--cot-mediator-steps", "2", *MEDIATOR],
}
