"""CoT's generator estimators grad J^0 and grad J^1 compared during a CoT run
(Lu et al., ICML 2019, Figure 3, on the synthetic oracle).

With L(s_t) = KL_t the step's KL of the generator G to the mediator M (fixed),

    grad J^gamma = E_{s~G} sum_t grad[gamma sg(L(s_t)) log G(s_t) + L(s_t)]

(`MediatorObjective.generator_loss`): grad J^1 is the exact gradient of
KL[G||M], grad J^0 its pathwise part, which CoT trains with. At a checkpoint
K mini-batches of B samples of G each give one estimate g^0_k of grad J^0 and
one g^1_k of grad J^1 (the same samples and one forward for both) over the
generator's D parameters, and

- cosine = cos(mean_k g^0_k, mean_k g^1_k), the similarity of the averaged
  estimators (Figure 3 (a)); the mean of K estimates still carries noise, so
  the cosine is below 1 from finite K as well as from the score term. The
  cosine between the means of the two halves of one estimator's K estimates
  gauges that noise;
- r_d = log Var_k[g^1_kd] - log Var_k[g^0_kd], natural log, per parameter
  dimension d (Figure 3 (b), "log variance reduction" of J^0 against J^1):
  r_d > 0 where dropping the score term lowers the variance. Dimensions whose
  estimates are all equal under either estimator (e.g. embeddings of words no
  sample contains) are left out.

The estimates are per sample (means over the B samples) with the mediator in
evaluation mode, so that only G's sampling makes them vary."""

import json
import math
import time
import warnings
from pathlib import Path

import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from fairseq_ot.synthetic.flags import GENERATOR_ARGS, MEDIATOR_ARGS
from fairseq_ot.modules.sampling import evaluation_mode
from fairseq_ot.paths import USER_DIR
from fairseq_ot.synthetic.evaluation import nll_oracle
from fairseq_ot.synthetic.lm_data import build_oracle_lm_data
from fairseq_ot.synthetic.oracle import OracleLSTM

# the quantiles of r_d over dimensions that the JSON and the figure report
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def build_cot(data_bin, *flags, seed=1):
    """(task, model, criterion) of `--criterion cot` on the synthetic test's
    generator and mediator, in-process; `flags` are further fairseq-train flags."""
    parser = options.get_training_parser()
    parsed = options.parse_args_and_arch(parser, [
        str(data_bin), "--user-dir", str(USER_DIR), "--cpu", *GENERATOR_ARGS, *MEDIATOR_ARGS,
        "--criterion", "cot", "--sample-break-mode", "eos", "--tokens-per-sample", "32",
        "--seed", str(seed), *flags,
    ])
    with warnings.catch_warnings():
        # Hydra's deprecation notices about how fairseq 0.12 calls it.
        warnings.simplefilter("ignore", UserWarning)
        cfg = convert_namespace_to_omegaconf(parsed)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(seed)
    model = task.build_model(cfg.model)
    return task, model, task.build_criterion(cfg.criterion)


def data_batches(task, batch_size, seed):
    """Training batches of the task's train split, epoch after epoch, forever."""
    task.load_dataset("train")
    iterator = task.get_batch_iterator(task.dataset("train"), max_sentences=batch_size, seed=seed)
    while True:
        yield from iterator.next_epoch_itr(shuffle=True)


def flat_gradient(loss, parameters, retain_graph=False):
    grads = torch.autograd.grad(loss, parameters, retain_graph=retain_graph)
    return torch.cat([g.reshape(-1) for g in grads])


def estimator_gradients(criterion, model, data_sample, num_batches, seed):
    """g^0 and g^1 [K, D] of the generator's parameters (float64), from K =
    `num_batches` fresh draws of G of `data_sample`'s size (the language
    model's sampler takes only the batch size from the data), plus the mean
    generator KL per sample over the draws."""
    parameters = list(model.generator.parameters())
    net_input, target = data_sample["net_input"], data_sample["target"]
    pathwise, exact, kls = [], [], []
    rng = torch.Generator().manual_seed(seed)
    # the mediator's dropout would add noise of its own
    with evaluation_mode(model):
        for _ in range(num_batches):
            samples, forced = criterion.draw_samples(model.generator, net_input, target.size(0), rng)
            terms = criterion.sequence_terms(model.generator, model.mediator, net_input, target,
                                             samples, forced, estimate=False, score=True)
            kl = terms["generator_kl"].mean()
            g0 = flat_gradient(kl, parameters, retain_graph=True).double()
            score = flat_gradient(terms["generator_score"].mean(), parameters).double()
            pathwise.append(g0)
            exact.append(g0 + score)
            kls.append(kl.item())
    return torch.stack(pathwise), torch.stack(exact), sum(kls) / len(kls)


