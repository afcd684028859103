"""Intervals for accuracies measured on a sample of images: the 95 % Wilson score interval (Wilson
1927), which stays inside [0, 1] and keeps its coverage near 0 % and 100 % where the normal
approximation does not."""
import math

Z_95 = 1.959963984540054  # the standard normal's 97.5 % quantile
METHOD = "Wilson score interval, 95 %"


def wilson(correct, images, z=Z_95):
    """(low, high) of the 95 % Wilson interval of `correct` successes out of `images` trials."""
    if images <= 0:
        raise ValueError("an interval needs at least one image")
    p, n = correct / images, images
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def count(accuracy, images):
    """The number of correct images behind an accuracy measured on `images` images."""
    return round(accuracy * images)


def interval(accuracy, images):
    """{accuracy, images, correct, low, high}: an accuracy with its count and 95 % Wilson interval."""
    correct = count(accuracy, images)
    low, high = wilson(correct, images)
    return {"accuracy": accuracy, "images": images, "correct": correct, "low": low, "high": high}


# --- comparing two accuracies ----------------------------------------------------------------------
# Two models (or attacks) on the same images: a paired comparison, McNemar's exact test on the images
# one gets right and the other wrong, with the difference's 95 % interval by Newcombe's method 10 for
# paired data (Newcombe 1998, Stat Med 17:2635). An accuracy against a figure measured on other images
# (the literature's, on its own test set): the difference's 95 % interval by Newcombe's method 10 for
# independent samples (Newcombe 1998, Stat Med 17:873). Both build on the Wilson interval above; the
# words follow from the interval alone.
HIGHER, LOWER, UNDETECTED = "higher", "lower", "no difference detectable at this sample size"


def direction(low, high):
    """The words for a difference whose 95 % interval is [low, high]."""
    return HIGHER if low > 0 else LOWER if high < 0 else UNDETECTED


def mcnemar_exact(only_first, only_second):
    """Two-sided exact McNemar p-value from the discordant counts: twice the smaller binomial tail."""
    n, k = only_first + only_second, min(only_first, only_second)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _newcombe(p1, interval1, p2, interval2, phi=0.0):
    (l1, u1), (l2, u2) = interval1, interval2
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return p1 - p2 - below, p1 - p2 + above


def paired(both, only_first, only_second, neither):
    """First against second on the same images, from the four counts (both right, only the first right,
    only the second right, neither): {difference (first minus second, a share), low, high, p_value
    (McNemar exact), only_first, only_second, images, words}."""
    n = both + only_first + only_second + neither
    if n <= 0:
        raise ValueError("a comparison needs at least one image")
    first, second = both + only_first, both + only_second
    margins = first * (n - first) * second * (n - second)
    # the correlation of the two, shrunk as Newcombe (in Altman et al., Statistics with Confidence) does
    cross = both * neither - only_first * only_second
    shrunk = cross - n / 2 if cross > n / 2 else min(cross, 0)
    phi = shrunk / math.sqrt(margins) if margins else 0.0
    low, high = _newcombe(first / n, wilson(first, n), second / n, wilson(second, n), phi)
    return {"difference": (first - second) / n, "low": low, "high": high,
            "p_value": mcnemar_exact(only_first, only_second), "only_first": only_first,
            "only_second": only_second, "images": n, "words": direction(low, high)}


def paired_flags(first, second):
    """paired() from two equal-length sequences of per-image right (True) / wrong (False) flags."""
    if len(first) != len(second):
        raise ValueError(f"paired flags differ in length: {len(first)} and {len(second)}")
    pairs = list(zip(map(bool, first), map(bool, second)))
    return paired(pairs.count((True, True)), pairs.count((True, False)), pairs.count((False, True)),
                  pairs.count((False, False)))


def independent(correct, images, other_accuracy, other_images):
    """Our accuracy (correct of images) against a figure measured on other_images other images:
    {difference (ours minus theirs), low, high, words}."""
    other_correct = round(other_accuracy * other_images)
    low, high = _newcombe(correct / images, wilson(correct, images), other_correct / other_images,
                          wilson(other_correct, other_images))
    return {"difference": correct / images - other_correct / other_images, "low": low, "high": high,
            "words": direction(low, high)}
