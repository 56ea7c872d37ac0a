"""Bad input to the plugin: every numeric flag of every criterion (and of the
mediator tasks) out of range, flag combinations that cannot work, and
degenerate sentences. Each gives a one-line FlagError naming the flag, or a
finite loss with finite gradients and logged metrics; the command lines
print a FlagError as one line, never a traceback. That the losses at the
extreme settings accepted are also right: test_extreme_settings.py."""

import dataclasses
import math
import os
import shutil

import pytest
import torch
from fairseq import metrics, options, tasks
from fairseq.criterions import CRITERION_DATACLASS_REGISTRY, CRITERION_REGISTRY
from fairseq.tasks import TASK_DATACLASS_REGISTRY, TASK_REGISTRY
from fairseq.data.language_pair_dataset import collate

from captioning_data import write_raw_flickr
from conftest import TINY_TRANSFORMER, USER_DIR, free_port, load_script, run_cli
from criterion_flags import CRITERIA, TEACHER, teacher_args, with_teacher
from fairseq_ot.criterions.mediator_objective import check_wrapped_model
from fairseq_ot.checkpoints import lock
from fairseq_ot.errors import FlagError

def build(data_bin, *args, task="translation", arch=TINY_TRANSFORMER):
    """Task, tiny transformer and criterion from fairseq-train flags through
    fairseq's argparse namespace: conftest's `build` also composes the hydra
    config, seconds per call where this takes 50 ms, and the range checks
    under test see the same values either way."""
    parser = options.get_training_parser()
    parsed = options.parse_args_and_arch(parser, [
        str(data_bin), "--user-dir", USER_DIR, "--task", task, "--cpu",
        *arch, "--dropout", "0", *args,
    ])
    task = tasks.setup_task(parsed)
    torch.manual_seed(3)
    model = task.build_model(parsed)
    return task, model, task.build_criterion(parsed)


MEDIATOR = ["--mediator-embed-dim", "16", "--mediator-hidden-dim", "16", "--mediator-dropout", "0"]

# How each plugin criterion is built in these tests: its flags and its task.
CONTEXTS = {
    "ot_seq": (["--criterion", "ot_seq"], "translation"),
    "scheduled_sampling": (["--criterion", "scheduled_sampling"], "translation"),
    "gjs": (["--criterion", "gjs", "--gjs-mode", "mediator", *MEDIATOR], "mediator_translation"),
    "cot": (["--criterion", "cot", *MEDIATOR], "mediator_translation"),
    "distill": (["--criterion", "distill", "--teacher-path", TEACHER], "translation"),
    "tailr": (["--criterion", "tailr"], "translation"),
    "mixce": (["--criterion", "mixce"], "translation"),
    "emo": (["--criterion", "emo"], "translation"),
}

# The criterion context whose build reaches each plugin task's own flags
# (both mediator tasks check theirs in one function, mediator_model_args).
TASK_CONTEXTS = {"mediator_translation": "cot", "mediator_language_modeling": "cot",
                 "captioning": "captioning", "mediator_captioning": "captioning"}
# Tasks whose flags need data of their own: the flags and arch they are built with.
TASK_ONLY_CONTEXTS = {
    "captioning": (["--criterion", "cross_entropy"], "captioning",
                   ["--arch", "captioning_transformer", "--decoder-layers", "1",
                    "--decoder-embed-dim", "16", "--decoder-ffn-embed-dim", "16",
                    "--decoder-attention-heads", "2"]),
}

