"""The robustness evaluation's params (section `robustness`, read by the stages robustness@<model> and
robustness_transfer; budgets in the [0, 1] units of stages.lib.units) and the seeded test images both
evaluate on."""
from typing import Annotated

import torch
from pydantic import AfterValidator, Field, field_validator

from stages.lib.data import load_split, to_model_input
from stages.lib.params import Count, Name, Section, Seed, unique
from stages.lib.runtime import WorkingBatch

ROBUSTNESS_CPU_BATCH = 256  # robustness.batch_size auto on the CPU
Budget = Annotated[float, Field(ge=0, le=1)]  # L-inf, in [0, 1] units: 1 spans the whole range


def increasing(values):
    """values, each larger than the one before; else a ValueError."""
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"must increase, got {values!r}")
    return values


class Pgd(Section):
    steps: Annotated[int, Field(ge=1, le=10_000)]
    step_size: Annotated[float, Field(gt=0, le=1)]  # [0, 1] units
    restarts: Annotated[int, Field(ge=1, le=100)]


class AutoAttack(Section):
    epsilon: list[Budget]  # at these budgets, on the images every other attack failed on
    steps: Annotated[int, Field(ge=1, le=10_000)]  # APGD-CE, APGD-T and FAB-T (the reference: 100)
    queries: Annotated[int, Field(ge=1, le=100_000)]  # Square (the reference: 5,000)


class Checks(Section):
    """Carlini et al. 2019's checks against gradient masking that need attacks of their own."""
    epsilon: Budget  # PGD with each count of steps at this budget
    steps: Annotated[list[Annotated[int, Field(ge=1, le=10_000)]], Field(min_length=2), AfterValidator(increasing)]


class Evaluated(Section):
    n_images: Count | None  # the first n of the seeded permutation of the test set (null: all of it)


class Transfer(Section):
    source: Name  # whose PGD and margin-attack images are shown to every model
    n_images: Count | None
    margins: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]

    @field_validator("margins")
    @classmethod
    def _no_repeats(cls, value):
        return unique(value)


class RobustnessSection(Section):
    models: Annotated[dict[Name, Evaluated], Field(min_length=1)]
    epsilon: Annotated[list[Budget], Field(min_length=1), AfterValidator(increasing)]
    headline: Annotated[list[Budget], Field(min_length=1)]  # metrics: the worst case at these budgets
    autoattack: AutoAttack
    checks: Checks
    pgd: Pgd
    seed: Seed
    batch_size: WorkingBatch  # auto: ROBUSTNESS_CPU_BATCH on the CPU, a GPU's own size there
    transfer: Transfer

    @field_validator("headline")
    @classmethod
    def _on_the_grid(cls, value, info):
        return on_the_grid(value, info.data.get("epsilon", value))

    @field_validator("autoattack")
    @classmethod
    def _autoattack_on_the_grid(cls, value, info):
        on_the_grid(value.epsilon, info.data.get("epsilon", value.epsilon))
        return value

    @field_validator("checks")
    @classmethod
    def _checks_on_the_grid(cls, value, info):
        on_the_grid([value.epsilon], info.data.get("epsilon", [value.epsilon]))
        return value

    @field_validator("transfer")
    @classmethod
    def _source_is_evaluated(cls, transfer, info):
        models = info.data.get("models", {transfer.source: None})
        if transfer.source not in models:
            raise ValueError(f"'source' must be one of 'robustness.models' ({', '.join(models)}), "
                             f"got {transfer.source!r}")
        return transfer


def on_the_grid(budgets, grid):
    unique(budgets)
    off = [e for e in budgets if e not in grid]
    if off:
        raise ValueError(f"must be budgets of 'robustness.epsilon' ({', '.join(f'{e:g}' for e in grid)}); "
                         f"{', '.join(f'{e:g}' for e in off)} is not")
    return budgets


def evaluation_images(data_dir, n_images, seed, device):
    """(model-input images, labels, test-set indices, test-set size): the first n_images (all if None) of
    a permutation of the test set drawn under `seed`, so a smaller evaluation's images are the first of a
    larger one's."""
    images, labels = load_split(data_dir, "test")
    chosen = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n_images]
    return to_model_input(images[chosen]).to(device), labels[chosen].to(device), chosen, len(labels)


def robust_accuracy(fooled):
    """The share of images not fooled, from per-image fooled flags (None for no images)."""
    return (~fooled).double().mean().item() if len(fooled) else None
