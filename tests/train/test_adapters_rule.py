"""LoRA-SP's energy rule and auxiliary losses against brute-force references."""

import math
from fractions import Fraction

import pytest
import torch

from train.adapters.lora_sp import balance_loss, energy_select, spectral_loss, z_loss

ETAS = (0.5, 0.9, 0.99, 1.0)


def brute_force_k(row: list[float], eta: float) -> int:
    """The paper's rule read literally, in exact rational arithmetic: the smallest k whose
    k largest squared scores hold at least eta of the total energy (0 if all are zero)."""
    energies = sorted((Fraction(v) ** 2 for v in row), reverse=True)
    total = sum(energies)
    if total == 0:
        return 0
    for k in range(1, len(energies) + 1):
        if sum(energies[:k]) >= Fraction(str(eta)) * total:  # eta as the decimal it is written as
            return k
    raise AssertionError("E(r) = 1 always reaches eta <= 1")


def check_against_reference(scores: torch.Tensor, eta: float) -> None:
    sel = energy_select(scores, eta)
    for row, k, mask in zip(scores.tolist(), sel.k.tolist(), sel.mask, strict=True):
        assert k == brute_force_k(row, eta), (row, eta)
        assert int(mask.sum()) == k
        if 0 < k < len(row):
            kept = torch.tensor(row)[mask].abs()
            dropped = torch.tensor(row)[~mask].abs()
            assert kept.min() >= dropped.max()  # the kept set is a top-k set


@pytest.mark.parametrize("eta", ETAS)
def test_k_matches_brute_force_on_random_scores(eta):
    generator = torch.Generator().manual_seed(int(eta * 1000))
    # softplus-like positive scores with a spread of scales, plus raw signed scores
    scores = torch.cat(
        [
            torch.rand(40, 16, generator=generator)
            * torch.logspace(-2, 1, 16)[torch.randperm(16, generator=generator)],
            torch.randn(40, 16, generator=generator),
        ]
    )
    check_against_reference(scores, eta)


@pytest.mark.parametrize("eta", ETAS)
def test_k_with_ties_and_zeros(eta):
    # Small integers: every partial sum is exact in float32, so boundaries are hit exactly.
    rows = torch.tensor(
        [
            [2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0],  # E = 1/4, 1/2, 3/4, 1 then zeros
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 2.0, 0.0, 2.0, 1.0, 0.0],
            [4.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        ]
    )
    check_against_reference(rows, eta)
    k = energy_select(rows, eta).k.tolist()
    assert k[3] == 0  # all zero: nothing kept
    assert k[2] == 1
    assert k[0] == {0.5: 2, 0.9: 4, 0.99: 4, 1.0: 4}[eta]  # never the zero-score vectors


def test_k_is_monotone_in_eta():
    scores = torch.nn.functional.softplus(
        torch.randn(200, 32, generator=torch.Generator().manual_seed(1)) * 3
    )
    etas = torch.linspace(0.05, 1.0, 40).tolist()
    ks = torch.stack([energy_select(scores, eta).k for eta in etas])
    assert (ks[1:] >= ks[:-1]).all()
    assert ks[0].float().mean() < ks[-1].float().mean()


def test_one_fewer_rule_keeps_one_vector_less():
    scores = torch.rand(50, 12, generator=torch.Generator().manual_seed(2)) + 0.01
    paper = energy_select(scores, 0.9).k
    authors = energy_select(scores, 0.9, k_rule="one_fewer").k
    assert torch.equal(authors, paper - 1)


def test_energy_is_float32_under_bf16():
    """Scores come out of a bf16 router: the rule must add their squares in float32. A
    bf16 cumulative sum (8-bit mantissa) over 128 values gets k wrong on many rows."""
    generator = torch.Generator().manual_seed(3)
    scores = (torch.rand(64, 128, generator=generator) * 2 + 0.5).to(torch.bfloat16)
    for eta in (0.5, 0.9):
        sel = energy_select(scores, eta)
        assert sel.k.tolist() == [brute_force_k(r, eta) for r in scores.float().tolist()]
        # the same rule with bf16 arithmetic disagrees: the test above can fail
        energy = scores.square().sort(dim=-1, descending=True).values
        cum = energy.cumsum(dim=-1)
        naive_k = (cum < eta * cum[..., -1:]).sum(-1) + 1
        assert not torch.equal(naive_k, sel.k)


