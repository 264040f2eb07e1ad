import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluate.stats import wilson


@pytest.mark.parametrize(
    "k, n, low, high",
    [  # reference values: scipy.stats.binomtest(k, n).proportion_ci(method="wilson")
        (13, 15, 0.6211801716767764, 0.9626387408969346),
        (8, 15, 0.30116980025498397, 0.7519046463426261),
        (1, 2, 0.09453120573423074, 0.9054687942657693),
        (0, 10, 0.0, 0.27753279986288926),
        (15, 15, 0.7961166989641515, 1.0),
    ],
)
def test_wilson_matches_known_values(k, n, low, high):
    rate = wilson(k, n)
    assert rate.low == pytest.approx(low, abs=1e-9)
    assert rate.high == pytest.approx(high, abs=1e-9)
    assert rate.value == pytest.approx(k / n)


def test_empty_is_uninformative():
    rate = wilson(0, 0)
    assert (rate.low, rate.high, rate.value) == (0.0, 1.0, None)
    assert rate.percent() == "-"


def test_all_success_edges_are_exact():
    rate = wilson(15, 15)
    assert rate.high == 1.0 and rate.low < 1.0
    assert wilson(0, 15).low == 0.0
    assert wilson(15, 15).percent() == "100.0 [79.6, 100.0]"


def test_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson(3, 2)
    with pytest.raises(ValueError):
        wilson(-1, 2)


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_interval_contains_estimate_and_agrees_with_scipy(kn):
    from scipy.stats import binomtest

    k, n = kn
    rate = wilson(k, n)
    assert 0.0 <= rate.low <= k / n <= rate.high <= 1.0
    ref = binomtest(k, n).proportion_ci(method="wilson")
    assert math.isclose(rate.low, ref.low, abs_tol=1e-9) and math.isclose(rate.high, ref.high, abs_tol=1e-9)
