"""The criterion benchmark behind `fairseq-ot-bench-criterions`
(fairseq_ot/cli/bench_criterions.py, whose docstring and --help give the
setup and the targets): every criterion trains its own copy of one initial
transformer on the same batches, step time and peak memory against
label-smoothed cross-entropy; batched IPOT against a loop over sentences;
ancestral sampling, the lean step against fairseq's incremental decoding.
`run(args)` takes the parsed command line."""

import contextlib
import copy
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from fairseq import options, utils
from fairseq.criterions import CRITERION_REGISTRY
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion  # noqa: E501
from fairseq.data import Dictionary, LanguagePairDataset
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.tasks.translation import TranslationTask
from omegaconf import OmegaConf

import fairseq_ot  # noqa: F401  (registers the plugin's criterions)
from fairseq_ot.tasks.mediator import MediatorTranslationTask
from fairseq_ot.ot import cosine_cost, ipot, uniform_marginals
from fairseq_ot.benchmarks.memory_meter import MB, check_storage_meter, memory_meter
from fairseq_ot.benchmarks.op_count import ops_per_step
from fairseq_ot.modules import sampling
from fairseq_ot.modules.sampling import ancestral_sample
from fairseq_ot.modules.token_prediction import banned_symbols

BASELINE = "label_smoothed_cross_entropy"
LABEL_SMOOTHING = "0.1"
# Variants of a plugin criterion, benchmarked next to its defaults:
# label -> (criterion, command-line flags).
VARIANTS = {
    "ot_seq:unrolled": ("ot_seq", ["--ot-gradient", "unrolled"]),
    "ot_seq:copy=0.1": ("ot_seq", ["--ot-copy-weight", "0.1"]),
    "scheduled_sampling:stepwise": ("scheduled_sampling", ["--ss-mode", "stepwise"]),
    "gjs:mediator": ("gjs", ["--gjs-mode", "mediator"]),
    "gjs:smoothed": ("gjs", ["--label-smoothing", LABEL_SMOOTHING]),
    "distill:on_policy": ("distill", ["--distill-on-policy", "1", "--distill-beta", "0.5"]),
    "distill:mixture": ("distill", ["--distill-on-policy", "0.5", "--distill-beta", "0.5"]),
    "distill:topk8": ("distill", ["--distill-topk", "8"]),
    "distill:alpha": ("distill", ["--distill-alpha", "1", "--label-smoothing", LABEL_SMOOTHING]),
}
# Criteria that need a teacher (--teacher-layers/--teacher-dim); without one
# they are skipped.
TEACHER_CRITERIA = {"distill", "distill:on_policy", "distill:mixture", "distill:topk8", "distill:alpha"}
TEACHER_FORWARD = "teacher forward"  # a row: the teacher's forward alone, no gradient
# Criteria that train a mediator beside the generator: they run on the
# mediator task, the generator starting from the same weights as the others.
MEDIATOR_CRITERIA = {"cot", "gjs:mediator"}
TARGETS = {
    "ot_seq": {"time": 1.25, "memory": 1.3},
    "scheduled_sampling": {"time": 1.8},
    "gjs": {"time": 1.1},
    "ipot_speedup": 20.0,
}
# The mediator criteria's targets depend on the mediator's size.
MEDIATOR_TARGETS = {"default": {"time": 1.6}, "equal": {"time": 3.5, "memory": 2.5}, "teacher": {}}
# on a corpus's length-bucketed batches (--data) label smoothing pays for no padding
BUCKETED_MEDIATOR_TARGETS = {**MEDIATOR_TARGETS, "default": {"time": 1.5}}
# A word-level distill step costs at most MLE's plus this many teacher forwards;
# an on-policy one at most this many cot steps with a mediator of the teacher's size.
DISTILL_TARGETS = {"distill": 1.1, "distill:on_policy": 1.1}
# Sample length limits: the source length (the data's), or the criterion's default.
SAMPLE_LENGTH_FLAGS = {"data": ["--cot-max-len-a", "1", "--cot-max-len-b", "0"], "limit": [],
                       "reference": []}