def test_spectral_loss_is_energy_outside_the_kept_set():
    scores = torch.rand(30, 10, generator=torch.Generator().manual_seed(4))
    scores[0] = 0.0
    sel = energy_select(scores, 0.8)
    expected = []
    for row, k in zip(scores.tolist(), sel.k.tolist(), strict=True):
        energies = sorted((v * v for v in row), reverse=True)
        expected.append(0.0 if sum(energies) == 0 else 1 - sum(energies[:k]) / sum(energies))
    assert spectral_loss(scores, scores * sel.mask).item() == pytest.approx(
        sum(expected) / len(expected), rel=1e-5
    )


def test_spectral_loss_pushes_kept_scores_up():
    scores = torch.rand(8, 10, generator=torch.Generator().manual_seed(5)).requires_grad_()
    sel = energy_select(scores, 0.7)
    spectral_loss(scores, scores * sel.mask).backward()
    kept_grad, dropped_grad = scores.grad[sel.mask], scores.grad[~sel.mask]
    assert (kept_grad <= 0).all() and (dropped_grad >= 0).all()  # descent raises kept, lowers the rest
    assert kept_grad.lt(0).any()


def test_balance_loss_is_switch_formula():
    generator = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 5, 6, generator=generator)
    dispatch = torch.rand(2, 5, 6, generator=generator) > 0.5
    probs = torch.softmax(logits.reshape(-1, 6), dim=-1)
    rows = probs.shape[0]
    n_dispatch = int(dispatch.sum())
    expected = 6 * sum(
        (int(dispatch.reshape(-1, 6)[:, i].sum()) / n_dispatch) * float(probs[:, i].sum() / rows)
        for i in range(6)
    )
    assert balance_loss(logits, dispatch).item() == pytest.approx(expected, rel=1e-5)
    # uniform router and uniform dispatch: exactly 1
    assert balance_loss(torch.zeros(4, 6), torch.ones(4, 6, dtype=torch.bool)).item() == pytest.approx(1.0)


def test_z_loss_is_mean_squared_logsumexp():
    logits = torch.randn(3, 7, 9, generator=torch.Generator().manual_seed(7))
    lse = [torch.tensor(row).exp().sum().log().item() for row in logits.reshape(-1, 9).tolist()]
    assert z_loss(logits).item() == pytest.approx(sum(v * v for v in lse) / len(lse), rel=1e-5)
    assert z_loss(logits, "log1p").item() == pytest.approx(
        sum(torch.log1p(torch.tensor(v)).item() for v in lse) / len(lse), rel=1e-5
    )


def test_log1p_z_loss_stays_finite_where_logsumexp_falls_below_minus_one():
    """log1p(lse) is NaN below lse = -1 (it ended the study's first z_log1p run at step 165):
    rows outside the clamp [-0.99, 10] add a constant and no gradient; rows inside, their own."""
    low = torch.full((1, 9), -10.0)  # lse = -10 + log 9 = -7.8
    high = torch.full((1, 9), 12.0)  # lse = 14.2
    inside = torch.zeros(1, 9)  # lse = log 9
    logits = torch.cat([low, high, inside]).requires_grad_()
    z = z_loss(logits, "log1p")
    expected = (math.log1p(-0.99) + math.log1p(10.0) + math.log1p(math.log(9))) / 3
    assert z.item() == pytest.approx(expected, rel=1e-5)
    z.backward()
    assert torch.all(logits.grad[:2] == 0)
    # d log1p(lse) / d logit_j = softmax_j / (1 + lse), / 3 rows
    torch.testing.assert_close(logits.grad[2], torch.full((9,), 1 / 9 / (1 + math.log(9)) / 3))
