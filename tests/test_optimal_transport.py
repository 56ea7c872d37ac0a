"""Unit tests of the batched OT solvers (IPOT, Sinkhorn) and the soft-embedding
OT distance, each checked against an independent oracle: POT's exact
network-simplex solver (ot.emd2), a plain numpy transcription of IPOT,
finite differences (gradcheck), or closed forms computed in numpy."""

import numpy as np
import ot as pot
import pytest
import torch

from fairseq_ot.ot import (
    OTResult,
    cosine_cost,
    ipot,
    sequence_ot_distance,
    sinkhorn,
    soft_embed,
    solve_ot,
    uniform_marginals,
)

F64 = torch.float64


def random_problem(rng, n, m, uniform=False, low=0.0, high=2.0):
    """Cost in [low, high] and marginals summing to 1, all float64 numpy."""
    cost = rng.uniform(low, high, (n, m))
    if uniform:
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    else:
        a, b = rng.uniform(0.05, 1.0, n), rng.uniform(0.05, 1.0, m)
        a, b = a / a.sum(), b / b.sum()
    return cost, a, b


def batched(cost, a, b):
    """One numpy problem as a B=1 float64 torch batch."""
    return (torch.tensor(cost)[None], torch.tensor(a)[None], torch.tensor(b)[None])


def pad_batch(problems, fill):
    """Stack problems of different sizes into [B, n, m], padding the cost with
    garbage `fill(shape)` and the marginals with zeros."""
    n = max(c.shape[0] for c, _, _ in problems)
    m = max(c.shape[1] for c, _, _ in problems)
    cost = torch.tensor(fill((len(problems), n, m)), dtype=F64)
    a = torch.zeros(len(problems), n, dtype=F64)
    b = torch.zeros(len(problems), m, dtype=F64)
    for k, (c, ak, bk) in enumerate(problems):
        cost[k, : c.shape[0], : c.shape[1]] = torch.tensor(c)
        a[k, : len(ak)] = torch.tensor(ak)
        b[k, : len(bk)] = torch.tensor(bk)
    return cost, a, b


# ---------------------------------------------------------------------------
# 1. Convergence to the exact OT distance
# ---------------------------------------------------------------------------

EMD_CASES = [(seed, uniform) for seed in range(6) for uniform in (False, True)]


@pytest.mark.parametrize("seed,uniform", EMD_CASES)
def test_ipot_matches_exact_emd(seed, uniform):
    # IPOT is a proximal point method: with enough outer steps it reaches the
    # *unregularized* optimum. beta=0.5, 1000 iters: observed max error ~2e-5
    # over 20 random problems (n, m in 3..12, costs in [0, 2]); 1e-3 is
    # a ~50x margin yet far below the gap to a non-optimal plan.
    rng = np.random.default_rng(seed)
    n, m = rng.integers(3, 13, size=2)
    cost, a, b = random_problem(rng, n, m, uniform)
    result = ipot(*batched(cost, a, b), beta=0.5, iters=1000)
    assert isinstance(result, OTResult)
    assert result.distance.dtype == F64  # float64 in, float64 out
    assert result.distance.item() == pytest.approx(pot.emd2(a, b, cost), abs=1e-3)
    # The plan is feasible: its marginals are a and b.
    np.testing.assert_allclose(result.plan[0].sum(1).numpy(), a, atol=1e-3)
    np.testing.assert_allclose(result.plan[0].sum(0).numpy(), b, atol=1e-9)


@pytest.mark.parametrize("seed,uniform", EMD_CASES)
def test_sinkhorn_small_epsilon_close_to_exact_emd(seed, uniform):
    # Entropic OT is biased by O(epsilon); eps=0.01, 2000 sweeps: observed
    # max error ~1e-3 over 20 problems, so 5e-3 is the (looser) bound.
    rng = np.random.default_rng(100 + seed)
    n, m = rng.integers(3, 13, size=2)
    cost, a, b = random_problem(rng, n, m, uniform)
    result = sinkhorn(*batched(cost, a, b), epsilon=0.01, iters=2000)
    assert result.distance.item() == pytest.approx(pot.emd2(a, b, cost), abs=5e-3)


# ---------------------------------------------------------------------------
# 2. IPOT against a literal numpy transcription of the algorithm
# ---------------------------------------------------------------------------


def ipot_reference(cost, a, b, beta, iters, inner_iters):
    """Xie et al. (2019), Algorithm 1, in float64 numpy exactly as written."""
    A = np.exp(-cost / beta)
    T = np.ones_like(cost)
    sigma = b.copy()
    for _ in range(iters):
        Q = A * T
        for _ in range(inner_iters):
            delta = a / (Q @ sigma)
            sigma = b / (Q.T @ delta)
        T = np.diag(delta) @ Q @ np.diag(sigma)
    return T, float(np.sum(T * cost))