SAMPLE_LENGTHS = {"data": "the source length", "limit": "the criterion limit",
                  "reference": "the reference length"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------- setup


def plugin_criteria():
    return sorted(name for name, cls in CRITERION_REGISTRY.items()
                  if cls.__module__.startswith("fairseq_ot"))


def criterion_specs(selected):
    """label -> (criterion name, extra flags), the baseline first."""
    specs = {BASELINE: (BASELINE, [])}
    specs.update((name, (name, [])) for name in plugin_criteria())
    specs.update((label, spec) for label, spec in VARIANTS.items() if spec[0] in specs)
    if selected is None:
        return specs
    unknown = set(selected) - set(specs)
    if unknown:
        sys.exit(f"unknown --criteria {sorted(unknown)}; choose from {sorted(specs)}")
    return {label: spec for label, spec in specs.items() if label == BASELINE or label in selected}


def transformer_flags(layers, dim):
    heads = max(1, dim // 64)
    return [
        "--arch", "transformer", "--share-all-embeddings",
        "--encoder-layers", str(layers), "--decoder-layers", str(layers),
        "--encoder-embed-dim", str(dim), "--decoder-embed-dim", str(dim),
        "--encoder-ffn-embed-dim", str(4 * dim), "--decoder-ffn-embed-dim", str(4 * dim),
        "--encoder-attention-heads", str(heads), "--decoder-attention-heads", str(heads),
    ]


def fairseq_config(args, criterion, criterion_flags, task="translation", model_flags=None):
    """The config fairseq-train would build from these command-line flags
    (on the mediator task, the --mediator size and --sample-length cap)."""
    model_flags = model_flags or transformer_flags(args.layers, args.dim)
    if criterion == "distill":
        # samples capped as the mediator criteria's are
        length = SAMPLE_LENGTH_FLAGS[args.sample_length]
        criterion_flags = ["--teacher-path", str(args.teacher_path),
                           *[flag.replace("--cot-", "--distill-") for flag in length], *criterion_flags]
    if task == "translation" and issubclass(CRITERION_REGISTRY[criterion],
                                            LabelSmoothedCrossEntropyCriterion):
        # Criteria that add to label-smoothed NLL: smooth alike, compare the additions
        # (gjs's mediator mode, on the mediator task, smooths nothing).
        criterion_flags = ["--label-smoothing", LABEL_SMOOTHING, *criterion_flags]
    mediator_flags = []
    if task != "translation":
        mediator_flags = SAMPLE_LENGTH_FLAGS[args.sample_length]
        if args.mediator != "default":
            layers, dim = ((args.layers, args.dim) if args.mediator == "equal"
                           else (args.teacher_layers, args.teacher_dim))
            mediator_flags = mediator_flags + [
                "--mediator-embed-dim", str(dim), "--mediator-hidden-dim", str(4 * dim),
                "--mediator-layers", str(layers),
            ]
    parser = options.get_training_parser()
    # The data directory is never read: the dictionary and batches live in memory.
    namespace = options.parse_args_and_arch(parser, input_args=[
        str(args.data or "in-memory"), "--task", task, "--seed", str(args.seed), *model_flags, *mediator_flags,
        "--criterion", criterion, *criterion_flags,
    ])
    with warnings.catch_warnings():
        # Hydra's deprecation notices about how fairseq 0.12 calls it.
        warnings.simplefilter("ignore", UserWarning)
        return convert_namespace_to_omegaconf(namespace)


def synthetic_dictionary(size):
    dictionary = Dictionary()
    for index in range(size - len(dictionary)):
        dictionary.add_symbol(f"w{index}")
    return dictionary


def synthetic_batches(task_cfg, dictionary, args, device):
    """Batches of random sentence pairs in fairseq's sample format, collated
    (padded, source left-padded, prev_output_tokens shifted) by fairseq."""
    generator = torch.Generator().manual_seed(args.seed)

    def sentence():
        length = int(torch.randint(args.min_len, args.max_len + 1, (), generator=generator))
        words = torch.randint(dictionary.nspecial, len(dictionary), (length - 1,),
                              generator=generator)
        return torch.cat([words, torch.tensor([dictionary.eos()])])

    batches = []
    for _ in range(args.batches):
        source = [sentence() for _ in range(args.batch_size)]
        target = [sentence() for _ in range(args.batch_size)]
        dataset = LanguagePairDataset(
            source, np.array([len(s) for s in source]), dictionary,
            target, np.array([len(t) for t in target]), dictionary,
            left_pad_source=task_cfg.left_pad_source, left_pad_target=task_cfg.left_pad_target,
        )
        sample = dataset.collater([dataset[i] for i in range(len(dataset))])
        batches.append(utils.apply_to_sample(lambda tensor: tensor.to(device), sample))
    return batches


def corpus_batches(task, args, device):
    """The first --batches of fairseq's own batches of the train split:
    sentences grouped by length, --max-tokens each, shuffled by --seed."""
    task.load_dataset("train")
    dataset = task.dataset("train")
    iterator = task.get_batch_iterator(dataset, max_tokens=args.max_tokens, seed=args.seed,
                                       max_positions=(1024, 1024), ignore_invalid_inputs=True)
    batches = []
    for sample in iterator.next_epoch_itr(shuffle=True):
        batches.append(utils.apply_to_sample(lambda tensor: tensor.to(device), sample))
        if len(batches) == args.batches:
            break
    return batches


def write_teacher_checkpoint(path, args, task, device):
    """A randomly initialised transformer of the teacher's size, saved as a
    fairseq checkpoint over the bench's dictionary (what --teacher-path
    reads): the step's cost does not depend on the weights."""
    cfg = fairseq_config(args, BASELINE, [], model_flags=transformer_flags(args.teacher_layers,
                                                                            args.teacher_dim))
    torch.manual_seed(args.seed + 1)
    model = task.build_model(cfg.model)
    torch.save({"cfg": OmegaConf.to_container(cfg), "model": model.state_dict(), "args": None,
                "task_state": task.state_dict(), "extra_state": {}, "last_optimizer_state": None,
                "optimizer_history": [{"criterion_name": "LabelSmoothedCrossEntropyCriterion",
                                       "optimizer_name": "Adam", "num_updates": 0,
                                       "lr_scheduler_state": {"best": None}}]}, path)
    return model.to(device).eval()


class TeacherForward:
    """A row of the table: the teacher's forward over the batch, no gradient."""

    def __init__(self, model):
        self.model = model
        self.last_log = {"loss": 0.0}

    @torch.no_grad()
    def step(self, sample):
        self.model(**sample["net_input"])


@contextlib.contextmanager
def samples_of_reference_length(sample):
    """Within the block, samples drawn for the batch's rows
    (fairseq_ot.modules.sampling.ancestral_sample) are capped at each row's
    reference length: an untrained generator runs to its cap, so they are
    that long, as a trained generator's samples are about."""
    lengths = sample["target"].ne(1).sum(1)  # fairseq's padding index
    original = sampling.ancestral_sample

    def capped(model, length_limits, *args, **kwargs):
        if length_limits.numel() != lengths.numel():
            raise ValueError("--sample-length reference needs one sample per sentence")
        return original(model, lengths.to(length_limits), *args, **kwargs)

    sampling.ancestral_sample = capped
    try:
        yield
    finally:
        sampling.ancestral_sample = original


class Trainee:
    """A criterion with its own copy of the initial model and its own Adam,
    so that the criteria can take turns step by step."""

    def __init__(self, criterion, model, device, dtype, reference_length=False):
        self.criterion = criterion
        self.reference_length = reference_length
        self.model = model.train()
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98))
        self.device = device
        self.dtype = dtype
        self.last_log = {}  # the logging output of the latest step

    def step(self, sample):
        lengths = (samples_of_reference_length(sample) if self.reference_length
                   else contextlib.nullcontext())
        with lengths, torch.autocast(self.device.type, dtype=self.dtype,
                                     enabled=self.dtype != torch.float32):
            loss, _, self.last_log = self.criterion(self.model, sample)
        loss.backward()
        self.optimizer.step()
        # At the end rather than the start: no gradients live between steps,
        # so a step's memory is all allocated within it.
        self.optimizer.zero_grad(set_to_none=True)


