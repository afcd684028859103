"""What the judges share: an accuracy measured on a sample, the rule that makes a problem's verdict from
its claims' verdicts, and a row of the findings box. A verdict is one of the words 'holds', 'partly',
'differs'; 'unmeasured' where the numbers are missing, 'measured' where the homework makes no claim."""
from dataclasses import dataclass

from stages.lib.stats import interval, paired_flags


@dataclass(frozen=True)
class Finding:
    """A row of the findings box: the part (with the homework's sections), its claim in short, our number
    and the verdict."""
    part: str
    claim: str
    ours: str
    verdict: str


def measured(accuracy, images):
    """An accuracy on a sample of images: {accuracy, images, correct, low, high}."""
    return interval(float(accuracy), int(images))


def combined(words):
    """The verdict of a problem from its claims' verdicts: holds only if every one holds."""
    return "holds" if all(w == "holds" for w in words) else "differs" if all(w == "differs" for w in words) else "partly"


def paired_on(predictions, first, second, prefix=""):
    """stats.paired_flags of two models' predictions (columns prefix + name of plots/transfer/predictions.csv)
    on the images of the set (-1 where an image is not in it)."""
    on = predictions[predictions[prefix + first] >= 0]
    return paired_flags(on[prefix + first] == on["label"], on[prefix + second] == on["label"])