@pytest.mark.parametrize("inner_iters", [1, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ipot_matches_numpy_transcription(seed, inner_iters):
    # The module shifts C by its minimum before exp (exact in real arithmetic)
    # and batches the products, so only float64 rounding may differ: 1e-6
    # relative leaves many orders of magnitude of slack.
    rng = np.random.default_rng(200 + seed)
    cost, a, b = random_problem(rng, 5 + seed, 7 - seed)
    plan_ref, dist_ref = ipot_reference(cost, a, b, beta=0.5, iters=50, inner_iters=inner_iters)
    result = ipot(*batched(cost, a, b), beta=0.5, iters=50, inner_iters=inner_iters)
    np.testing.assert_allclose(result.plan[0].numpy(), plan_ref, rtol=1e-6, atol=1e-12)
    assert result.distance.item() == pytest.approx(dist_ref, rel=1e-6)
    # solve_ot dispatches to the same computation.
    via_solve = solve_ot(*batched(cost, a, b), "ipot", beta=0.5, iters=50, inner_iters=inner_iters)
    torch.testing.assert_close(via_solve.plan, result.plan, rtol=0, atol=0)


# ---------------------------------------------------------------------------
# 3. Padding invariance
# ---------------------------------------------------------------------------

SOLVER_KWARGS = {
    "ipot": dict(beta=0.5, iters=50),
    "sinkhorn": dict(epsilon=0.1, iters=50),
}
SOLVER_FNS = {"ipot": ipot, "sinkhorn": sinkhorn}
GARBAGE = {
    "1e3": lambda shape: np.full(shape, 1e3),
    "random": lambda shape: np.random.default_rng(7).uniform(-50.0, 50.0, shape),
}


@pytest.mark.parametrize("garbage", sorted(GARBAGE))
@pytest.mark.parametrize("solver", sorted(SOLVER_FNS))
def test_padding_invariance(solver, garbage):
    # Padding must be invisible: each problem's plan and distance are those of
    # the problem solved alone, and an all-padding problem yields 0 without
    # disturbing its neighbours.
    rng = np.random.default_rng(300)
    sizes = [(3, 4), (7, 5), (1, 6), (6, 6)]
    problems = [random_problem(rng, n, m, uniform=(k % 2 == 0)) for k, (n, m) in enumerate(sizes)]
    cost, a, b = pad_batch(problems, GARBAGE[garbage])
    empty = len(problems)  # append an all-padding problem
    cost = torch.cat([cost, torch.tensor(GARBAGE[garbage]((1,) + cost.shape[1:]))])
    a = torch.cat([a, torch.zeros(1, a.shape[1], dtype=F64)])
    b = torch.cat([b, torch.zeros(1, b.shape[1], dtype=F64)])

    fn, kwargs = SOLVER_FNS[solver], SOLVER_KWARGS[solver]
    padded = fn(cost, a, b, **kwargs)
    for k, (c, ak, bk) in enumerate(problems):
        n, m = c.shape
        alone = fn(*batched(c, ak, bk), **kwargs)
        np.testing.assert_allclose(padded.plan[k, :n, :m].numpy(), alone.plan[0].numpy(), rtol=1e-9, atol=1e-15)
        assert padded.distance[k].item() == pytest.approx(alone.distance.item(), rel=1e-9)
        # Exactly zero mass on padded rows/columns.
        assert (padded.plan[k, n:, :] == 0).all() and (padded.plan[k, :, m:] == 0).all()
    assert padded.distance[empty].item() == 0.0
    assert torch.isfinite(padded.plan[empty]).all()
    assert (padded.plan[empty] == 0).all()


@pytest.mark.parametrize("solver", sorted(SOLVER_FNS))
def test_padding_with_large_real_costs_stays_finite(solver):
    # Regression: the kernel used to be exp(-(C - min C) / reg) on *all*
    # entries with padded costs zeroed, i.e. exp(min C / reg) = inf on padding
    # when the real costs are well above 0 (cosine costs ~1, small epsilon,
    # float32), giving inf * 0 = NaN. The padded result must equal the
    # unpadded one.
    cost = torch.tensor([[[1.0, 1.5], [1.5, 1.0]]])
    a = torch.tensor([[0.5, 0.5]])
    padded_cost = torch.zeros(1, 3, 3)
    padded_cost[0, :2, :2] = cost[0]
    padded_a = torch.tensor([[0.5, 0.5, 0.0]])
    fn = SOLVER_FNS[solver]
    reg = {"ipot": "beta", "sinkhorn": "epsilon"}[solver]
    alone = fn(cost, a, a, **{reg: 0.01})
    padded = fn(padded_cost, padded_a, padded_a, **{reg: 0.01})
    assert alone.distance.item() == pytest.approx(1.0, abs=1e-5)  # diagonal plan
    torch.testing.assert_close(padded.distance, alone.distance)
    torch.testing.assert_close(padded.plan[:, :2, :2], alone.plan)


# ---------------------------------------------------------------------------
# 4. Gradients
# ---------------------------------------------------------------------------


def small_batch(seed, batch=3, n=5, m=6):
    g = torch.Generator().manual_seed(seed)
    cost = 2 * torch.rand(batch, n, m, dtype=F64, generator=g)
    a = torch.rand(batch, n, dtype=F64, generator=g) + 0.1
    b = torch.rand(batch, m, dtype=F64, generator=g) + 0.1
    return cost, a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)


def cost_grad(fn, cost, a, b, **kwargs):
    cost = cost.clone().requires_grad_()
    result = fn(cost, a, b, **kwargs)
    (grad,) = torch.autograd.grad(result.distance.sum(), cost)
    return grad, result


def test_ipot_envelope_matches_unrolled_at_convergence():
    # At IPOT's fixed point (the exact OT plan) the plan is locally constant in
    # C, so d<T, C>/dC -> T. Observed max difference 7e-5 after 1000 iters
    # (4e-2 after 50), so 1e-3 shows the unrolled gradient has converged.
    cost, a, b = small_batch(0)
    env, _ = cost_grad(ipot, cost, a, b, beta=0.5, iters=1000, gradient="envelope")
    unr, _ = cost_grad(ipot, cost, a, b, beta=0.5, iters=1000, gradient="unrolled")
    torch.testing.assert_close(unr, env, rtol=0, atol=1e-3)


def test_sinkhorn_unrolled_gradient_of_entropic_objective_is_plan():
    # Sinkhorn's plan minimizes <T, C> - eps * H(T), not <T, C>, so the
    # envelope theorem applies to the entropic objective: differentiating it
    # through the unrolled iterations must give the (envelope) plan.
    eps = 0.1
    cost, a, b = small_batch(1)
    leaf = cost.clone().requires_grad_()
    plan = sinkhorn(leaf, a, b, epsilon=eps, iters=500, gradient="unrolled").plan
    objective = (plan * leaf).sum() + eps * (plan * (plan.log() - 1)).sum()
    (grad,) = torch.autograd.grad(objective, leaf)
    envelope_plan = sinkhorn(cost, a, b, epsilon=eps, iters=500, gradient="envelope").plan
    torch.testing.assert_close(grad, envelope_plan, rtol=0, atol=1e-8)


@pytest.mark.parametrize("solver", sorted(SOLVER_FNS))
def test_envelope_gradient_is_detached_plan(solver):
    cost, a, b = small_batch(2)
    a[1, -2:] = 0.0  # a padded problem: zero plan and zero gradient there
    a = a / a.sum(1, keepdim=True)
    grad, result = cost_grad(SOLVER_FNS[solver], cost, a, b, gradient="envelope")
    assert not result.plan.requires_grad
    torch.testing.assert_close(grad, result.plan, rtol=0, atol=0)
    assert (grad[1, -2:] == 0).all()


@pytest.mark.parametrize("solver", sorted(SOLVER_FNS))
def test_unrolled_gradcheck(solver):
    # Finite differences of distance(C) vs autograd through the iterations,
    # including a padded problem (its padded entries must get zero gradient).
    cost, a, b = small_batch(3, batch=2, n=3, m=4)
    a[1, -1] = 0.0
    a = a / a.sum(1, keepdim=True)
    fn = SOLVER_FNS[solver]
    reg = {"ipot": "beta", "sinkhorn": "epsilon"}[solver]

    def distance(c):
        return fn(c, a, b, **{reg: 0.5}, iters=20, gradient="unrolled").distance

    assert torch.autograd.gradcheck(distance, (cost.clone().requires_grad_(),), eps=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# 5. Half precision and autocast
# ---------------------------------------------------------------------------


def cosine_problem(seed=0, batch=4, n=7, m=9, d=16):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(batch, n, d, generator=g), torch.randn(batch, m, d, generator=g)
    cost = cosine_cost(x, y)
    a = uniform_marginals(torch.ones(batch, n, dtype=torch.bool))
    b = uniform_marginals(torch.ones(batch, m, dtype=torch.bool))
    return cost, a, b


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("solver", sorted(SOLVER_FNS))
def test_half_precision_costs(solver, dtype):
    cost, a, b = cosine_problem()
    half = cost.to(dtype)
    reference = solve_ot(cost, a, b, solver)
    result = solve_ot(half, a, b, solver)
    assert result.distance.dtype == torch.float32 and result.plan.dtype == torch.float32
    assert torch.isfinite(result.plan).all() and torch.isfinite(result.distance).all()
    # The solver upcasts first: identical to float32 on the rounded costs.
    torch.testing.assert_close(result.distance, solve_ot(half.float(), a, b, solver).distance, rtol=0, atol=0)
    # Against the unrounded costs: a unit-mass plan moves the distance by at
    # most ~max|dC| <= finfo.eps * max|C| (2x the rounding bound; observed
    # ~0.15 of it).
    bound = torch.finfo(dtype).eps * float(cost.abs().max())
    torch.testing.assert_close(result.distance, reference.distance, rtol=0, atol=bound)


@pytest.mark.parametrize("solver", sorted(SOLVER_FNS))
def test_autocast_bfloat16_keeps_float32(solver):
    cost, a, b = cosine_problem(1)
    reference = solve_ot(cost, a, b, solver)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = solve_ot(cost, a, b, solver)
    assert result.distance.dtype == torch.float32 and result.plan.dtype == torch.float32
    torch.testing.assert_close(result.distance, reference.distance, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(result.plan, reference.plan, rtol=1e-6, atol=1e-7)


def test_autocast_bfloat16_sequence_distance_and_cosine_cost():
    # cosine_cost promises float32; under autocast, bmm would otherwise run in
    # bfloat16 and round the costs.
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 5, 8, generator=g), torch.randn(2, 6, 8, generator=g)
    mx, my = torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 6, dtype=torch.bool)
    reference_cost = cosine_cost(x, y)
    reference = sequence_ot_distance(x, mx, y, my)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cost = cosine_cost(x, y)
        distance = sequence_ot_distance(x, mx, y, my)
    assert cost.dtype == torch.float32 and distance.dtype == torch.float32
    torch.testing.assert_close(cost, reference_cost, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(distance, reference, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------
# 6. Bad input and extreme regularization
# ---------------------------------------------------------------------------


def _ok_inputs():
    cost, a, b = small_batch(4, batch=2, n=3, m=4)
    return cost, a, b


BAD_CALLS = {
    "beta_zero": (lambda c, a, b: ipot(c, a, b, beta=0.0), "beta"),
    "beta_negative": (lambda c, a, b: ipot(c, a, b, beta=-1.0), "beta"),
    "beta_nan": (lambda c, a, b: ipot(c, a, b, beta=float("nan")), "beta"),
    "epsilon_zero": (lambda c, a, b: sinkhorn(c, a, b, epsilon=0.0), "epsilon"),
    "iters_zero": (lambda c, a, b: ipot(c, a, b, iters=0), "iters"),
    "iters_fractional": (lambda c, a, b: sinkhorn(c, a, b, iters=2.5), "iters"),
    "inner_iters_zero": (lambda c, a, b: ipot(c, a, b, inner_iters=0), "inner_iters"),
    "unknown_solver": (lambda c, a, b: solve_ot(c, a, b, solver="emd"), "solver"),
    "unknown_gradient": (lambda c, a, b: ipot(c, a, b, gradient="implicit"), "gradient"),
    "unknown_gradient_sk": (lambda c, a, b: sinkhorn(c, a, b, gradient="implicit"), "gradient"),
    "a_wrong_shape": (lambda c, a, b: ipot(c, a[:, :2], b), "marginals"),
    "b_wrong_shape": (lambda c, a, b: sinkhorn(c, a, b[:1]), "marginals"),
    "a_negative": (lambda c, a, b: ipot(c, a - 0.5, b), "marginals"),
    "b_negative": (lambda c, a, b: sinkhorn(c, a, -b), "marginals"),
    "cost_not_3d": (lambda c, a, b: ipot(c[0], a, b), "cost"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_raises_value_error(case):
    call, mentions = BAD_CALLS[case]
    with pytest.raises(ValueError, match=mentions):
        call(*_ok_inputs())


@pytest.mark.parametrize("solver", sorted(SOLVER_FNS))
def test_huge_regularization_gives_independent_coupling(solver):
    # As beta -> inf the kernel -> 1 and one balancing gives T = a b^T. IPOT's
    # N proximal steps compound to an effective regularization beta / N, so the
    # relative deviation is ~N * max C / beta = 1e-4 (observed 1.2e-5) for
    # the default 50 iterations; 1e-3 still separates it from the optimal
    # distance, which is 1.5-2.6x smaller here.
    cost, a, b = small_batch(5)
    expected = torch.einsum("bi,bj,bij->b", a, b, cost)
    result = solve_ot(cost, a, b, solver, beta=1e6)
    assert torch.isfinite(result.distance).all()
    torch.testing.assert_close(result.distance, expected, rtol=1e-3, atol=0)
    exact = torch.tensor([pot.emd2(a[k].numpy(), b[k].numpy(), cost[k].numpy()) for k in range(len(cost))])
    assert (expected - exact > 1e-2 * expected).all()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("solver", sorted(SOLVER_FNS))
def test_underflowing_regularization_raises_instead_of_nan(solver, dtype):
    # With beta=1e-4 and costs spread over [0, 2], exp(-(C - min C)/beta)
    # underflows to 0 for whole rows, so 0/0 appears. The solver must not
    # return NaN; it raises a FloatingPointError that names the cause.
    cost, a, b = small_batch(6)
    with pytest.raises(FloatingPointError, match="underflows"):
        solve_ot(cost.to(dtype), a, b, solver, beta=1e-4)


# ---------------------------------------------------------------------------
# 7. Soft embeddings and the sequence-level distance
# ---------------------------------------------------------------------------


def numpy_cosine_cost(x, y):
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    y = y / np.linalg.norm(y, axis=-1, keepdims=True)
    return 1.0 - x @ y.T


def test_cosine_cost_matches_numpy():
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(3, 4, 10, generator=g), torch.randn(3, 6, 10, generator=g)
    cost = cosine_cost(x, y)
    assert cost.shape == (3, 4, 6) and cost.dtype == torch.float32
    for k in range(3):
        expected = numpy_cosine_cost(x[k].double().numpy(), y[k].double().numpy())
        np.testing.assert_allclose(cost[k].numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("solver,args", [("ipot", dict(beta=0.5, iters=1000)), ("sinkhorn", dict(beta=0.01, iters=2000))])
def test_sequence_ot_distance_matches_emd_on_real_tokens(solver, args):
    # Masked tokens must be ignored and the real ones get uniform mass, so the
    # result is emd2 on the real-token cosine costs. IPOT: observed error
    # ~1e-7 (float32 costs), tolerance 1e-4; Sinkhorn: O(eps) bias, 5e-3.
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(4, 7, 16, generator=g), torch.randn(4, 9, 16, generator=g)
    x_len, y_len = [7, 5, 1, 4], [9, 9, 3, 2]
    mx = torch.arange(7)[None] < torch.tensor(x_len)[:, None]
    my = torch.arange(9)[None] < torch.tensor(y_len)[:, None]
    x[~mx] = 100.0  # garbage in masked positions must not matter
    distance = sequence_ot_distance(x, mx, y, my, solver=solver, **args)
    for k in range(4):
        xk, yk = x[k, : x_len[k]].double().numpy(), y[k, : y_len[k]].double().numpy()
        uni_x, uni_y = np.full(x_len[k], 1.0 / x_len[k]), np.full(y_len[k], 1.0 / y_len[k])
        expected = pot.emd2(uni_x, uni_y, numpy_cosine_cost(xk, yk))
        tol = 1e-4 if solver == "ipot" else 5e-3
        assert distance[k].item() == pytest.approx(expected, abs=tol)


@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_soft_embed_is_tempered_softmax_of_logits(tau):
    # soft_embed receives log-probabilities but must equal the tempered softmax
    # of the raw logits (they differ by a per-position constant).
    g = torch.Generator().manual_seed(9)
    logits = 3 * torch.randn(2, 5, 11, generator=g)
    embedding = torch.randn(11, 6, generator=g)
    lprobs = torch.log_softmax(logits, dim=-1)
    z = logits.double().numpy() / tau
    z = np.exp(z - z.max(-1, keepdims=True))
    expected = (z / z.sum(-1, keepdims=True)) @ embedding.double().numpy()
    result = soft_embed(lprobs, embedding, tau)
    assert result.shape == (2, 5, 6) and result.dtype == torch.float32
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_uniform_marginals():
    mask = torch.tensor([[True, True, False, False], [False, False, False, False], [True, True, True, True]])
    expected = torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0, 0], [0.25] * 4])
    torch.testing.assert_close(uniform_marginals(mask), expected)
