"""Flags of every criterion (and mode) that the data-parallel, resumption and
mixed-precision tests train: small, with every random draw and schedule on."""

from conftest import TINY_TRANSFORMER, USER_DIR

MEDIATOR = ["--task", "mediator_translation", "--ddp-backend", "legacy_ddp",
            "--mediator-embed-dim", "16", "--mediator-hidden-dim", "32", "--mediator-dropout", "0"]
# --criterion distill's --teacher-path: a checkpoint over the same data that the
# tests' fixtures train first (teacher_args) and put in its place (with_teacher)
TEACHER = "{teacher}"
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
    # word level, with the NLL term and a temperature
    "distill-word_level": ["--criterion", "distill", "--teacher-path", TEACHER, "--distill-alpha", "0.5",
                           "--label-smoothing", "0.1", "--distill-temperature", "2"],
    # half the sentences on the student's samples (drawn per sentence), top-k teacher
    "distill-on_policy": ["--criterion", "distill", "--teacher-path", TEACHER, "--distill-beta", "0.5",
                          "--distill-on-policy", "0.5", "--distill-topk", "10",
                          "--distill-max-len-b", "5"],
}


def with_teacher(flags, teacher):
    """`flags` with the TEACHER placeholder replaced by the checkpoint `teacher`."""
    return [str(teacher) if flag == TEACHER else flag for flag in flags]


def teacher_args(data_bin, save_dir, updates=20):
    """fairseq-train arguments of a tiny teacher for --criterion distill:
    TINY_TRANSFORMER, label-smoothed MLE, its checkpoint_last.pt in save_dir."""
    return [data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation", *TINY_TRANSFORMER,
            "--dropout", "0", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--optimizer", "adam", "--lr", "0.005", "--max-tokens", "300", "--max-update", str(updates),
            "--num-workers", "0", "--disable-validation", "--no-epoch-checkpoints", "--save-dir", save_dir,
            "--seed", "1"]
