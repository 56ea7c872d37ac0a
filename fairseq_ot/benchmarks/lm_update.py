"""The update benchmark behind `fairseq-ot-bench-lm-update`
(fairseq_ot/cli/bench_lm_update.py, whose docstring says what is timed): one
MLE update of the synthetic Turing test's generator in fairseq's Trainer
against a plain PyTorch loop, the contestants alternating; or a profile of
each. `run(args)` takes the parsed command line."""

import ast
import cProfile
import io
import itertools
import json
import logging
import pstats
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from fairseq import metrics, options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.trainer import Trainer
from torch import nn

from fairseq_ot.paths import USER_DIR
from fairseq_ot.synthetic.flags import GENERATOR_ARGS, TRAINING_ARGS
from fairseq_ot.synthetic.lm_data import build_oracle_lm_data
from fairseq_ot.synthetic.oracle import OracleLSTM

PLAIN = "plain"
BATCH_SIZE = 64
SEED = 1
# CPU time is what the update costs; on a shared machine the wall clock also
# counts the time other processes held the core
CLOCKS = ("cpu", "wall")


def option_value(flags, name):
    return flags[flags.index(name) + 1]


def with_arch(flags, arch):
    """The fairseq flags with --arch replaced."""
    index = flags.index("--arch") + 1
    return flags[:index] + [arch] + flags[index + 1:]


class FairseqUpdate:
    """fairseq's Trainer for `arch` on the data; calling it makes one update."""

    def __init__(self, data_bin, arch):
        parser = options.get_training_parser()
        parsed = options.parse_args_and_arch(parser, [
            str(data_bin), "--user-dir", str(USER_DIR), "--cpu", *with_arch(GENERATOR_ARGS, arch),
            *TRAINING_ARGS, "--task", "language_modeling",
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0",
        ])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # hydra's notices about fairseq 0.12
            cfg = convert_namespace_to_omegaconf(parsed)
        task = tasks.setup_task(cfg.task)
        torch.manual_seed(SEED)
        model = task.build_model(cfg.model)
        self.trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))

    def batches(self, count):
        """The first `count` training batches, as fairseq-train collates them."""
        iterator = self.trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=False)
        return list(itertools.islice(iterator, count))

    def __call__(self, sample):
        # as fairseq_cli.train runs every update
        with metrics.aggregate("train_inner"):
            self.trainer.train_step([sample])


class PlainLM(nn.Module):
    def __init__(self, vocab, embed_dim, hidden_size, pad):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=pad)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab)

    def forward(self, tokens):
        return self.out(self.lstm(self.embed(tokens))[0])


class PlainUpdate:
    """The plain training step, with fairseq's Adam betas and learning rate."""

    def __init__(self, vocab, pad):
        size = lambda flag: int(option_value(GENERATOR_ARGS, flag))  # noqa: E731
        torch.manual_seed(SEED)
        self.model = PlainLM(vocab, size("--decoder-embed-dim"), size("--decoder-hidden-size"), pad)
        self.optimizer = torch.optim.Adam(self.model.parameters(),
                                          lr=float(option_value(TRAINING_ARGS, "--lr")),
                                          betas=ast.literal_eval(option_value(TRAINING_ARGS, "--adam-betas")))
        self.pad = pad

    def __call__(self, sample):
        logits = self.model(sample["net_input"]["src_tokens"])
        loss = F.cross_entropy(logits.flatten(0, 1), sample["target"].flatten(), ignore_index=self.pad,
                               reduction="sum") / sample["ntokens"]
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def oracle_data(out_dir, batches):
    """The Turing test's data (oracle samples binarized as fairseq LM data)
    with `batches` training batches, in out_dir; the data-bin folder."""
    return build_oracle_lm_data(OracleLSTM.load_default(), out_dir, n_train=BATCH_SIZE * batches,
                                n_valid=BATCH_SIZE, n_test=BATCH_SIZE)


def run_steps(update, batches, steps):
    """`steps` updates on the batches in turn; the process's CPU seconds and
    the wall-clock seconds per update."""
    cpu, wall = time.process_time(), time.perf_counter()
    for sample in itertools.islice(itertools.cycle(batches), steps):
        update(sample)
    return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps


def measure(contestants, batches, args):
    """{clock: {name: [ms per update, per round]}}, the contestants alternating."""
    for update in contestants.values():
        run_steps(update, batches, args.warmup)
    times = {clock: {name: [] for name in contestants} for clock in CLOCKS}
    for _ in range(args.rounds):
        for name, update in contestants.items():
            for clock, seconds in zip(CLOCKS, run_steps(update, batches, args.steps)):
                times[clock][name].append(1000 * seconds)
    return times


def summarize(times):
    """Per clock and contestant: the median ms per update, the median of the
    rounds' ratios to the plain loop, and every round's ms."""
    return {clock: {name: {"ms_per_update": statistics.median(rounds),
                           "ratio_to_plain": statistics.median(
                               t / p for t, p in zip(rounds, by_name[PLAIN])),
                           "rounds_ms": [round(t, 2) for t in rounds]}
                    for name, rounds in by_name.items()}
            for clock, by_name in times.items()}


def profile(contestants, batches, args, top=15):
    """Print the top operators (self CPU time) and Python functions (own
    time) of --steps updates of each contestant, after the warm-up."""
    for name, update in contestants.items():
        run_steps(update, batches, args.warmup)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            run_steps(update, batches, args.steps)
        print(f"== {name}: operators, {args.steps} updates")
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
        python_profile = cProfile.Profile()
        python_profile.runcall(run_steps, update, batches, args.steps)
        text = io.StringIO()
        pstats.Stats(python_profile, stream=text).sort_stats("tottime").print_stats(top)
        print(f"== {name}: Python functions, {args.steps} updates\n{text.getvalue()}")


def run(args):
    """The timing (or, with args.profile, the profile) for the parsed
    command line `args` (see fairseq_ot/cli/bench_lm_update.py)."""
    logging.getLogger().setLevel(logging.WARNING)  # fairseq's INFO lines per model and trainer
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        data_bin = oracle_data(Path(folder), args.steps)
        fairseq_updates = {arch: FairseqUpdate(data_bin, arch) for arch in args.archs}
        first = next(iter(fairseq_updates.values()))
        batches, dictionary = first.batches(args.steps), first.trainer.task.dictionary
        contestants = {PLAIN: PlainUpdate(len(dictionary), dictionary.pad()), **fairseq_updates}
        shape = tuple(batches[0]["net_input"]["src_tokens"].shape)
        print(f"batch {shape[0]} x {shape[1]} tokens, vocabulary {len(dictionary)}, "
              f"generator {' '.join(GENERATOR_ARGS[2:])}, {torch.get_num_threads()} thread(s)")
        if args.profile:
            profile(contestants, batches, args)
            return
        results = summarize(measure(contestants, batches, args))
    print(f"median of {args.rounds} rounds of {args.steps} updates, contestants alternating")
    print("| update | CPU ms | x plain | wall ms | x plain |\n| --- | ---: | ---: | ---: | ---: |")
    for name in contestants:
        cpu, wall = (results[clock][name] for clock in CLOCKS)
        print(f"| {name} | {cpu['ms_per_update']:.1f} | {cpu['ratio_to_plain']:.2f} "
              f"| {wall['ms_per_update']:.1f} | {wall['ratio_to_plain']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"batch": shape, "vocabulary": len(dictionary),
                                         "generator": GENERATOR_ARGS, "results": results}, indent=1))