class Bench:
    """The batches and, for every criterion that builds, a trainee that starts
    from the same initial weights."""

    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        cfg = fairseq_config(args, BASELINE, [])
        if args.data is None:
            self.dictionary = synthetic_dictionary(args.vocab)
            task = self.new_task(cfg)
            self.batches = synthetic_batches(cfg.task, self.dictionary, args, self.device)
        else:
            task = TranslationTask.setup_task(cfg.task)
            self.dictionary = task.target_dictionary
            self.batches = corpus_batches(task, args, self.device)
        torch.manual_seed(args.seed)
        self.model = task.build_model(cfg.model).to(self.device)
        self.trainees, self.skipped = {}, {}
        if args.teacher_layers:
            self.teacher_dir = tempfile.TemporaryDirectory()
            args.teacher_path = Path(self.teacher_dir.name) / "teacher.pt"
            teacher = write_teacher_checkpoint(args.teacher_path, args, task, self.device)
            self.trainees[TEACHER_FORWARD] = TeacherForward(teacher)
        for label, (name, flags) in criterion_specs(args.criteria).items():
            if label in TEACHER_CRITERIA and not args.teacher_layers:
                self.skipped[label] = "needs a teacher: --teacher-layers"
                continue
            task_name = "mediator_translation" if label in MEDIATOR_CRITERIA else "translation"
            try:
                # A task of its own: a criterion may hook into its task.
                cfg = fairseq_config(args, name, flags, task_name)
                task = self.new_task(cfg, task_name)
                criterion = task.build_criterion(cfg.criterion)
            except Exception as error:  # a criterion for another task: report, go on
                self.skipped[label] = f"cannot be built on the {task_name} task: {error!r}"
                continue
            if task_name == "translation":
                model = copy.deepcopy(self.model)
            else:
                model = task.build_model(cfg.model).to(self.device)
                model.generator.load_state_dict(self.model.state_dict())
            self.trainees[label] = Trainee(criterion, model, self.device, DTYPES[args.dtype],
                                           args.sample_length == "reference")

    def new_task(self, cfg, task_name="translation"):
        task_class = MediatorTranslationTask if task_name != "translation" else TranslationTask
        return task_class(cfg.task, self.dictionary, self.dictionary)