# Out-of-range values of every numeric or free-text flag, by config field.
BAD_VALUES = {
    "label_smoothing": ["-0.1", "1"],
    "ignore_prefix_size": ["-1"],
    "ot_weight": ["-0.1", "inf", "nan"],
    "ot_copy_weight": ["-1", "inf"],
    "ot_beta": ["0", "0.001", "-1"],
    "ot_iters": ["0"],
    "ot_inner_iters": ["0"],
    "ot_temperature": ["0", "-1"],
    "ot_warmup_updates": ["-5"],
    "ss_k": ["0.5", "-1"],  # the default schedule, inverse_sigmoid, needs k >= 1
    "ss_c": ["-0.1", "nan", "inf"],
    "ss_min": ["-0.1", "1.5"],
    "ss_warmup_updates": ["-1"],
    "ss_topk": ["0", "65"],  # toy_data_bin's target vocabulary: 64
    "ss_mix_temperature": ["0", "-1", "nan"],
    "gjs_pi": ["0", "1", "nan", "1e-12"],  # built in mediator mode: pi >= 1e-9
    "cot_max_len_a": ["-1", "inf"],
    "cot_max_len_b": ["-1"],
    "cot_samples_per_source": ["0"],
    "cot_mediator_steps": ["0"],
    "cot_mediator_warmup_updates": ["-1"],
    "cot_gamma": ["-0.1", "1.5", "nan"],
    "mediator_arch": ["no_such_arch"],
    "mediator_embed_dim": ["0"],
    "mediator_hidden_dim": ["0"],
    "mediator_layers": ["0"],
    "mediator_dropout": ["1", "-0.1"],
    "mediator_overrides": ["{not json", "[1]"],
    "mediator_init": ["generator"],  # needs --finetune-from-model
    "caption_features": ["/no/such/features.npz"],
    "caption_max_tokens": ["0"],
    "teacher_path": ["/no/such/teacher.pt"],
    "teacher_sha256": ["0" * 64],
    "distill_beta": ["-0.1", "1.5", "1e-30", "nan"],  # 0 < beta < MIN_DISTILL_BETA: refused
    "distill_on_policy": ["-0.1", "1.5", "nan"],
    "distill_alpha": ["-1", "inf"],
    "distill_temperature": ["0", "-1", "inf", "nan"],
    "distill_topk": ["-1", "65"],  # toy_data_bin's target vocabulary: 64
    "distill_max_len_a": ["-1", "inf"],
    "distill_max_len_b": ["-1"],
    "density_ratio_threshold": ["-0.1", "1.5", "nan"],
    "density_min_weight": ["-0.1", "1.5", "nan"],
    "mixce_eta": ["-0.1", "1.5", "nan"],
}
# The flag a value's error names first, where it is not the value's own: the
# SHA-256 check names the file (--teacher-path PATH: SHA-256 ..., not the
# --teacher-sha256 ...).
NAMED_FIRST = {"teacher_sha256": "--teacher-path"}


def plugin_components(registry):
    return sorted(name for name, cls in registry.items() if cls.__module__.startswith("fairseq_ot."))


def flag_fields(config_class, own_only=False):
    """(field, kind) of the fields a user sets by a flag; kind is 'choice',
    'bool' or 'value'. Interpolated fields (sentence_avg) are fairseq's own;
    with `own_only`, so are those of fairseq's config classes it extends."""
    inherited = set()
    if own_only:
        inherited = {field.name for base in config_class.__mro__[1:]
                     if dataclasses.is_dataclass(base) and not base.__module__.startswith("fairseq_ot.")
                     for field in dataclasses.fields(base)}
    for field in dataclasses.fields(config_class):
        if (field.name in ("_name", "data") or str(field.default).startswith("${")
                or field.name in inherited):  # data: fairseq's positional DATA
            continue
        if field.type is bool:
            yield field.name, "bool"
        elif hasattr(field.type, "__members__"):  # fairseq's ChoiceEnum
            yield field.name, "choice"
        else:
            yield field.name, "value"


def flag(field):
    return "--" + field.replace("_", "-")


CRITERION_FIELDS = [(criterion, field, kind) for criterion in plugin_components(CRITERION_REGISTRY)
                    for field, kind in flag_fields(CRITERION_DATACLASS_REGISTRY[criterion])]
# The mediator flags of every mediator task are checked by one function
# (mediator_model_args), reached through the cot context.
TASK_FIELDS = sorted({(TASK_CONTEXTS.get(task), field, kind)
                      for task in plugin_components(TASK_REGISTRY)
                      for field, kind in flag_fields(TASK_DATACLASS_REGISTRY[task], own_only=True)
                      if TASK_CONTEXTS.get(task) == "cot" or not field.startswith("mediator_")},
                     key=str)
