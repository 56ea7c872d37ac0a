"""Huszar's (2015) two-token critique of scheduled sampling: the optimum of
the scheduled-sampling objective (fitted by Adam with the stop-gradient on the
sampling distribution) is checked against the closed form
Q(x1) Q(x2 | x1) = P1(x1) (eps P(x2 | x1) + (1 - eps) P2(x2)), written here
again in numpy from the joint, and the objective itself against a brute-force
enumeration of (x1, x2, x1_hat)."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from fairseq_ot.analysis.scheduled_sampling_toy import (
    closed_form_optimum,
    fit_scheduled_sampling,
    kl_divergence,
    make_dependent_joint,
    scheduled_sampling_objective,
)

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "plot_scheduled_sampling_impropriety.py"
EPS_GRID = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
# Adam stops at gradients below 1e-9; the optimum is then this close in probability
FIT_ATOL = 1e-7


def numpy_ss_optimum(joint, eps):
    """P1(x1) (eps P(x2 | x1) + (1 - eps) P2(x2)) straight from the table."""
    first, second = joint.sum(axis=1), joint.sum(axis=0)
    conditional = joint / first[:, None]
    return first[:, None] * (eps * conditional + (1 - eps) * second[None, :])


def numpy_kl(p, q):
    return float(np.sum(p * np.log(p / q)))


def numpy_mutual_information(joint):
    return numpy_kl(joint, np.outer(joint.sum(axis=1), joint.sum(axis=0)))


@pytest.fixture(scope="module")
def joint():
    return make_dependent_joint()


@pytest.fixture(scope="module")
def fitted(joint):
    """The SS optimum found numerically for each eps of EPS_GRID, as numpy."""
    return {eps: fit_scheduled_sampling(joint, eps).numpy() for eps in EPS_GRID}


def test_joint_has_clear_dependence(joint):
    # otherwise P = P1 P2 and every eps would have the same optimum
    assert numpy_mutual_information(joint.numpy()) > 0.2


def test_objective_matches_enumeration_and_stops_gradient_through_sampling(joint):
    generator = torch.Generator().manual_seed(7)
    size = joint.shape[0]
    first_logits = torch.randn(size, generator=generator, dtype=torch.float64, requires_grad=True)
    second_logits = torch.randn(size, size, generator=generator, dtype=torch.float64)
    eps = 0.3
    objective = scheduled_sampling_objective(joint, eps, first_logits, second_logits)

    p = joint.numpy()
    q_first = torch.softmax(first_logits, 0).detach().numpy()
    q_second = torch.softmax(second_logits, 1).numpy()
    expected = 0.0
    for x1, x2, x1_hat in np.ndindex(size, size, size):
        # the coin: gold prefix x1 with probability eps, else the sample x1_hat
        log_second = eps * np.log(q_second[x1, x2]) + (1 - eps) * np.log(q_second[x1_hat, x2])
        expected += p[x1, x2] * q_first[x1_hat] * (np.log(q_first[x1]) + log_second)
    assert objective.item() == pytest.approx(expected, rel=1e-12)

    # with the sampling distribution detached, Q(x1) only sees the first token's
    # log-likelihood, whose gradient in the logits is P1 - Q(x1)
    objective.backward()
    np.testing.assert_allclose(first_logits.grad.numpy(), p.sum(axis=1) - q_first, atol=1e-12)


def test_teacher_forcing_optimum_is_the_data(joint, fitted):
    np.testing.assert_allclose(fitted[1.0], joint.numpy(), atol=FIT_ATOL)


def test_always_sampling_optimum_is_product_of_marginals(joint, fitted):
    p = joint.numpy()
    product = np.outer(p.sum(axis=1), p.sum(axis=0))
    np.testing.assert_allclose(fitted[0.0], product, atol=FIT_ATOL)
    assert np.abs(fitted[0.0] - p).max() > 0.05


@pytest.mark.parametrize("eps", EPS_GRID)
def test_fitted_optimum_equals_closed_form(joint, fitted, eps):
    expected = numpy_ss_optimum(joint.numpy(), eps)
    np.testing.assert_allclose(fitted[eps], expected, atol=FIT_ATOL)
    np.testing.assert_allclose(closed_form_optimum(joint, eps).numpy(), expected, atol=1e-15)


def test_kl_to_data_grows_as_eps_goes_to_zero(joint, fitted):
    p = joint.numpy()
    kl_to_data = np.array([numpy_kl(p, fitted[eps]) for eps in EPS_GRID])
    assert np.all(np.diff(kl_to_data) < 0), kl_to_data
    assert np.all(kl_to_data[:-1] > 1e-3), kl_to_data
    assert kl_to_data[-1] == pytest.approx(0.0, abs=1e-12)
    assert kl_to_data[0] == pytest.approx(numpy_mutual_information(p), rel=1e-6)
    # the module's KL, used by the script, agrees with the numpy one
    assert kl_divergence(joint, torch.from_numpy(fitted[0.5])) == pytest.approx(
        numpy_kl(p, fitted[0.5]), rel=1e-12
    )


def test_script_prints_the_kl_table_and_writes_the_png(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("plot_scheduled_sampling_impropriety", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    png = tmp_path / "impropriety.png"
    # another joint than the default, to see that the flags reach the fit
    size, coupling, seed = 3, 3.0, 5
    script.main([
        "--out", str(png), "--num-eps", "3",
        "--alphabet-size", str(size), "--coupling", str(coupling), "--seed", str(seed),
    ])

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    rows = np.array([
        [float(value) for value in line.split()]
        for line in capsys.readouterr().out.splitlines()
        if re.fullmatch(r"\s*[\d.]+(\s+-?[\d.]+){3}\s*", line)
    ])
    p = make_dependent_joint(size, coupling, seed).numpy()
    product = np.outer(p.sum(axis=1), p.sum(axis=0))
    expected = np.array([
        [eps, numpy_kl(p, numpy_ss_optimum(p, eps)), numpy_kl(p, numpy_ss_optimum(p, eps)),
         numpy_kl(product, numpy_ss_optimum(p, eps))]
        for eps in (0.0, 0.5, 1.0)
    ])
    # printed with 5 decimals
    np.testing.assert_allclose(rows, expected, atol=1e-5)
    assert rows[0, 1] == pytest.approx(numpy_mutual_information(p), abs=1e-5)
