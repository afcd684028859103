"""Problem 4's adversarial sets: the `attack` section of params.yaml that says how they are made (read
by the attack stage, and by the stages that reuse the seed's attack: retrain, transfer, robustness), and
the function that makes one (the attack and transfer stages)."""
from typing import Annotated

import torch
from pydantic import Field

from stages.lib.attacks import random_targets, sign_gradient_attack
from stages.lib.data import PIXEL_RANGE
from stages.lib.models import predict
from stages.lib.params import Count, Name, Positive, Section, Seed
from stages.lib.runtime import WorkingBatch

KINDS = ("untargeted", "targeted")
SIGN_GRADIENT_CPU_BATCH = 128  # attack.batch_size auto on the CPU (benchmarks/attack_throughput.py)


class Gallery(Section):
    untargeted: list[Seed]
    targeted: list[Seed]


class AttackSection(Section):
    """Params section `attack`: the seed's iterative sign-gradient attack on `model`."""
    model: Name
    step_size: Positive
    max_steps: Annotated[int, Field(ge=1, le=100_000)]
    epsilon: Annotated[float, Field(gt=0, le=2)] | None
    batch_size: WorkingBatch  # auto: SIGN_GRADIENT_CPU_BATCH on the CPU, a GPU's own size there
    n_images: Count | None
    seed: Seed
    grid_size: Annotated[int, Field(ge=1, le=1024)]
    gallery: Gallery


def adversarial_set(kind, model, images, labels, *, step_size, max_steps, epsilon, n_images, seed, batch_size,
                    desc=None):
    """The seed's attack of `kind` (attack.* settings; `seed` draws the targeted attack's random targets) on
    `model`, over the test images it classifies correctly (the first n_images of them, all if None): a
    dict of tensors, one row per attacked image,
    on the images' device: originals and adversarial images (N x 1 x 28 x 28, model inputs), true labels,
    targets (-1 where untargeted), success flags, steps used and test-set indices.

    The attack stage and the transfer stage each make the set with this function rather than pass a
    file of 30 MB a set between them: on one machine the two runs give the same floats, and no stage
    depends on a cache-only file whose bytes another CPU would compute differently (docs/dvc.md)."""
    correct = torch.nonzero(predict(model, images, batch_size) == labels).flatten()
    indices = correct[:n_images] if n_images else correct
    originals, true_labels = images[indices], labels[indices]
    targets = None
    if kind == "targeted":
        targets = random_targets(true_labels, torch.Generator().manual_seed(seed)).to(images.device)
    adversarial, success, steps = sign_gradient_attack(
        model, originals, true_labels, targets=targets, step_size=step_size, max_steps=max_steps,
        bounds=PIXEL_RANGE, epsilon=epsilon, batch_size=batch_size, desc=desc)
    return {"originals": originals, "images": adversarial, "labels": true_labels,
            "targets": targets if targets is not None else torch.full_like(true_labels, -1),
            "success": success, "steps": steps, "indices": indices}