VALUE_CASES = [(criterion, field, value) for criterion, field, kind in CRITERION_FIELDS + TASK_FIELDS
               if kind == "value" for value in BAD_VALUES.get(field, [])]


def test_every_value_flag_has_out_of_range_cases():
    """A new criterion or flag fails here until its range is checked below."""
    assert set(plugin_components(CRITERION_REGISTRY)) == set(CONTEXTS)
    assert set(plugin_components(TASK_REGISTRY)) == set(TASK_CONTEXTS)
    value_fields = {field for _, field, kind in CRITERION_FIELDS + TASK_FIELDS if kind == "value"}
    assert value_fields == set(BAD_VALUES)


@pytest.fixture(scope="module")
def teacher(toy_data_bin, tmp_path_factory):
    """A teacher checkpoint for --criterion distill (one update)."""
    save_dir = tmp_path_factory.mktemp("teacher")
    run_cli("fairseq-train", *teacher_args(toy_data_bin, save_dir, updates=1))
    return save_dir / "checkpoint_last.pt"


def with_fixture_teacher(request, args):
    """`args` with the TEACHER placeholder replaced by the teacher fixture's
    checkpoint (trained only when some flags need it)."""
    return with_teacher(args, request.getfixturevalue("teacher")) if TEACHER in args else args


@pytest.fixture(scope="module")
def caption_data_bin(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw_flickr")
    write_raw_flickr(raw, n_images=(8, 4, 4))
    dest = tmp_path_factory.mktemp("caption") / "data-bin"
    load_script("prepare_flickr8k").main([str(raw), "--dest", str(dest), "--bpe-merges", "20",
                                          "--features", str(raw / "features.npz")])
    return dest


@pytest.mark.parametrize("criterion,field,value", VALUE_CASES)
def test_out_of_range_flag_is_a_one_line_error_naming_it(request, toy_data_bin, criterion, field,
                                                         value):
    if criterion in TASK_ONLY_CONTEXTS:
        args, task, arch = TASK_ONLY_CONTEXTS[criterion]
        data_bin = request.getfixturevalue("caption_data_bin")
    else:
        (args, task), arch, data_bin = CONTEXTS[criterion], TINY_TRANSFORMER, toy_data_bin
    args = with_fixture_teacher(request, args)
    with pytest.raises(FlagError) as error:
        build(data_bin, *args, flag(field), value, task=task, arch=arch)
    message = str(error.value)
    assert message.startswith(NAMED_FIRST.get(field, flag(field)) + " ") and "\n" not in message
    assert flag(field) in message


@pytest.mark.parametrize("criterion,field", [(c, f) for c, f, kind in CRITERION_FIELDS
                                             if kind == "choice"])
def test_unknown_choice_is_an_argparse_error_naming_the_flag(toy_data_bin, capsys, criterion, field):
    args, task = CONTEXTS[criterion]
    with pytest.raises(SystemExit) as exit_:
        build(toy_data_bin, *args, flag(field), "no_such_choice", task=task)
    assert exit_.value.code == 2
    assert f"argument {flag(field)}: invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--criterion", "cot"], "--criterion cot needs a generator and a mediator"),
    (["--criterion", "gjs", "--gjs-mode", "mediator"], "--gjs-mode mediator needs a generator"),
])
def test_mediator_criterions_without_a_mediator_task(toy_data_bin, batch, args, message):
    """The criterion checks the model it is given (it imports no task) and
    names every mediator task, as the task registry knows them."""
    _, model, criterion = build(toy_data_bin, *args)
    with pytest.raises(FlagError, match=message) as error:
        criterion(model, batch)
    assert all(name in str(error.value) for name in
               ("mediator_translation", "mediator_language_modeling", "mediator_captioning"))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("mode,flag,value", [
    ("token", "--cot-max-len-b", "5"), ("token", "--cot-samples-per-source", "2"),
    ("mediator", "--label-smoothing", "0.1"),
])
def test_gjs_refuses_the_flags_of_its_other_mode(toy_data_bin, mode, flag, value):
    task = "mediator_translation" if mode == "mediator" else "translation"
    other = "token" if mode == "mediator" else "mediator"
    with pytest.raises(FlagError, match=f"^{flag} applies to --gjs-mode {other} only, not {mode}$"):
        build(toy_data_bin, "--criterion", "gjs", "--gjs-mode", mode, flag, value, task=task)


