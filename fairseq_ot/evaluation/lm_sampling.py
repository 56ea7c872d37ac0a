"""Sentences sampled from, and held-out data scored by, a fairseq language
model checkpoint: a `language_modeling` model, or the generator of a
`mediator_language_modeling` model. A checkpoint of another task, or a data
folder without a language model's dictionary, is refused (`LMInputError`,
one line naming the file) before fairseq sets up the task, which would fail
with a traceback from deep inside it.

Sampling is ancestral (`fairseq_ot.modules.sampling.ancestral_sample`):
each token is drawn from softmax(z / T) over the symbols that are not
banned, from a torch.Generator seeded by the caller, so a seed gives the same
sentences on every run with the same batch size. A sentence that reaches the
length limit ends there (its last token is forced to EOS)."""

from dataclasses import dataclass
from pathlib import Path

import torch
from fairseq import checkpoint_utils, utils
from fairseq.data import Dictionary, data_utils
from tqdm import tqdm

from fairseq_ot.errors import FlagError, require
from fairseq_ot.modules.sampling import ancestral_sample, evaluation_mode
from fairseq_ot.modules.token_prediction import banned_symbols


# sentences sampled at once: the draws depend on the batching, so every
# command samples with this default (the sweep's samples at seed S are
# sample_lm's at seed S)
BATCH_SIZE = 500


# the tasks whose model (or, for the mediator task, its generator) is an
# unconditional language model
LM_TASKS = ("language_modeling", "mediator_language_modeling")


class LMInputError(Exception):
    """A checkpoint or data folder no language model can be loaded from; the
    message names it and fits on one line."""


class CheckpointFileError(LMInputError, FileNotFoundError):
    """A checkpoint path that names no file."""


class NotALanguageModelError(LMInputError, ValueError):
    """A checkpoint of another task (translation, captioning): it has no
    unconditional model to sample from, and its task cannot be set up on a
    language model's data."""


class DataFolderError(LMInputError, FileNotFoundError):
    """A data folder without dict.txt, the dictionary a language-modeling
    task loads first."""


@dataclass
class LoadedLM:
    """A language model loaded from a checkpoint, in eval mode."""

    generator: torch.nn.Module
    dictionary: Dictionary
    num_updates: int
    training_seconds: float
    tokens_per_sample: int  # the task's longest training sequence, EOS included


def require_checkpoint(path):
    """CheckpointFileError unless `path` is a file, before fairseq's loader fails less plainly."""
    if not Path(path).is_file():
        raise CheckpointFileError(f"{path}: no such checkpoint file")


def require_language_model(path, state):
    """NotALanguageModelError unless the loaded checkpoint `state` (of file
    `path`) was trained on one of LM_TASKS."""
    task = (state.get("cfg") or {}).get("task") or {}
    name = task.get("_name")
    if name not in LM_TASKS:
        raise NotALanguageModelError(
            f"{path}: a checkpoint of task {name}, not of a language model ({' or '.join(LM_TASKS)})")


def require_data_folder(data):
    """DataFolderError unless the first folder of `data` (fairseq's
    colon-separated shards) holds dict.txt: fairseq would fail on a missing
    folder, or on a translation data-bin (dict.SRC.txt, dict.TGT.txt), with
    a traceback."""
    folder = Path(utils.split_paths(str(data))[0])
    if not folder.is_dir():
        raise DataFolderError(f"{folder}: no such data folder")
    if not (folder / "dict.txt").is_file():
        raise DataFolderError(f"{folder}: no dict.txt, not the binarized data of a language model")


def load_generator(checkpoint_path, data_bin=None):
    """The LoadedLM of a checkpoint of a language-modeling or mediator task:
    the generator of a mediator task's model, the model itself otherwise.
    `data_bin` overrides the data folder recorded in the checkpoint.
    LMInputError for a missing file, a checkpoint of another task or a data
    folder without dict.txt."""
    require_checkpoint(checkpoint_path)
    overrides = {"data": str(data_bin)} if data_bin is not None else None
    state = checkpoint_utils.load_checkpoint_to_cpu(str(checkpoint_path), overrides)
    require_language_model(checkpoint_path, state)
    require_data_folder(state["cfg"]["task"]["data"])
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint_path)], arg_overrides=overrides, state=state
    )
    return LoadedLM(
        generator=getattr(models[0], "generator", models[0]).eval(),
        dictionary=task.target_dictionary,
        num_updates=state["optimizer_history"][-1]["num_updates"],
        training_seconds=state["extra_state"]["previous_training_time"],
        tokens_per_sample=state["cfg"]["task"]["tokens_per_sample"],
    )


def require_temperature(temperature):
    # `not > 0` also refuses nan
    require(temperature > 0, "--temperature", "> 0", temperature)


