"""Batched entropic optimal transport: IPOT and Sinkhorn.

Both solvers take a batch of cost matrices C [B, n, m] and marginals
a [B, n], b [B, m] that put zero mass on padded rows and columns. A problem
whose marginals are all zero (an empty sentence) gets a zero plan and a zero
distance. The iterations run in float32 (or the input's wider dtype) with
autocast off, because exp(-C / beta) and the reciprocal scalings under- and
overflow in half precision.

IPOT: Xie et al., "A Fast Proximal Point Method for Computing Exact
Wasserstein Distance" (UAI 2019), as used by Chen et al. (ICLR 2019).
"""

from typing import NamedTuple

import torch
from torch import Tensor

SOLVERS = ("ipot", "sinkhorn")
GRADIENT_MODES = ("unrolled", "envelope")


class OTResult(NamedTuple):
    plan: Tensor  # [B, n, m]
    distance: Tensor  # [B], <plan, C>


def uniform_marginals(mask: Tensor) -> Tensor:
    """Uniform mass over the True entries of a [B, n] mask, zero elsewhere."""
    mask = mask.to(torch.float32)
    return mask / mask.sum(-1, keepdim=True).clamp_min(1.0)


def ipot(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    beta: float = 0.5,
    iters: int = 50,
    inner_iters: int = 1,
    gradient: str = "envelope",
) -> OTResult:
    """Inexact proximal point OT: `iters` proximal steps of size `beta`, each
    solved approximately by `inner_iters` Sinkhorn balancing sweeps.
    Converges to the exact (unregularized) OT plan as `iters` grows."""
    _check_positive(inner_iters=inner_iters)

    def plan_fn(kernel, a, b, row_valid, col_valid):
        plan = torch.ones_like(kernel)
        sigma = b
        for _ in range(iters):
            q = kernel * plan
            delta, sigma = _balance(q, a, b, sigma, row_valid, col_valid, inner_iters)
            plan = delta.unsqueeze(2) * q * sigma.unsqueeze(1)
        return plan

    return _solve("ipot", cost, a, b, beta, iters, gradient, plan_fn)


def sinkhorn(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    epsilon: float = 0.1,
    iters: int = 50,
    gradient: str = "envelope",
) -> OTResult:
    """Entropy-regularized OT (Cuturi 2013) by `iters` Sinkhorn sweeps; the
    returned distance is the transport cost <T, C> without the entropy."""

    def plan_fn(kernel, a, b, row_valid, col_valid):
        delta, sigma = _balance(kernel, a, b, b, row_valid, col_valid, iters)
        return delta.unsqueeze(2) * kernel * sigma.unsqueeze(1)

    return _solve("sinkhorn", cost, a, b, epsilon, iters, gradient, plan_fn)


def solve_ot(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    solver: str = "ipot",
    beta: float = 0.5,
    iters: int = 50,
    inner_iters: int = 1,
    gradient: str = "envelope",
) -> OTResult:
    """Dispatch to `ipot` or `sinkhorn`; for Sinkhorn `beta` is epsilon."""
    if solver == "ipot":
        return ipot(cost, a, b, beta, iters, inner_iters, gradient)
    if solver == "sinkhorn":
        return sinkhorn(cost, a, b, beta, iters, gradient)
    raise ValueError(f"unknown OT solver {solver!r}; choose one of {SOLVERS}")


def _balance(kernel, a, b, sigma, row_valid, col_valid, sweeps):
    """Sinkhorn sweeps: scale rows to mass a, then columns to mass b."""
    for _ in range(sweeps):
        row_mass = torch.matmul(kernel, sigma.unsqueeze(2)).squeeze(2)
        delta = a / _ones_where_invalid(row_mass, row_valid)
        col_mass = torch.matmul(kernel.transpose(1, 2), delta.unsqueeze(2)).squeeze(2)
        sigma = b / _ones_where_invalid(col_mass, col_valid)
    return delta, sigma


def _ones_where_invalid(denominator, valid):
    # Padded rows/columns have zero mass and zero denominators: 0/1 keeps both
    # the value and its gradient finite, where 0/0 would poison the batch.
    return torch.where(valid, denominator, torch.ones_like(denominator))


def _solve(name, cost, a, b, reg, iters, gradient, plan_fn) -> OTResult:
    _check_inputs(name, cost, a, b, reg, iters, gradient)
    dtype = torch.promote_types(cost.dtype, torch.float32)
    with torch.autocast(device_type=cost.device.type, enabled=False):
        cost = cost.to(dtype)
        nonempty = ((a > 0).any(1) & (b > 0).any(1)).unsqueeze(1)
        a = torch.where(nonempty, a.to(dtype), 0.0)
        b = torch.where(nonempty, b.to(dtype), 0.0)
        row_valid, col_valid = a > 0, b > 0
        pair_valid = row_valid.unsqueeze(2) & col_valid.unsqueeze(1)
        cost = cost.masked_fill(~pair_valid, 0.0)

        def plan_of(cost):
            # A constant shift of C rescales the kernel, which the balancing
            # absorbs exactly; shifting to a zero minimum avoids overflow.
            shift = cost.masked_fill(~pair_valid, float("inf")).amin((1, 2), keepdim=True)
            shift = torch.where(torch.isfinite(shift), shift, 0.0).detach()
            # Padded pairs get a zero kernel: their cost was zeroed above, so
            # exp(shift / reg) there can overflow to inf, and inf * 0 mass = NaN.
            exponent = (-(cost - shift) / reg).masked_fill(~pair_valid, float("-inf"))
            kernel = torch.exp(exponent)
            return plan_fn(kernel, a, b, row_valid, col_valid)

        if gradient == "envelope":
            with torch.no_grad():
                plan = plan_of(cost.detach())
        else:
            plan = plan_of(cost)
        distance = (plan * cost).sum((1, 2))
    if not bool(torch.isfinite(distance).all()):
        if not bool(torch.isfinite(cost).all()):
            raise FloatingPointError(f"{name}: non-finite costs (NaN or inf in the inputs)")
        raise FloatingPointError(
            f"{name}: non-finite OT distance (regularization {reg}, cost range "
            f"{float(cost.min()):.3g}..{float(cost.max()):.3g}); exp(-C/{reg}) "
            "underflows: use a larger beta/epsilon or smaller costs"
        )
    return OTResult(plan, distance)


def _check_inputs(name, cost, a, b, reg, iters, gradient):
    if cost.dim() != 3:
        raise ValueError(f"{name}: cost must be [B, n, m], got shape {tuple(cost.shape)}")
    batch, n, m = cost.shape
    if tuple(a.shape) != (batch, n) or tuple(b.shape) != (batch, m):
        raise ValueError(
            f"{name}: marginals must be [B, n]={batch, n} and [B, m]={batch, m}, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if not (reg > 0):
        raise ValueError(f"{name}: regularization (beta/epsilon) must be > 0, got {reg}")
    _check_positive(iters=iters)
    if gradient not in GRADIENT_MODES:
        raise ValueError(f"{name}: gradient must be one of {GRADIENT_MODES}, got {gradient!r}")
    if bool((a < 0).any()) or bool((b < 0).any()):
        raise ValueError(f"{name}: marginals must be non-negative")


def _check_positive(**values):
    for key, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value}")