def test_gjs_modes_build_their_own_criteria(toy_data_bin):
    """--gjs-mode picks one of two criterion classes at build time; the token
    one takes no --cot-* setting."""
    _, _, token = build(toy_data_bin, "--criterion", "gjs")
    _, _, mediator = build(toy_data_bin, "--criterion", "gjs", "--gjs-mode", "mediator",
                           task="mediator_translation")
    assert type(token).__name__ == "GJSCriterion" and type(mediator).__name__ == "MediatorGJSCriterion"
    assert not any(name.startswith(("max_len", "samples_per", "mediator_steps")) for name in vars(token))
    assert mediator.pi == token.pi == 0.5


def test_cot_refuses_pytorch_ddp(toy_data_bin, tmp_path):
    _, model, _ = build(toy_data_bin, *CONTEXTS["cot"][0], task="mediator_translation")
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        with pytest.raises(FlagError, match="--ddp-backend pytorch_ddp .* use --ddp-backend legacy_ddp"):
            check_wrapped_model(wrapped, "--criterion cot")
        check_wrapped_model(model, "--criterion cot")  # unwrapped (one process, legacy_ddp): accepted
    finally:
        torch.distributed.destroy_process_group()


def pair_batch(dictionary, pairs):
    """A collated translation batch of (source words, target words) pairs,
    words given as indices past the special symbols."""
    first_word = dictionary.nspecial
    samples = [{
        "id": i,
        "source": torch.tensor([first_word + w for w in source] + [dictionary.eos()]),
        "target": torch.tensor([first_word + w for w in target] + [dictionary.eos()]),
    } for i, (source, target) in enumerate(pairs)]
    return collate(samples, dictionary.pad(), dictionary.eos(), input_feeding=True)


DEGENERATE_BATCHES = {
    "empty targets": [([0, 1, 2], []), ([3], [])],
    "length-1 sources and targets": [([0], [1]), ([2], [3])],
    "empty sources": [([], [0, 1]), ([], [])],
    "mixed lengths": [([0, 1, 2, 3, 4], []), ([5], [6]), ([], [7, 8, 9])],
}

# Every criterion and mode, at ordinary and at extreme valid flag values;
# scheduled sampling with eps = 0 so that every input is a model prediction.
SETTINGS = {
    "ot_seq": ["--criterion", "ot_seq", "--ot-weight", "1", "--ot-copy-weight", "1",
               "--label-smoothing", "0.1"],
    "ot_seq sinkhorn unrolled": ["--criterion", "ot_seq", "--ot-weight", "1",
                                 "--ot-solver", "sinkhorn", "--ot-gradient", "unrolled"],
    "ot_seq smallest beta": ["--criterion", "ot_seq", "--ot-weight", "1", "--ot-beta", "0.04",
                             "--ot-gradient", "unrolled"],
    "ot_seq huge beta": ["--criterion", "ot_seq", "--ot-weight", "1", "--ot-beta", "1e9"],
    "ot_seq tiny temperature": ["--criterion", "ot_seq", "--ot-weight", "1",
                                "--ot-temperature", "1e-6"],
    "ot_seq huge temperature": ["--criterion", "ot_seq", "--ot-weight", "1",
                                "--ot-temperature", "1e9"],
    "scheduled_sampling two_pass": ["--criterion", "scheduled_sampling", "--ss-schedule", "constant",
                                    "--ss-k", "0", "--label-smoothing", "0.1"],
    "scheduled_sampling stepwise": ["--criterion", "scheduled_sampling", "--ss-mode", "stepwise",
                                    "--ss-schedule", "constant", "--ss-k", "0",
                                    "--ss-prediction", "argmax"],
    "gjs token": ["--criterion", "gjs", "--label-smoothing", "0.1"],
    "gjs token pi near 0": ["--criterion", "gjs", "--gjs-pi", "1e-7"],
    "gjs token pi near 1": ["--criterion", "gjs", "--gjs-pi", "0.9999999", "--label-smoothing", "0.999"],
    "gjs mediator": ["--criterion", "gjs", "--gjs-mode", "mediator", "--gjs-pi", "0.3", *MEDIATOR],
    "cot": ["--criterion", "cot", "--cot-samples-per-source", "2", *MEDIATOR],
    "cot length limit 1": ["--criterion", "cot", "--cot-max-len-a", "0", "--cot-max-len-b", "1",
                           *MEDIATOR],
    "distill": ["--criterion", "distill", "--teacher-path", TEACHER, "--distill-alpha", "0.5",
                "--label-smoothing", "0.1"],
    "distill on-policy top-k": ["--criterion", "distill", "--teacher-path", TEACHER, "--distill-beta", "0.5",
                                "--distill-on-policy", "1", "--distill-topk", "5",
                                "--distill-temperature", "0.5"],
    "distill smallest beta": ["--criterion", "distill", "--teacher-path", TEACHER, "--distill-beta", "1e-25",
                              "--distill-on-policy", "0.5", "--distill-temperature", "100"],
    "distill reverse KL length limit 1": ["--criterion", "distill", "--teacher-path", TEACHER,
                                          "--distill-beta", "1", "--distill-on-policy", "1",
                                          "--distill-max-len-a", "0", "--distill-max-len-b", "1"],
    "tailr": ["--criterion", "tailr"],
    "tailr gamma 1 no floor": ["--criterion", "tailr", "--density-ratio-threshold", "1",
                               "--density-min-weight", "0", "--label-smoothing", "0"],
    "mixce eta 0": ["--criterion", "mixce", "--mixce-eta", "0"],
    "emo": ["--criterion", "emo"],
}


