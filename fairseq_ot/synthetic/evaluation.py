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
from fairseq.data import data_utils

from fairseq_ot.evaluation.lm_sampling import sample_batches, summed_nll
from fairseq_ot.modules.sampling import evaluation_mode
from fairseq_ot.synthetic.lm_data import fairseq_to_oracle_ids, oracle_id_table
from fairseq_ot.synthetic.oracle import SEQUENCE_LENGTH

ORACLE_ENTROPY_SEED = 4321


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
def sample_words(generator, dictionary, n, length=SEQUENCE_LENGTH, batch_size=1000, temperature=1.0):
    """n sequences of exactly `length` words drawn ancestrally from the
    generator at `temperature`, fairseq indices [n, length]. The special symbols are banned, so
    every draw is a word (the distribution renormalized over words) and the
    length limit `length + 1` puts the EOS, which is dropped, after them."""
    return torch.cat([tokens[:, :length] for tokens, _ in sample_batches(
        generator, dictionary, n, length + 1, temperature=temperature, banned=special_symbols(dictionary),
        batch_size=batch_size)])


def nll_oracle(generator, dictionary, oracle, n, length=SEQUENCE_LENGTH, batch_size=1000, temperature=1.0):
    """Mean per-token NLL (nats), under the oracle, of n generator samples of
    `length` words drawn at `temperature`."""
    words = sample_words(generator, dictionary, n, length, batch_size, temperature)
    return oracle.nll(fairseq_to_oracle_ids(words, oracle_id_table(dictionary)))


@torch.no_grad()
def nll_test(generator, dictionary, words, batch_size=1000, temperature=1.0):
    """The generator's teacher-forced mean per-token NLL (nats) of the word
    sequences `words` [n, length] (fairseq indices, no EOS): inputs are EOS
    (fairseq's beginning of sentence) and the words but the last. At
    `temperature` T the model scored is the one sampling at T draws from,
    softmax(z / T), as Caccia et al. (ICLR 2020) score tempered models."""
    total, count = 0.0, 0
    with evaluation_mode(generator):
        for batch in words.split(batch_size):
            start = torch.full_like(batch[:, :1], dictionary.eos())
            batch_total, batch_count = summed_nll(generator, torch.cat([start, batch[:, :-1]], dim=1), batch,
                                                  dictionary.pad(), temperature)
            total += batch_total
            count += batch_count
    return total / count


def oracle_reference(oracle, test_words_oracle_ids, n):
    """The oracle scored as a model: its entropy rate (NLL of n of its own
    fresh samples) and its NLL of the test set (oracle ids [n, length])."""
    samples = oracle.sample(n, seed=ORACLE_ENTROPY_SEED)
    return {"nll_oracle": oracle.nll(samples), "nll_test": oracle.nll(test_words_oracle_ids)}
