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


def compare(low, high, other):
    """Where `other` (an anchor, another model's figure) lies against the interval [low, high]: 'above',
    'below' or 'inside' — whether the difference lies outside the interval."""
    return "above" if other > high else "below" if other < low else "inside"
