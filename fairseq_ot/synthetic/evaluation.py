"""The two scores of the synthetic Turing test (SeqGAN, Yu et al. 2017; CoT,
Lu et al. 2019, Table 1) for a fairseq language model trained on oracle
samples:

- NLL_oracle: the oracle's mean per-token NLL of sequences of 20 words
  sampled from the model (sample quality; the oracle's own samples score its
  entropy rate, about 5.75 nats on the published oracle);
- NLL_test: the model's teacher-forced mean per-token NLL of held-out oracle
  samples (coverage of the data).

Both are in nats over the 20 word positions: the paper's sequences have no
EOS, so the prediction of fairseq's final EOS is left out."""

import torch
from fairseq import checkpoint_utils
from fairseq.data import data_utils

from fairseq_ot.modules.sampling import ancestral_sample, evaluation_mode
from fairseq_ot.synthetic.lm_data import fairseq_to_oracle_ids, oracle_id_table
from fairseq_ot.synthetic.oracle import SEQUENCE_LENGTH


def load_generator(checkpoint_path, data_bin=None):
    """(generator in eval mode, its dictionary, the updates that trained it,
    fairseq's cumulative training seconds at the save) from a checkpoint of a
    language-modeling or mediator task; the generator of a mediator task's
    model, the model itself otherwise. `data_bin` overrides the data folder
    recorded in the checkpoint."""
    overrides = {"data": str(data_bin)} if data_bin is not None else None
    state = checkpoint_utils.load_checkpoint_to_cpu(str(checkpoint_path), overrides)
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint_path)], arg_overrides=overrides, state=state
    )
    generator = getattr(models[0], "generator", models[0]).eval()
    num_updates = state["optimizer_history"][-1]["num_updates"]
    training_seconds = state["extra_state"]["previous_training_time"]
    return generator, task.target_dictionary, num_updates, training_seconds


def load_split_words(data_bin, split, dictionary, length=SEQUENCE_LENGTH):
    """The binarized sequences of a split without their EOS, fairseq indices
    [n, length]; every line must hold exactly `length` words."""
    dataset = data_utils.load_indexed_dataset(f"{data_bin}/{split}", dictionary)
    if dataset is None:
        raise FileNotFoundError(f"no binarized split {split!r} in {data_bin}")
    lines = [dataset[i] for i in range(len(dataset))]
    if any(len(line) != length + 1 or line[-1] != dictionary.eos() for line in lines):
        raise ValueError(f"{data_bin}/{split}: every line must be {length} words and EOS")
    return torch.stack([line[:-1] for line in lines]).long()


def special_symbols(dictionary):
    return (dictionary.pad(), dictionary.bos(), dictionary.eos(), dictionary.unk())


@torch.no_grad()
def sample_words(generator, dictionary, n, length=SEQUENCE_LENGTH, batch_size=1000):
    """n sequences of exactly `length` words drawn ancestrally from the
    generator, fairseq indices [n, length]. The special symbols are banned, so
    every draw is a word (the distribution renormalized over words) and the
    length limit `length + 1` puts the EOS, which is dropped, after them."""
    batches = []
    with evaluation_mode(generator):
        for start in range(0, n, batch_size):
            limits = torch.full((min(batch_size, n - start),), length + 1)
            tokens, _ = ancestral_sample(generator, limits, dictionary.eos(), dictionary.pad(),
                                         special_symbols(dictionary))
            batches.append(tokens[:, :length])
    return torch.cat(batches)


def nll_oracle(generator, dictionary, oracle, n, length=SEQUENCE_LENGTH, batch_size=1000):
    """Mean per-token NLL (nats), under the oracle, of n generator samples of
    `length` words."""
    words = sample_words(generator, dictionary, n, length, batch_size)
    return oracle.nll(fairseq_to_oracle_ids(words, oracle_id_table(dictionary)))


@torch.no_grad()
def nll_test(generator, dictionary, words, batch_size=1000):
    """The generator's teacher-forced mean per-token NLL (nats) of the word
    sequences `words` [n, length] (fairseq indices, no EOS): inputs are EOS
    (fairseq's beginning of sentence) and the words but the last."""
    total, count = 0.0, 0
    with evaluation_mode(generator):
        for batch in words.split(batch_size):
            start = torch.full_like(batch[:, :1], dictionary.eos())
            net_output = generator(torch.cat([start, batch[:, :-1]], dim=1))
            log_probs = generator.get_normalized_probs(net_output, log_probs=True)
            total -= log_probs.gather(2, batch.unsqueeze(2)).double().sum().item()
            count += batch.numel()
    return total / count
