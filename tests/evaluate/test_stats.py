import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluate.stats import fisher_exact, holm, wilson


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


@pytest.mark.parametrize(
    "a, b, p",
    [  # reference values: scipy.stats.fisher_exact([[s1, n1 - s1], [s2, n2 - s2]]).pvalue
        ((3, 4), (1, 4), 0.4857142857142857),  # Fisher's tea-tasting table
        ((15, 60), (7, 60), 0.09718375314725133),  # LoRA-SP without z-loss against its control
        ((0, 60), (7, 60), 0.012984457997245721),
        ((5, 5), (0, 5), 0.007936507936507936),
    ],
)
def test_fisher_exact_matches_known_values(a, b, p):
    assert fisher_exact(a, b) == pytest.approx(p, rel=1e-12)
    assert fisher_exact(b, a) == pytest.approx(p, rel=1e-12)  # which rate comes first does not matter


def test_fisher_exact_sees_no_difference_between_equal_or_empty_rates():
    assert fisher_exact((7, 60), (7, 60)) == 1.0
    assert fisher_exact((0, 0), (3, 15)) == 1.0
    with pytest.raises(ValueError):
        fisher_exact((4, 3), (1, 3))


@settings(deadline=None, max_examples=60)
@given(st.tuples(st.integers(0, 80), st.integers(0, 80)).flatmap(
    lambda n: st.tuples(st.integers(0, n[0]), st.just(n[0]), st.integers(0, n[1]), st.just(n[1]))
))  # fmt: skip
def test_fisher_exact_agrees_with_scipy(counts):
    from scipy.stats import fisher_exact as reference

    s1, n1, s2, n2 = counts
    expected = reference([[s1, n1 - s1], [s2, n2 - s2]]).pvalue
    assert math.isclose(fisher_exact((s1, n1), (s2, n2)), expected, rel_tol=1e-9, abs_tol=1e-12)


def test_holm_multiplies_the_kth_smallest_p_by_the_tests_left_and_never_lets_it_fall():
    # 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 is raised to 0.06, the step before it
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([0.02]) == [0.02]  # one test: nothing to adjust
    assert holm([]) == []


@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(0.0, 1.0), max_size=12))
def test_holm_keeps_the_order_of_the_p_values_and_only_raises_them(p_values):
    adjusted = holm(p_values)
    assert all(p <= a <= 1.0 for p, a in zip(p_values, adjusted, strict=True))
    for i, j in itertools.combinations(range(len(p_values)), 2):
        if p_values[i] < p_values[j]:
            assert adjusted[i] <= adjusted[j]
