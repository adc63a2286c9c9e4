"""kd.stats: the one rule for "beyond seed noise" (a paired t-test at the 5% level, >= 3 seeds)."""
import math

import pytest

from kdlab import stats


def test_t_quantiles_are_students():
    # textbook 97.5% quantiles of Student's t
    assert stats.t975(1) == pytest.approx(12.706, abs=1e-3)
    assert stats.t975(2) == pytest.approx(4.303, abs=1e-3)
    assert stats.t975(4) == pytest.approx(2.776, abs=1e-3)
    assert stats.t975(30) == pytest.approx(2.042, abs=1e-3)
    # between tabulated values: the next smaller df's (larger, so conservative) quantile
    assert stats.t975(45) == stats.t975(40) > 2.014
    assert stats.t975(10_000) == pytest.approx(1.980)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="degrees of freedom"):
            stats.t975(bad)


def test_consistent_shift_is_beyond_noise_although_means_overlap():
    # seeds differ a lot from each other, but b is about 10 lower on every seed: paired, that is clear
    a = [500, 600, 700, 550]
    b = [490, 591, 689, 540]
    c = stats.compare(a, b)
    assert c.diff == pytest.approx(-10.0)
    assert c.n == 4 and c.fewer == 4 and c.judged
    sd = math.sqrt(2 / 3)    # differences -10, -9, -11, -10
    assert c.sd == pytest.approx(sd)
    assert c.limit == pytest.approx(3.182 * sd / 2)
    assert c.beyond and stats.beyond_noise(a, b)
    assert c.word("fewer", "more") == "fewer"
    assert "beyond seed noise" in c.text and "lower on 4 of 4" in c.text


def test_inconsistent_difference_is_within_noise():
    a = [500, 500, 500]
    b = [450, 560, 470]          # mean -6.7, spread 59
    c = stats.compare(a, b)
    assert not c.beyond and c.fewer == 2
    assert c.word() == "within seed noise"
    assert "within seed noise" in c.text
    # the threshold itself: |mean| just above / below t * sd / sqrt(n)
    d = [-10.0, -12.0, -14.0]    # mean -12, sd 2: limit 4.303 * 2 / sqrt(3) = 4.97
    assert stats.compare([0, 0, 0], d).beyond
    d = [-1.0, -3.0, -14.0]      # mean -6, sd 7: limit 17.4
    assert not stats.compare([0, 0, 0], d).beyond


def test_direction_and_symmetry():
    a, b = [300, 310, 320], [340, 351, 362]
    assert stats.compare(a, b).word() == "higher"
    assert stats.compare(b, a).word() == "lower"
    assert stats.compare(a, b).diff == -stats.compare(b, a).diff
    # identical runs: no difference, never beyond (sd 0 and mean 0)
    assert not stats.compare(a, a).beyond
    # the same nonzero difference on every seed: sd 0, beyond
    assert stats.compare(a, [v + 1 for v in a]).beyond


def test_too_few_seeds_are_not_judged():
    c = stats.compare([500, 510], [400, 405])
    assert not c.judged and not c.beyond and math.isnan(c.limit)
    assert "not judged" in c.text and "not judged" in c.word()
    assert not stats.compare([1], [0]).beyond


@pytest.mark.parametrize("a, b, match", [
    ([1, 2, 3], [1, 2], "equally long"),
    ([], [], "equally long"),
    ([1, 2, float("nan")], [1, 2, 3], "finite"),
    ([1, 2, 3], [1, float("inf"), 3], "finite"),
])
def test_bad_input_is_named(a, b, match):
    with pytest.raises(ValueError, match=match):
        stats.compare(a, b)


def test_false_alarm_rate_is_about_five_percent():
    # the rule is a 5% test: on pure noise (no true difference) it fires on about 5% of draws
    import random

    rng = random.Random(0)
    fired = sum(stats.compare([rng.gauss(0, 1) for _ in range(3)],
                              [rng.gauss(0, 1) for _ in range(3)]).beyond for _ in range(4000))
    assert 0.035 < fired / 4000 < 0.065
