"""Two-token demonstration that scheduled sampling's objective is improper.

F. Huszar (2015), "How (not) to Train your Generative Model: Scheduled
Sampling, Likelihood, Adversary?", Section 2: data x = (x1, x2) ~ P over an
alphabet of K symbols, a tabular model Q(x1) Q(x2 | x1). Scheduled sampling
predicts x1 from the start symbol and x2 from a prefix that is the gold x1
with probability eps and otherwise the model's own sample x1_hat ~ Q(x1),
the sample treated as a constant (no gradient through the sampling
distribution). In expectation, with no Monte Carlo:

    J(Q) =       E_P[ log Q(x1) ]
         + eps * E_P[ log Q(x2 | x1) ]
         + (1 - eps) * E_{x ~ P} E_{x1_hat ~ sg(Q)(.)}[ log Q(x2 | x1_hat) ]

where sg(Q)(.) is Q(x1) held fixed (stop-gradient). The last term pairs
x1_hat with a gold x2 that is independent of it, so it equals
sum_a sg(Q)(a) sum_b P2(b) log Q(b | a). Row a of Q(x2 | x1) is therefore
a cross-entropy fit to the mixture eps P(a, .) + (1 - eps) sg(Q)(a) P2(.),
and the first term alone fixes Q(x1) = P1. At the fixed point sg(Q) = P1,
so the optimum is

    Q(x1) = P1(x1),   Q(x2 | x1) = eps P(x2 | x1) + (1 - eps) P2(x2):

the true joint P at eps = 1 (maximum likelihood), the product of marginals
P1 P2 at eps = 0, whatever the dependence in P. KL[P || Q_eps] =
E_P[-log(eps + (1 - eps) P2(x2) / P(x2 | x1))] is convex in eps with zero
value and zero slope at eps = 1, so it rises monotonically as eps -> 0, up to
the mutual information I(x1; x2) = KL[P || P1 P2].
"""

import numpy as np
import torch

F64 = torch.float64


def make_dependent_joint(alphabet_size=4, coupling=2.0, seed=1):
    """A seeded random joint P(x1, x2), [K, K] float64, with all entries
    positive. `coupling` adds logit mass on a random permutation x2 = pi(x1)
    so that x2 clearly depends on x1 (coupling 0: weak, chance dependence)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(alphabet_size, alphabet_size, generator=generator, dtype=F64)
    permutation = torch.randperm(alphabet_size, generator=generator)
    logits = logits + coupling * torch.eye(alphabet_size, dtype=F64)[permutation]
    return torch.softmax(logits.flatten(), dim=0).reshape(alphabet_size, alphabet_size)


def marginals(joint):
    """(P1(x1), P2(x2)) of a joint [K, K]."""
    return joint.sum(dim=1), joint.sum(dim=0)


def product_of_marginals(joint):
    """P1(x1) P2(x2) as a joint [K, K]."""
    first, second = marginals(joint)
    return first[:, None] * second[None, :]


def scheduled_sampling_objective(joint, eps, first_logits, second_logits):
    """J(Q) of the module docstring, exact in expectation over P and over the
    model's sample x1_hat, for Q(x1) = softmax(first_logits) [K] and
    Q(x2 | x1) = softmax(second_logits[x1]) [K, K]. The sampling distribution
    is detached: scheduled sampling does not differentiate through the sample."""
    first, second = marginals(joint)
    log_q_first = torch.log_softmax(first_logits, dim=0)
    log_q_second = torch.log_softmax(second_logits, dim=1)
    sampling = log_q_first.exp().detach()
    first_token = (first * log_q_first).sum()
    gold_prefix = (joint * log_q_second).sum()
    sampled_prefix = (sampling[:, None] * second[None, :] * log_q_second).sum()
    return first_token + eps * gold_prefix + (1 - eps) * sampled_prefix


def model_joint(first_logits, second_logits):
    """Q(x1, x2) = Q(x1) Q(x2 | x1) of the tabular model, [K, K]."""
    first = torch.softmax(first_logits, dim=0)
    return first[:, None] * torch.softmax(second_logits, dim=1)


def fit_scheduled_sampling(joint, eps, lr=0.2, max_steps=5000, grad_tol=1e-9):
    """Maximize J by full-batch Adam on the logits from zeros, the sampling
    distribution re-read from the current model (and detached) at every step,
    as scheduled sampling training does. Deterministic. Stops when every
    logit's gradient is below grad_tol; returns the model's joint Q [K, K]."""
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps is a probability, got {eps}")
    alphabet_size = joint.shape[0]
    first_logits = torch.zeros(alphabet_size, dtype=F64, requires_grad=True)
    second_logits = torch.zeros(alphabet_size, alphabet_size, dtype=F64, requires_grad=True)
    optimizer = torch.optim.Adam([first_logits, second_logits], lr=lr)
    for _ in range(max_steps):
        optimizer.zero_grad()
        (-scheduled_sampling_objective(joint, eps, first_logits, second_logits)).backward()
        largest_grad = max(first_logits.grad.abs().max(), second_logits.grad.abs().max())
        if largest_grad < grad_tol:
            return model_joint(first_logits, second_logits).detach()
        optimizer.step()
    raise RuntimeError(
        f"not converged in {max_steps} steps at eps={eps}: largest gradient {largest_grad:.2e}"
    )


def closed_form_optimum(joint, eps):
    """The joint of Q(x1) = P1(x1), Q(x2 | x1) = eps P(x2 | x1) + (1 - eps) P2(x2),
    i.e. eps P + (1 - eps) P1 P2."""
    return eps * joint + (1 - eps) * product_of_marginals(joint)


def kl_divergence(p, q):
    """KL[p || q] in nats between two joints of the same shape (0 log 0 = 0)."""
    support = p > 0
    return float((p[support] * (p[support] / q[support]).log()).sum())


def kl_curves(joint, eps_values, model_at):
    """KL[P || Q_eps] and KL[P1 P2 || Q_eps] for each eps, Q_eps = model_at(eps),
    as two numpy arrays."""
    product = product_of_marginals(joint)
    to_joint, to_product = [], []
    for eps in eps_values:
        model = model_at(eps)
        to_joint.append(kl_divergence(joint, model))
        to_product.append(kl_divergence(product, model))
    return np.array(to_joint), np.array(to_product)