@pytest.mark.parametrize("setting", SETTINGS)
def test_degenerate_sentences_give_finite_losses_gradients_and_metrics(request, toy_data_bin, setting):
    args = with_fixture_teacher(request, SETTINGS[setting])
    task_name = "mediator_translation" if "--mediator-embed-dim" in args else "translation"
    task, model, criterion = build(toy_data_bin, *args, task=task_name)
    model.train()
    for name, pairs in DEGENERATE_BATCHES.items():
        model.zero_grad()
        loss, sample_size, log = criterion(model, pair_batch(task.target_dictionary, pairs))
        assert torch.isfinite(loss), (name, loss)
        loss.backward()
        for parameter_name, parameter in model.named_parameters():
            if parameter.grad is not None:
                assert torch.isfinite(parameter.grad).all(), (name, parameter_name)
        with metrics.aggregate(new_root=True) as logged:
            type(criterion).reduce_metrics([log])
        values = logged.get_smoothed_values()
        assert values and all(math.isfinite(v) for v in values.values()), (name, values)


def train_command(data_bin, save_dir, *args):
    return [
        "fairseq-train", data_bin, "--user-dir", USER_DIR, "--cpu", "--optimizer", "adam",
        "--lr", "0.001", "--max-tokens", "500", "--max-update", "2", "--save-dir", save_dir,
        "--encoder-layers", "1", "--decoder-layers", "1", *args,
    ]


@pytest.mark.parametrize("args,error", [
    # raised when the criterion is built
    ([*TINY_TRANSFORMER, "--criterion", "ot_seq", "--ot-beta", "0.001"],
     "--ot-beta must be >= 0.04, got 0.001"),
    # raised when the mediator task builds its model
    ([*TINY_TRANSFORMER, "--task", "mediator_translation", "--criterion", "cot",
      "--mediator-dropout", "1"], "--mediator-dropout must be in [0, 1), got 1.0"),
    # raised inside the training loop, at the first forward
    (["--arch", "transformer", "--encoder-embed-dim", "32", "--decoder-embed-dim", "16",
      "--criterion", "ot_seq", "--ot-copy-weight", "1"],
     "--ot-copy-weight needs encoder and decoder embeddings of one size, got 32 and 16"),
], ids=["criterion", "task", "forward"])
def test_fairseq_train_prints_flag_errors_as_one_line(toy_data_bin, tmp_path, args, error):
    command = train_command(toy_data_bin, tmp_path, *args)
    code, output = run_cli(*command, check=False)
    assert code == 2, output[-3000:]
    assert output.rstrip().splitlines()[-1] == f"fairseq-train: error: {error}"
    assert "Traceback" not in output


