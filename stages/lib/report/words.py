"""Numbers in words, as the report writes them: percentages, accuracies with their count and 95 % Wilson
interval, counts, step counts and the differences between two accuracies."""
import math

from stages.lib.stats import UNDETECTED, independent

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
NOT_PAIRED = (" (compared as independent samples: the per-image predictions are not recorded, which can only "
              "widen the interval)")


def percent(value, digits=1):
    return f"{100 * value:.{digits}f} %"


def number_word(n):
    """'two' for 2; a count above ten in digits."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else f"{n:,}"


def capitalised(text):
    """The text with its first letter capitalised, the rest as it is."""
    return text[:1].upper() + text[1:]


def digits(m):
    """Decimals that keep an interval's ends apart: 1, or 2 where it is narrower than 0.2 points."""
    return 1 if m["high"] - m["low"] >= 0.002 else 2


def with_interval(m):
    """'96.3 % of 9,931 images (95 % Wilson interval 95.9–96.6 %)'."""
    d = digits(m)
    return (f"{percent(m['accuracy'], d)} of {m['images']:,} images (95 % Wilson interval "
            f"{100 * m['low']:.{d}f}–{percent(m['high'], d)})")


def short_interval(m):
    """A table cell: '96.3 % (95.9–96.6)'."""
    d = digits(m)
    return f"{percent(m['accuracy'], d)} ({100 * m['low']:.{d}f}–{100 * m['high']:.{d}f})"


def count_of(k, n, what):
    return f"{k:,} of {n:,} {what}"


def steps_text(steps):
    return "did not reach it" if steps is None or math.isnan(steps) else f"{int(steps):,} steps"


def points(value):
    """A difference of two shares in signed percentage points: '+6.2'."""
    return f"{100 * value:+.1f}"


def difference_words(d, first, second):
    """'model 1 against defence 1: 6.2 points lower (95 % interval −10.1 to −2.3; McNemar exact p = 0.002)'; a
    comparison of independent samples has no p-value."""
    p = f"; McNemar exact p = {d['p_value']:.2g}" if "p_value" in d else ""
    size = (f"{abs(100 * d['difference']):.1f} points {d['words']}" if d["words"] != UNDETECTED
            else f"{d['words']}, {points(d['difference'])} points")
    return f"{first} against {second}: {size} (95 % interval {points(d['low'])} to {points(d['high'])}{p})"


def against(m, other, other_images, name):
    """Our accuracy m against `other`, measured on other_images images and named `name`: the difference and
    its 95 % interval (stats.independent), in words."""
    d = independent(m["correct"], m["images"], other, other_images)
    return difference_words(d, "ours", f"{name} ({percent(other)} of {other_images:,})")


def short_label(label):
    """A model's label without its description in brackets: 'defence 1' for 'defence 1 (retrained)'."""
    return label.partition(" (")[0]