def cosine(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def half_means_cosine(estimates):
    """cos between the means of the first and the second half of K estimates
    [K, D]: how well a mean of K/2 of them reproduces itself, the noise that
    limits the cosine of the two estimators' means."""
    half = len(estimates) // 2
    return cosine(estimates[:half].mean(0), estimates[half:].mean(0))


def compare_estimators(pathwise, exact):
    """Figure 3's two statistics of K estimates [K, D] of each estimator:
    the cosine of their means and the quantiles (and mean) over dimensions of
    r_d = log Var[g^1_d] - log Var[g^0_d]; and each estimator's
    `half_means_cosine`."""
    var0, var1 = pathwise.var(0), exact.var(0)
    varying = (var0 > 0) & (var1 > 0)
    ratio = var1[varying].log() - var0[varying].log()
    # no dimension varies (e.g. one draw per sample, its prefix fixed): NaN
    quantiles = (torch.quantile(ratio.float(), torch.tensor(QUANTILES)).tolist() if len(ratio)
                 else [math.nan] * len(QUANTILES))
    return {
        "cosine": cosine(pathwise.mean(0), exact.mean(0)),
        "cosine_halves_gamma_0": half_means_cosine(pathwise),
        "cosine_halves_gamma_1": half_means_cosine(exact),
        "log_var_ratio_mean": float(ratio.mean()),
        "log_var_ratio_quantiles": dict(zip((str(q) for q in QUANTILES), quantiles)),
        "fraction_lower_variance_at_gamma_0": float((ratio > 0).double().mean()),
        "dimensions": int(varying.sum()),
    }


def train_and_measure(work_dir, updates=200, interval=25, num_batches=16, batch_size=64,
                      oracle_samples=1000, seed=1, log=print):
    """Trains CoT on oracle data (built under work_dir once) for `updates`
    Adam steps on batches of `batch_size`, as the synthetic Turing test does,
    and every `interval` updates (and at the first and the last) measures the
    estimators on `num_batches` draws and the generator's NLL_oracle on
    `oracle_samples` samples. Returns the list of per-checkpoint records."""
    oracle = OracleLSTM.load_default()
    data_bin = Path(work_dir) / "data-bin"
    if not (data_bin / "train.bin").exists():
        data_bin = build_oracle_lm_data(oracle, work_dir, n_train=10000, n_valid=100, n_test=100)
    task, model, criterion = build_cot(data_bin, seed=seed)
    # one Adam for both, as the synthetic Turing test's fairseq-train runs
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    batches = data_batches(task, batch_size, seed)
    records, started = [], time.time()
    for update in range(updates + 1):
        sample = next(batches)
        if update % interval == 0 or update == updates:
            record = measure(criterion, model, sample, num_batches, oracle, oracle_samples,
                             seed + update, task.target_dictionary)
            record.update(update=update, seconds=round(time.time() - started, 1))
            records.append(record)
            log(json.dumps(record))
        if update < updates:
            train_step(criterion, model, optimizer, sample, update)
    return records


def train_step(criterion, model, optimizer, sample, update):
    """One update of generator and mediator by the criterion's loss."""
    model.train()
    criterion.set_num_updates(update)
    loss, _, _ = criterion(model, sample)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def measure(criterion, model, sample, num_batches, oracle, oracle_samples, seed, dictionary):
    """One checkpoint's record: `compare_estimators` of `num_batches` draws,
    the mean generator KL over them and the generator's NLL_oracle."""
    pathwise, exact, kl = estimator_gradients(criterion, model, sample, num_batches, seed)
    record = compare_estimators(pathwise, exact)
    record["generator_kl"] = kl
    torch.manual_seed(seed)  # the oracle scores the same draws whatever came before
    record["nll_oracle"] = nll_oracle(model.generator, dictionary, oracle, oracle_samples)
    return record