@pytest.mark.parametrize("criterion", ["ot_seq", "scheduled_sampling-stepwise", "gjs-token", "cot",
                                       "distill-on_policy"])
def test_a_diverged_model_ends_training_in_one_line(request, toy_data_bin, tmp_path, criterion):
    """SGD at --lr 1e8: the first update leaves huge weights whose outputs
    overflow at the second. Training ends in one line that says the model
    diverged (not the OT solver's advice on --ot-beta, nor fairseq's NaN
    detector), and the checkpoint saved before holds finite weights."""
    save_dir = tmp_path / "checkpoints"
    command = [*train_command(toy_data_bin, save_dir, *TINY_TRANSFORMER,
                              *with_fixture_teacher(request, CRITERIA[criterion])),
               "--optimizer", "sgd", "--lr", "1e8", "--max-update", "5", "--save-interval-updates", "1",
               "--disable-validation"]
    code, output = run_cli(*command, check=False)
    assert code == 2, output[-3000:]
    assert "Traceback" not in output
    last = output.rstrip().splitlines()[-1]
    assert last.startswith("fairseq-train: error: the model diverged at update 2: "), last
    assert last.endswith("lower --lr (or clip gradients with --clip-norm, or train in float32 or bfloat16 "
                         "instead of float16); the checkpoints written before are kept")
    saved = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert saved["optimizer_history"][-1]["num_updates"] == 1
    assert all(bool(torch.isfinite(w).all()) for w in saved["model"].values())


TORCHRUN_CPU = ["--distributed-world-size", "2", "--distributed-backend", "gloo", "--distributed-init-method",
                "env://", "--distributed-no-spawn", "--distributed-rank", "-1", "--device-id", "0"]
MEDIATOR_TASK = ["--task", "mediator_translation", "--mediator-embed-dim", "16", "--mediator-hidden-dim", "32"]


@pytest.mark.parametrize("args,error", [
    ([*MEDIATOR_TASK, "--criterion", "cot", "--ddp-backend", "pytorch_ddp"],
     "--ddp-backend pytorch_ddp refuses the several forwards per update of cot and gjs: "
     "use --ddp-backend legacy_ddp"),
    (["--criterion", "label_smoothed_cross_entropy", "--ddp-backend", "pytorch_ddp"],
     "--ddp-backend pytorch_ddp needs GPUs (fairseq hands PyTorch's DDP a CUDA device id): "
     "on CPU use --ddp-backend legacy_ddp"),
    ([*MEDIATOR_TASK, "--criterion", "cot", "--ddp-backend", "legacy_ddp", "--cot-mediator-steps", "0"],
     "--cot-mediator-steps must be >= 1, got 0"),
    (["--criterion", "label_smoothed_cross_entropy", "--ddp-backend", "legacy_ddp"], "held"),
], ids=["cot-pytorch_ddp", "cpu-pytorch_ddp", "flag", "save-dir-held"])
def test_refusals_under_torchrun_are_one_line_per_rank(toy_data_bin, tmp_path, args, error):
    """Two processes (torchrun, gloo): every rank ends in the same one line,
    and no rank prints a traceback (torchrun's own report of the failed
    ranks follows, as for any failure)."""
    save_dir = tmp_path / "checkpoints"
    if error == "held":  # this process holds the folder, as a live training would
        assert lock.hold_save_dir(save_dir) is None
        error = (f"--save-dir {save_dir} is in use by another training (PID {os.getpid()}): wait for it, "
                 f"stop it, or choose another --save-dir")
    command = train_command(toy_data_bin, save_dir, *TINY_TRANSFORMER, *args, *TORCHRUN_CPU, "--num-workers", "0")
    code, output = run_cli("torchrun", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                           free_port(), shutil.which(command[0]), *command[1:], check=False)
    assert code != 0
    assert [line for line in output.splitlines() if ": error: " in line] == [f"fairseq-train: error: {error}"] * 2
    assert "/fairseq/" not in output.partition("Traceback")[2].partition("ChildFailedError")[0]
    assert "ValueError" not in output