def require_sweep(runs, temperatures, checkpoint):
    """FlagError or CheckpointFileError, before anything is loaded, for a
    temperature sweep that cannot run: a temperature not > 0, two run folders
    of one name (the name is the method's), a run without its checkpoint
    (RUN_DIR/checkpoints/`checkpoint`)."""
    for temperature in temperatures:
        require_temperature(temperature)
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise FlagError(f"RUN_DIR names the methods and must differ: {' '.join(names)}")
    for run in runs:
        require_checkpoint(Path(run) / "checkpoints" / checkpoint)


@torch.no_grad()
def sample_batches(generator, dictionary, n, max_tokens, temperature=1.0, banned=None, rng=None,
                   batch_size=BATCH_SIZE, progress=False):
    """Yield (tokens [b, L], forced [b, L]) batches of ancestral samples
    that add up to n sentences (see ancestral_sample): at most `max_tokens`
    tokens each, EOS included, drawn at `temperature` from the torch.Generator
    `rng` (torch's global one if None), never one of `banned` (default: pad
    and BOS). `progress` shows a tqdm bar over the sentences."""
    require_temperature(temperature)
    banned = banned_symbols(dictionary) if banned is None else banned
    with evaluation_mode(generator), tqdm(total=n, desc="sampling", unit=" sentences",
                                          disable=not progress) as bar:
        for start in range(0, n, batch_size):
            limits = torch.full((min(batch_size, n - start),), max_tokens)
            yield ancestral_sample(generator, limits, dictionary.eos(), dictionary.pad(), banned,
                                   generator=rng, temperature=temperature)
            bar.update(limits.numel())


def sample_sentences(lm, n, temperature=1.0, seed=1, max_tokens=None, ban_unk=False, batch_size=BATCH_SIZE,
                     progress=False):
    """(n sentences as strings of space-separated symbols without EOS, how
    many reached the length limit) sampled from the LoadedLM `lm` with a
    generator seeded by `seed`. `max_tokens` (EOS included) defaults to the
    checkpoint's --tokens-per-sample; `ban_unk` also bans <unk>."""
    dictionary = lm.dictionary
    banned = banned_symbols(dictionary) + ((dictionary.unk(),) if ban_unk else ())
    rng = torch.Generator().manual_seed(seed)
    sentences, truncated = [], 0
    for tokens, forced in sample_batches(lm.generator, dictionary, n, max_tokens or lm.tokens_per_sample,
                                         temperature, banned, rng, batch_size, progress):
        sentences += [dictionary.string(row, extra_symbols_to_ignore={dictionary.pad()}) for row in tokens]
        truncated += int(forced.any(dim=1).sum())
    return sentences, truncated


def summed_nll(generator, inputs, targets, pad, temperature=1.0):
    """(sum over the non-pad targets of -log p_T(target | inputs), their
    count): one teacher-forced forward of the language model, in float64
    sums, p_T = softmax(z / T) of the model's logits z, as sampling at
    `temperature` draws."""
    require_temperature(temperature)
    net_output = generator(inputs)
    if temperature != 1.0:  # T = 1 keeps the model's own output bit for bit
        net_output = (net_output[0] / temperature, *net_output[1:])
    log_probs = generator.get_normalized_probs(net_output, log_probs=True)
    picked = log_probs.gather(2, targets.unsqueeze(2)).squeeze(2).double()
    real = targets.ne(pad)
    return -picked[real].sum().item(), int(real.sum())


@torch.no_grad()
def split_nll(lm, data_bin, split="test", batch_size=200):
    """The model's mean NLL per token (nats) of the binarized `split` of
    `data_bin`: every sentence teacher-forced from EOS (fairseq's beginning
    of sentence, as --sample-break-mode eos trains it), its EOS counted as a
    token, padding never. Returns (nll, tokens)."""
    dictionary = lm.dictionary
    dataset = data_utils.load_indexed_dataset(f"{data_bin}/{split}", dictionary)
    if dataset is None:
        raise FileNotFoundError(f"{data_bin}: no binarized split {split!r}")
    lines = [dataset[i].long() for i in range(len(dataset))]
    total, count = 0.0, 0
    with evaluation_mode(lm.generator):
        for start in range(0, len(lines), batch_size):
            batch = lines[start:start + batch_size]
            targets = data_utils.collate_tokens(batch, dictionary.pad())
            inputs = data_utils.collate_tokens(batch, dictionary.pad(), eos_idx=dictionary.eos(),
                                               move_eos_to_beginning=True)
            batch_total, batch_count = summed_nll(lm.generator, inputs, targets, dictionary.pad())
            total += batch_total
            count += batch_count
    return total / count, count