def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- criteria


def warm_up_and_measure_memory(bench):
    """Per criterion, warm-up steps, then the meter of its step with the
    largest peak over the batches (memory depends on the shapes alone: one
    pass suffices). A criterion whose step fails is skipped with the error."""
    worst = {}
    for label, trainee in list(bench.trainees.items()):
        try:
            for index in range(bench.args.warmup):
                trainee.step(bench.batches[index % len(bench.batches)])
            worst[label] = max(metered_steps(trainee, bench), key=lambda meter: meter.peak)
        except Exception as error:  # e.g. a criterion that needs other sample fields
            bench.skipped[label] = f"a training step fails: {error!r}"
            del bench.trainees[label]
    return worst


def metered_steps(trainee, bench):
    meters = []
    for sample in bench.batches:
        with memory_meter(bench.device) as meter:
            trainee.step(sample)
        meters.append(meter)
    return meters


def measure_time(bench):
    """ms per round and criterion: the mean step over the batches. The
    criteria alternate step by step, the first one rotating, so that a burst
    of machine noise falls on all of them alike."""
    labels = list(bench.trainees)
    times = {label: [] for label in labels}
    for round_index in range(bench.args.rounds):
        total_ms = dict.fromkeys(labels, 0.0)
        for batch_index, sample in enumerate(bench.batches):
            shift = (round_index * len(bench.batches) + batch_index) % len(labels)
            for label in labels[shift:] + labels[:shift]:
                total_ms[label] += timed_step(bench.trainees[label], sample, bench.device)
        for label in labels:
            times[label].append(total_ms[label] / len(bench.batches))
    return times


def timed_step(trainee, sample, device):
    synchronize(device)
    start = time.perf_counter()
    trainee.step(sample)
    synchronize(device)
    return (time.perf_counter() - start) * 1000


def criterion_results(bench, times, meters):
    """Per criterion: time and memory, their ratios to the baseline's, the
    last step's loss (bit-identical whatever the allocator: see
    bench_allocators) and, for the mediator criteria, the last step's mean
    sample length in tokens."""
    base_ms = statistics.median(times[BASELINE])
    base_mb = meters[BASELINE].peak / MB
    results = {}
    for label in times:
        ms = statistics.median(times[label])
        mb = meters[label].peak / MB
        log = bench.trainees[label].last_log
        results[label] = {
            "ms_per_step": ms, "time_ratio": ms / base_ms, "ms_per_round": times[label],
            "peak_mb": mb, "memory_ratio": mb / base_mb, "last_loss": float(log["loss"]),
        }
        if "cot_samples" in log:
            results[label]["sample_len"] = log["cot_sample_tokens"] / log["cot_samples"]
        if log.get("distill_on_policy_sentences"):
            results[label]["sample_len"] = log["distill_sample_tokens"] / log["distill_on_policy_sentences"]
    return results


