"""AutoAttack (Croce & Hein 2020; standard version: APGD-CE, APGD-T, FAB-T and Square, run one after
another on the images the previous ones failed on) from torchattacks: a parameter-free ensemble from a
well-kept library, the independent check on the project's own attacks. torchattacks works on images in
[0, 1]; the models here see PIXEL_RANGE, so the model is wrapped and the budget rescaled."""
import torch
from torch import nn

from stages.lib.data import NUM_CLASSES
from stages.lib.models import predict


# torchattacks 3.5.1's AutoAttack(version="standard"), as it is built there (the reference implementation
# of Croce & Hein runs 100 iterations for APGD and FAB; torchattacks keeps its own default of 10)
AUTOATTACK = {
    "library": "torchattacks", "version": "standard", "seed": "robustness.seed",
    "attacks": ["APGD-CE (10 steps, 1 restart)", "APGD-T (10 steps, 9 target classes, 1 restart)",
                "FAB-T (10 steps, 9 target classes, 1 restart)", "Square (5,000 queries, 1 restart)"],
    "run": "one after another, each on the images the previous ones failed on",
}


class UnitRangeModel(nn.Module):
    """A model of images in `bounds`, as a model of images in [0, 1]."""

    def __init__(self, model, bounds):
        super().__init__()
        self.model, self.low, self.span = model, bounds[0], bounds[1] - bounds[0]

    def forward(self, x):
        return self.model(self.from_unit(x))

    def to_unit(self, x):
        return (x - self.low) / self.span

    def from_unit(self, x):
        return x * self.span + self.low


def autoattack(model, images, labels, epsilon, *, bounds, batch_size, seed):
    """AutoAttack (standard, L-inf) within epsilon (in the units of bounds) of each image, in batches of
    batch_size (on a CPU its Python overhead per iteration dominates: the fewer batches, the faster), its
    random starts seeded by seed; returns (adversarial images in the units of bounds,
    fooled flags). An image the model already misclassifies counts as fooled. The model's parameters
    receive no gradients."""
    import torchattacks  # here, not at the top: it imports scipy, ~0.5 s of every start-up of check_params

    unit = UnitRangeModel(model, bounds).eval()
    attack = torchattacks.AutoAttack(unit, norm="Linf", eps=epsilon / unit.span, version="standard",
                                     n_classes=NUM_CLASSES, seed=seed)
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        batches = [unit.from_unit(attack(unit.to_unit(images[s:s + batch_size]), labels[s:s + batch_size]))
                   for s in range(0, len(labels), batch_size)]
    finally:
        for p, flag in zip(model.parameters(), requires_grad):
            p.requires_grad_(flag)
    adversarial = torch.cat(batches) if batches else images.clone()
    return adversarial, predict(model, adversarial, batch_size) != labels
