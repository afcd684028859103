"""AutoAttack (Croce & Hein 2020), standard version, L-inf, as its reference code (fra31/auto-attack)
runs it: APGD-CE, APGD-T, FAB-T and Square, one after another, each on the images the previous ones
failed on. Each attack is torchattacks' own class, built with every setting written out below; the
cascade is torchattacks' MultiAttack's, written out so that it records which attack fooled which image.
torchattacks works on images in [0, 1]; the models here see PIXEL_RANGE, so the model is wrapped and
the budget rescaled."""
import torch

from stages.lib.data import NUM_CLASSES
from stages.lib.models import UnitRangeModel, frozen, predict

# the reference's standard version: 100 iterations for APGD and FAB, 9 target classes, 5,000 queries
REFERENCE = {"steps": 100, "queries": 5000}


def settings(steps, queries):
    """Every attack of the cascade in run order: {name: {label, class, settings}}; with the reference's
    steps and queries, exactly Croce & Hein's standard version."""
    targets = NUM_CLASSES - 1
    return {
        "apgd_ce": {"label": f"APGD-CE ({steps} steps)", "class": "torchattacks.APGD",
                    "settings": {"norm": "Linf", "steps": steps, "n_restarts": 1, "loss": "ce", "eot_iter": 1,
                                 "rho": 0.75}},
        "apgd_t": {"label": f"APGD-T ({steps} steps, {targets} target classes)", "class": "torchattacks.APGDT",
                   "settings": {"norm": "Linf", "steps": steps, "n_restarts": 1, "n_classes": NUM_CLASSES,
                                "target_classes": targets, "eot_iter": 1, "rho": 0.75}},
        "fab_t": {"label": f"FAB-T ({steps} steps, {targets} target classes)", "class": "torchattacks.FAB",
                  "settings": {"norm": "Linf", "steps": steps, "n_restarts": 1, "multi_targeted": True,
                               "n_classes": NUM_CLASSES, "target_classes": targets, "alpha_max": 0.1, "eta": 1.05,
                               "beta": 0.9}},
        "square": {"label": f"Square ({queries:,} queries)", "class": "torchattacks.Square",
                   "settings": {"norm": "Linf", "n_queries": queries, "n_restarts": 1, "p_init": 0.8,
                                "loss": "margin", "resc_schedule": True}},
    }


def is_reference(steps, queries):
    return steps == REFERENCE["steps"] and queries == REFERENCE["queries"]


def _attacks(unit, eps, steps, queries, seed):
    import torchattacks  # here, not at the top: it imports scipy, ~0.5 s of every start-up of check_params

    return {
        "apgd_ce": torchattacks.APGD(unit, norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=seed, loss="ce",
                                     eot_iter=1, rho=0.75),
        "apgd_t": torchattacks.APGDT(unit, norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=seed, eot_iter=1,
                                     rho=0.75, n_classes=NUM_CLASSES),
        "fab_t": torchattacks.FAB(unit, norm="Linf", eps=eps, steps=steps, n_restarts=1, alpha_max=0.1, eta=1.05,
                                  beta=0.9, seed=seed, multi_targeted=True, n_classes=NUM_CLASSES),
        "square": torchattacks.Square(unit, norm="Linf", eps=eps, n_queries=queries, n_restarts=1, p_init=0.8,
                                      loss="margin", resc_schedule=True, seed=seed),
    }


def autoattack(model, images, labels, epsilon, *, bounds, batch_size, seed, steps=REFERENCE["steps"],
               queries=REFERENCE["queries"]):
    """AutoAttack within epsilon (in the units of bounds) of each image, in batches of batch_size, its
    random parts seeded by seed. Returns (adversarial images in the units of bounds, {attack name: the
    images it fooled}): each attack runs on the images every earlier one failed on, so an image is
    fooled by at most one of them; an image the model already misclassifies counts as fooled by the
    first. The model's parameters receive no gradients."""
    unit = UnitRangeModel(model, bounds).eval()
    attacks = _attacks(unit, epsilon / unit.span, steps, queries, seed)
    adversarial = images.clone()
    fooled = {name: torch.zeros(len(labels), dtype=torch.bool, device=labels.device) for name in attacks}
    alive = torch.arange(len(labels), device=labels.device)
    with frozen(model):
        for name, attack in attacks.items():
            if not len(alive):
                break
            found = torch.cat([unit.from_unit(attack(unit.to_unit(images[chunk]), labels[chunk]))
                               for chunk in alive.split(batch_size)])
            hit = predict(model, found, batch_size) != labels[alive]
            adversarial[alive[hit]] = found[hit]
            fooled[name][alive[hit]] = True
            alive = alive[~hit]
    return adversarial, fooled