def print_criterion_table(results, data_len):
    print(f"\n{'criterion':<30} {'ms/step':>9} {'x LSCE':>7} {'peak MB':>9} {'x LSCE':>7} "
          f"{'sample len':>10}")
    for label, row in results.items():
        length = f"{row['sample_len']:10.1f}" if "sample_len" in row else f"{'':>10}"
        print(f"{label:<30} {row['ms_per_step']:9.1f} {row['time_ratio']:7.2f} "
              f"{row['peak_mb']:9.1f} {row['memory_ratio']:7.2f} {length}")
    print(f"mean target length of the data: {data_len:.1f} tokens")


def print_largest_storages(meters, count):
    for label, meter in meters.items():
        print(f"\nlargest storages live at the memory peak of {label}:")
        for op_name, mb, n in meter.largest_at_peak(count):
            print(f"  {n:4d} x {mb:8.2f} MB  from aten.{op_name}")


# ---------------------------------------------------------------- IPOT


def ipot_problem(batch, length, device, seed):
    """Cosine costs of random 64-dim vectors (in [0, 2]), uniform marginals."""
    generator = torch.Generator().manual_seed(seed)
    x, y = (torch.randn(batch, length, 64, generator=generator) for _ in range(2))
    cost = cosine_cost(x, y).to(device)
    marginal = uniform_marginals(torch.ones(batch, length, dtype=torch.bool, device=device))
    return cost, marginal


def batched_ipot(cost, marginal, gradient):
    return ipot(cost, marginal, marginal, beta=0.5, iters=50, gradient=gradient).distance


def looped_ipot(cost, marginal, gradient):
    return torch.cat([
        batched_ipot(cost[i:i + 1], marginal[i:i + 1], gradient) for i in range(cost.size(0))
    ])


def time_ipot(solve, cost, marginal, gradient, device):
    cost = cost.detach().requires_grad_(gradient == "unrolled")
    synchronize(device)
    start = time.perf_counter()
    distance = solve(cost, marginal, gradient)
    if gradient == "unrolled":
        distance.sum().backward()
    synchronize(device)
    return (time.perf_counter() - start) * 1000


def measure_ipot(args, device):
    """Batched call against the loop, alternating, after one untimed run each."""
    cost, marginal = ipot_problem(64, 30, device, args.seed)
    results = {}
    for gradient in ("envelope", "unrolled"):
        times = {"batched": [], "loop": []}
        solvers = {"batched": batched_ipot, "loop": looped_ipot}
        for repeat in range(args.ipot_repeats + 1):
            for kind, solve in solvers.items():
                elapsed = time_ipot(solve, cost, marginal, gradient, device)
                if repeat > 0:
                    times[kind].append(elapsed)
        batched_ms, loop_ms = (statistics.median(times[k]) for k in ("batched", "loop"))
        results[gradient] = {"batched_ms": batched_ms, "loop_ms": loop_ms,
                             "speedup": loop_ms / batched_ms}
    return results


def print_ipot_table(results):
    print("\nIPOT, B=64, n=m=30, beta 0.5, 50 iterations (median of repeats)")
    print(f"{'mode':<28} {'batched ms':>10} {'loop ms':>9} {'speed-up':>9}")
    for gradient, row in results.items():
        mode = "envelope (forward)" if gradient == "envelope" else "unrolled (fwd + backward)"
        print(f"{mode:<28} {row['batched_ms']:10.2f} {row['loop_ms']:9.1f} "
              f"{row['speedup']:8.1f}x")


# ---------------------------------------------------------------- sampling


