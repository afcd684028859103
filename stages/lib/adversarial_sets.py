"""Problem 4's adversarial sets: the `attack` section of params.yaml that says how they are made (read
by the attack stage, and by the stages that reuse the seed's attack: retrain, transfer, robustness), and
the file format they are stored in (written by the attack stage, read by transfer)."""
from typing import Annotated

import torch
from pydantic import Field

from stages.lib.data import NUM_CLASSES
from stages.lib.errors import StageError
from stages.lib.io import load_tensors, save_tensors
from stages.lib.params import Count, Name, Positive, Section, Seed
from stages.lib.runtime import WorkingBatch

KINDS = ("untargeted", "targeted")
CPU_BATCH = 128  # attack.batch_size auto on the CPU (benchmarks/attack_throughput.py)


class Gallery(Section):
    untargeted: list[Seed]
    targeted: list[Seed]


class AttackSection(Section):
    """Params section `attack`: the seed's iterative sign-gradient attack on `model`."""
    model: Name
    step_size: Positive
    max_steps: Annotated[int, Field(ge=1, le=100_000)]
    epsilon: Annotated[float, Field(gt=0, le=2)] | None
    batch_size: WorkingBatch  # auto: CPU_BATCH on the CPU, a GPU's own size there
    n_images: Count | None
    seed: Seed
    grid_size: Annotated[int, Field(ge=1, le=1024)]
    gallery: Gallery


FORMAT = {"images": torch.float32, "labels": torch.int64, "targets": torch.int64,
          "success": torch.bool, "steps": torch.int64, "indices": torch.int64}


def save_adversarial(path, *, images, labels, targets, success, steps, indices):
    """An attack's result: adversarial images (N x 1 x 28 x 28), true labels, targets (-1 where
    untargeted), success flags, steps used and the attacked test-set indices."""
    save_tensors({"images": images.cpu(), "labels": labels.cpu(), "targets": targets.cpu(),
                "success": success.cpu(), "steps": steps.cpu(), "indices": indices.cpu()}, path)


def load_adversarial(path, n_test, bounds):
    """An attack's result as save_adversarial wrote it, checked for consistency: equal lengths, images
    of the right shape inside `bounds`, digit labels, targets -1 or a digit other than the label, and
    indices into a test set of n_test images. Anything else is one StageError naming the file."""
    tensors = load_tensors(path, FORMAT)
    n = len(tensors["labels"])
    images, labels, targets = tensors["images"], tensors["labels"], tensors["targets"]

    def check(ok, what):
        if not ok:
            raise StageError(f"{path}: {what}; rerun the attack stage that writes it")

    check(all(t.dim() == 1 and len(t) == n for k, t in tensors.items() if k != "images"),
          "labels, targets, success, steps and indices must be N-long vectors of one length")
    check(images.shape == (n, 1, 28, 28), f"expected {n} x 1 x 28 x 28 images, got {tuple(images.shape)}")
    check(bool(torch.isfinite(images).all()) and (n == 0 or (images.min() >= bounds[0] and images.max() <= bounds[1])),
          f"images must be finite and within {bounds}")
    check(bool(((labels >= 0) & (labels < NUM_CLASSES)).all()), "labels must be digits 0-9")
    check(bool((((targets >= 0) & (targets < NUM_CLASSES) & (targets != labels)) | (targets == -1)).all()),
          "targets must be -1 or a digit other than the label")
    check(bool(((tensors["indices"] >= 0) & (tensors["indices"] < n_test)).all()),
          f"indices must point into the {n_test} test images")
    check(bool((tensors["steps"] >= 0).all()), "steps must be >= 0")
    return tensors
