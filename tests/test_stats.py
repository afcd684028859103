"""stages/lib/stats.py on known cases: the Wilson interval, McNemar's exact test, Newcombe's intervals of a
difference (independent and paired) and the words that follow from an interval."""
import math

import pytest

from stages.lib.stats import HIGHER, LOWER, UNDETECTED, independent, mcnemar_exact, paired, paired_flags, wilson


def test_newcombes_independent_interval_gives_his_published_examples():
    # Newcombe 1998 (Stat Med 17:873), method 10: 56/70 vs 48/80 and 9/10 vs 3/10
    d = independent(56, 70, 48 / 80, 80)
    assert (round(d["low"], 4), round(d["high"], 4)) == (0.0524, 0.3339) and d["words"] == HIGHER
    d = independent(9, 10, 3 / 10, 10)
    assert (round(d["low"], 4), round(d["high"], 4)) == (0.1705, 0.8090)
    # the other way round: the same interval, negated, and the word flips
    d = independent(48, 80, 56 / 70, 70)
    assert (round(d["low"], 4), round(d["high"], 4)) == (-0.3339, -0.0524) and d["words"] == LOWER


def test_mcnemars_exact_test_is_twice_the_smaller_binomial_tail():
    assert mcnemar_exact(10, 0) == 2 * 0.5 ** 10
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    # 9 against 2: 2 P(X <= 2), X ~ Binomial(11, 1/2)
    assert mcnemar_exact(9, 2) == pytest.approx(2 * (1 + 11 + 55) / 2 ** 11)
    assert mcnemar_exact(2, 9) == mcnemar_exact(9, 2)


def test_the_paired_interval_holds_the_difference_and_says_no_difference_when_the_discordant_pairs_balance():
    d = paired(12, 9, 2, 21)  # Newcombe 1998's paired example: 44 pairs
    assert d["difference"] == pytest.approx(7 / 44) and d["low"] < d["difference"] < d["high"]
    assert d["p_value"] == mcnemar_exact(9, 2) and (d["only_first"], d["only_second"], d["images"]) == (9, 2, 44)
    balanced = paired(400, 30, 30, 40)
    assert balanced["difference"] == 0 and balanced["low"] == pytest.approx(-balanced["high"])
    assert balanced["words"] == UNDETECTED and balanced["p_value"] == 1.0
    swapped = paired(12, 2, 9, 21)
    assert (swapped["low"], swapped["high"]) == pytest.approx((-d["high"], -d["low"]))


def test_pairing_narrows_the_interval_of_two_models_that_agree_on_most_images():
    # 1,000 images, both right on 900, each right alone on 40 and 10: the same two accuracies as independent
    # samples leave a wider interval than the pairs do
    d = paired(900, 40, 10, 50)
    loose = independent(940, 1000, 0.91, 1000)
    assert d["difference"] == pytest.approx(loose["difference"]) == pytest.approx(0.03)
    assert d["high"] - d["low"] < loose["high"] - loose["low"] and d["words"] == HIGHER


def test_paired_flags_counts_the_four_kinds_of_image():
    first = [True, True, False, False, True]
    second = [True, False, True, False, True]
    assert paired_flags(first, second) == paired(2, 1, 1, 1)
    with pytest.raises(ValueError, match="differ in length"):
        paired_flags(first, second[:3])
    with pytest.raises(ValueError, match="at least one image"):
        paired(0, 0, 0, 0)


def test_the_wilson_interval_stays_in_0_1_and_holds_the_share():
    for correct, images in ((0, 500), (500, 500), (3153, 3500)):
        low, high = wilson(correct, images)
        assert 0 <= low <= correct / images + 1e-15 and correct / images - 1e-15 <= high <= 1  # up to rounding
    low, high = wilson(3153, 3500)
    assert (round(100 * low, 1), round(100 * high, 1)) == (89.1, 91.0)
    assert math.isclose(wilson(0, 500)[0], 0, abs_tol=1e-15)