def compare_sampling(args):
    """Ancestral sampling from the generator (the baseline's initial model,
    eval mode), conditioned on the first batch's sources, the lean step
    (lean_decoding.py) against fairseq's incremental decoding: aten
    operators per step, counted by a TorchDispatchMode over one extra step
    (EOS banned there, so that every sample runs every step), and the time
    of a sampling call (--rounds repeats after an untimed one, the two
    alternating, first one then the other; median). Checks that both draw
    the same tokens."""
    device = torch.device(args.device)
    dictionary = synthetic_dictionary(args.vocab)
    cfg = fairseq_config(args, BASELINE, [])
    torch.manual_seed(args.seed)
    model = TranslationTask(cfg.task, dictionary, dictionary).build_model(cfg.model).to(device).eval()
    net_input = synthetic_batches(cfg.task, dictionary, args, device)[0]["net_input"]
    encoder_input = {key: net_input[key] for key in ("src_tokens", "src_lengths")}
    eos, banned = dictionary.eos(), banned_symbols(dictionary)

    def sample(lean, steps=args.max_len, banned=banned):
        limits = torch.full((args.batch_size,), steps, device=device)
        return ancestral_sample(model, limits, eos, dictionary.pad(), banned, encoder_input,
                                torch.Generator(device).manual_seed(args.seed), lean=lean)

    paths = {"fairseq": False, "lean": True}
    ops = {name: sum(ops_per_step(lambda steps: sample(lean, steps, banned + (eos,)), 4).values())
           for name, lean in paths.items()}
    times, samples = {name: [] for name in paths}, {}
    for repeat in range(args.rounds + 1):
        for name in (list(paths) if repeat % 2 else list(paths)[::-1]):
            synchronize(device)
            start = time.perf_counter()
            samples[name] = sample(paths[name])
            synchronize(device)
            if repeat > 0:
                times[name].append((time.perf_counter() - start) * 1000)
    ms = {name: statistics.median(values) for name, values in times.items()}
    same = all(torch.equal(a, b) for a, b in zip(samples["fairseq"], samples["lean"]))
    tokens = samples["lean"][0]
    print(describe_sampling(args, device, tokens))
    print(f"{'':<30} {'fairseq':>9} {'lean':>9} {'ratio':>7}")
    print(f"{'aten ops per sampling step':<30} {ops['fairseq']:9d} {ops['lean']:9d} "
          f"{ops['lean'] / ops['fairseq']:7.2f}")
    print(f"{'ms per sampling call':<30} {ms['fairseq']:9.1f} {ms['lean']:9.1f} {ms['lean'] / ms['fairseq']:7.2f}")
    print(f"same tokens: {same}")
    if args.json:
        args.json.write_text(json.dumps({
            "setup": describe_sampling(args, device, tokens).splitlines(), "ops_per_step": ops,
            "ms_per_call": times, "median_ms": ms, "same_tokens": same}, indent=2))
    if not same:
        sys.exit("the lean step drew other tokens than fairseq's decoding")


def describe_sampling(args, device, tokens):
    return "\n".join([
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}",
        f"ancestral sampling from a transformer {args.layers}+{args.layers} layers, dim {args.dim}, "
        f"vocab {args.vocab}: {args.batch_size} samples of at most {args.max_len} tokens "
        f"(here {tuple(tokens.shape)}), {args.rounds} alternating repeats, median",
    ])


# ---------------------------------------------------------------- report


def target_lines(results, ipot_results, mediator, bucketed=False):
    lines = []
    mediator_targets = (BUCKETED_MEDIATOR_TARGETS if bucketed else MEDIATOR_TARGETS)[mediator]
    targets = {**TARGETS, **dict.fromkeys(MEDIATOR_CRITERIA, mediator_targets)}
    for label, limits in targets.items():
        row = results.get(label)
        if row is None or not isinstance(limits, dict):
            continue
        for measure, limit in limits.items():
            ratio = row[f"{measure}_ratio"]
            verdict = "met" if ratio <= limit else "MISSED"
            setting = f" ({mediator} mediator)" if label in MEDIATOR_CRITERIA else ""
            lines.append(f"{label}{setting} {measure} {ratio:.2f}x, target <= {limit}x: {verdict}")
    distill_floor = {"distill": (BASELINE, TEACHER_FORWARD), "distill:on_policy": ("cot", None)}
    for label, limit in DISTILL_TARGETS.items():
        base, teacher = distill_floor[label]
        if label not in results or base not in results or (teacher and teacher not in results):
            continue
        if teacher:
            units = ((results[label]["ms_per_step"] - results[base]["ms_per_step"])
                     / results[teacher]["ms_per_step"])
            verdict = "met" if units <= limit else "MISSED"
            lines.append(f"{label}: MLE step + {units:.2f} teacher forwards, target <= {limit}: {verdict}")
        elif mediator == "teacher":
            ratio = results[label]["ms_per_step"] / results[base]["ms_per_step"]
            verdict = "met" if ratio <= limit else "MISSED"
            lines.append(f"{label}: {ratio:.2f}x cot with a teacher-sized mediator, target <= {limit}x: "
                         f"{verdict}")
    for gradient, row in ipot_results.items():
        limit = TARGETS["ipot_speedup"]
        verdict = "met" if row["speedup"] >= limit else "MISSED"
        lines.append(f"batched IPOT ({gradient}) {row['speedup']:.1f}x, "
                     f"target >= {limit}x: {verdict}")
    return lines


def data_length(bench):
    """Mean target length of the batches, EOS included, as sample lengths count."""
    return (sum(int(sample["ntokens"]) for sample in bench.batches)
            / sum(sample["target"].size(0) for sample in bench.batches))


def describe_setup(bench):
    args = bench.args
    parameters = sum(p.numel() for p in bench.model.parameters())
    parameter_mb = sum(p.numel() * p.element_size() for p in bench.model.parameters()) / MB
    tokens = [int(sample["ntokens"]) for sample in bench.batches]
    padded = [tuple(sample["target"].shape) for sample in bench.batches]
    memory = ("storages counted by a TorchDispatchMode" if bench.device.type == "cpu"
              else "torch.cuda.max_memory_allocated")
    return "\n".join([
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {bench.device}, {args.dtype}",
        f"transformer {args.layers}+{args.layers} layers, dim {args.dim}, ffn {4 * args.dim}, "
        f"vocab {len(bench.dictionary)}, {parameters / 1e6:.1f}M parameters "
        f"({parameter_mb:.1f} MB, {3 * parameter_mb:.1f} MB with Adam's moments)",
        (f"{args.batches} batches of {args.batch_size} synthetic sentences, {args.min_len}..{args.max_len} "
         f"tokens" if args.data is None else
         f"{args.batches} of fairseq's length-bucketed batches of {args.data} (train, --max-tokens "
         f"{args.max_tokens})") + f"; target tokens {tokens}, padded targets {padded}",
        *([f"teacher: transformer {args.teacher_layers}+{args.teacher_layers} layers, dim "
           f"{args.teacher_dim}, ffn {4 * args.teacher_dim}"] if args.teacher_layers else []),
        f"mediator criteria: {args.mediator} mediator, samples capped at "
        f"{SAMPLE_LENGTHS[args.sample_length]}",
        f"timing: {args.rounds} rounds x {args.batches} steps per criterion, alternating "
        f"step by step, after {args.warmup} warm-up and {args.batches} memory steps; "
        f"median over rounds",
        f"peak MB: peak of the memory a step allocates above the live bytes before it "
        f"(parameters and Adam's moments excluded), {memory}",
    ])


def run(args):
    """The whole benchmark for the parsed command line `args` (see
    fairseq_ot/cli/bench_criterions.py): prints the tables, writes --json."""
    if args.sampling:
        return compare_sampling(args)
    if torch.device(args.device).type == "cpu":
        check_storage_meter()
    bench = Bench(args)
    print(describe_setup(bench))
    meters = warm_up_and_measure_memory(bench)
    for label, reason in bench.skipped.items():
        print(f"skipped {label}: {reason}")
    if BASELINE not in bench.trainees:
        sys.exit(f"the reference {BASELINE} could not be run")
    results = criterion_results(bench, measure_time(bench), meters)
    print_criterion_table(results, data_length(bench))
    if args.top_tensors:
        print_largest_storages(meters, args.top_tensors)
    ipot_results = measure_ipot(args, bench.device) if args.ipot_repeats else {}
    if ipot_results:
        print_ipot_table(ipot_results)
    targets = target_lines(results, ipot_results, args.mediator, bucketed=args.data is not None)
    print("\n" + "\n".join(targets))
    if args.json:
        args.json.write_text(json.dumps({
            "setup": describe_setup(bench).splitlines(),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "criteria": results, "skipped": bench.skipped, "ipot": ipot_results,
            "targets": targets,
        }, indent=2))

