"""Stage robustness (beyond the seed): how far each model holds against bounded attacks, measured as
the robustness literature does, on a seeded subset of the test set (robustness.n_images).

For each model of robustness.models and each epsilon of the grid (pixel units [-1, 1]; the outputs
also give epsilon / 2, the literature's [0, 1] units), accuracy under each attack alone: FGSM; PGD
with restarts on the project's core (robustness.pgd; the default, 50 steps x 10 restarts, is Wong et
al. 2020's protocol); and the curve the seed's unbounded early-stopping attack (attack.step_size,
attack.max_steps) gives for free (an image is robust at epsilon when its minimal L-inf perturbation
exceeds epsilon). At the budgets of robustness.autoattack, AutoAttack (standard, from torchattacks)
then attacks every image that all of those failed on. A model's robust accuracy is the worst case per
image: an image counts as robust only if every attack fails on it. An image fooled within a smaller
budget counts as fooled at every larger one (an adversarial example within epsilon' < epsilon is one
within epsilon), so no curve rises with epsilon.

Transfer vs perturbation size: the source model's (robustness.source, model1) adversarial images shown
to every model: PGD images made on it at each epsilon (all steps, no early stopping), and the unbounded
attack continued until the source's wrong logit leads by each margin of robustness.margins.

Writes metrics/robustness.json (per model: clean and worst-case robust accuracy at the
robustness.headline budgets), plots/robustness/<model>.csv (accuracy vs epsilon per attack, the worst
case, and how many images AutoAttack alone fooled) and plots/robustness/transfer.csv (accuracy of every
model on the source's images vs epsilon and margin).
"""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field, field_validator

from stages.lib import cli
from stages.lib.adversarial_sets import AttackSection
from stages.lib.attacks import fgsm, perturbation_norms, pgd, sign_gradient_attack
from stages.lib.autoattack import autoattack
from stages.lib.data import PIXEL_RANGE, load_split, to_model_input
from stages.lib.io import log_run, staged_outputs, write_csv, write_json
from stages.lib.models import load_cnn, predict
from stages.lib.params import Count, Name, Positive, Section, Seed, StageParams, load_params, unique
from stages.lib.runtime import Device, StageRun, Threads, WorkingBatch, set_up, working_batch

CPU_BATCH = 256  # robustness.batch_size auto on the CPU
CURVES = ("fgsm", "pgd", "minimal", "worst", "only_autoattack")  # plots/robustness/<model>.csv, beside epsilon
# Perturbation budgets are in the pixel units the models see ([-1, 1]): 2 spans the whole range.
Budget = Annotated[float, Field(ge=0, le=2)]


class Pgd(Section):
    steps: Annotated[int, Field(ge=1, le=10_000)]
    step_size: Positive
    restarts: Annotated[int, Field(ge=1, le=100)]


class RobustnessSection(Section):
    models: Annotated[list[Name], Field(min_length=1)]
    source: Name          # whose PGD and margin-attack images are shown to every model
    epsilon: Annotated[list[Budget], Field(min_length=1)]
    headline: Annotated[list[Budget], Field(min_length=1)]  # metrics: the worst case at these budgets
    autoattack: list[Budget]  # AutoAttack at these budgets, on the images every other attack failed on
    pgd: Pgd
    margins: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]
    n_images: Count | None
    seed: Seed
    batch_size: WorkingBatch  # auto: CPU_BATCH on the CPU, a GPU's own size there

    @field_validator("models", "margins", "headline", "autoattack")
    @classmethod
    def _no_repeats(cls, value):
        return unique(value)

    @field_validator("headline", "autoattack")
    @classmethod
    def _on_the_grid(cls, value, info):
        grid = info.data.get("epsilon", value)
        off = [e for e in value if e not in grid]
        if off:
            raise ValueError(f"must be budgets of 'robustness.epsilon' ({', '.join(f'{e:g}' for e in grid)}); "
                             f"{', '.join(f'{e:g}' for e in off)} is not")
        return value

    @field_validator("epsilon")
    @classmethod
    def _increasing(cls, value):
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError(f"must increase, got {value!r}")
        return value

    @field_validator("source")
    @classmethod
    def _one_of_the_models(cls, source, info):
        if source not in info.data.get("models", [source]):
            raise ValueError(f"must be one of 'robustness.models' ({', '.join(info.data['models'])})")
        return source


class Params(StageParams):
    device: Device
    threads: Threads
    robustness: RobustnessSection
    attack: AttackSection


@dataclass(frozen=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys."""
    robustness: RobustnessSection
    step_size: float  # the seed's unbounded attack, as attack.* sets it
    max_steps: int


def read_params(path):
    p = load_params(Params, path)
    return Run(p.device, p.threads, p.robustness, p.attack.step_size, p.attack.max_steps)


def accuracy(fooled):
    return (~fooled).double().mean().item()


def fooled_by_budget(attack, images, labels, epsilons):
    """Per-image fooled flags, one row per epsilon, under attack(images, labels, epsilon) -> fooled; an
    image fooled at a budget is not attacked again at the larger ones (it stays fooled)."""
    fooled = torch.zeros(len(epsilons), len(labels), dtype=torch.bool, device=labels.device)
    so_far = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
    for row, epsilon in enumerate(epsilons):
        alive = (~so_far).nonzero().flatten()
        so_far[alive] = attack(images[alive], labels[alive], epsilon)
        fooled[row] = so_far
    return fooled


def minimal_fooled(model, images, labels, epsilons, *, step_size, max_steps, batch_size):
    """Per-image fooled flags, one row per epsilon, from one run of the unbounded early-stopping
    attack: fooled at epsilon when it succeeded with an L-inf perturbation within epsilon."""
    adversarial, success, _ = sign_gradient_attack(model, images, labels, step_size=step_size, max_steps=max_steps,
                                                   bounds=PIXEL_RANGE, batch_size=batch_size)
    linf, _ = perturbation_norms(images, adversarial)
    return torch.stack([success & (linf <= epsilon + 1e-6) for epsilon in epsilons])


def worst_case(fooled, attack, epsilons, autoattack_budgets):
    """The per-image worst case over every attack in `fooled` (rows per epsilon), with attack(image
    indices, epsilon) -> their fooled flags (AutoAttack) run at autoattack_budgets on the images all of
    them failed on. Returns (worst-case fooled flags, {epsilon: how many images only AutoAttack fooled})."""
    worst = torch.stack(list(fooled.values())).any(0)
    only_autoattack = {}
    for row, epsilon in enumerate(epsilons):
        if epsilon not in autoattack_budgets:
            continue
        alive = (~worst[row]).nonzero().flatten()
        newly = alive[attack(alive, epsilon)]
        worst[row:, newly] = True  # an example within this budget is one within every larger budget
        only_autoattack[epsilon] = len(newly)
    return worst, only_autoattack


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--models", required=True, help="the folder of the checkpoints <name>.pt")
    args = parser.parse_args(argv)
    run = read_params(args.params)
    r = run.robustness
    device, _ = set_up(run.device, run.threads)
    models = {name: load_cnn(Path(args.models) / f"{name}.pt", device) for name in r.models}
    images, labels = load_split(args.data, "test")
    chosen = torch.randperm(len(labels), generator=torch.Generator().manual_seed(r.seed))[:r.n_images]
    x, y = to_model_input(images[chosen]).to(device), labels[chosen].to(device)
    epsilons, batch = r.epsilon, working_batch(r.batch_size, device, CPU_BATCH)
    start = time.perf_counter()

    curves, split = {}, {}
    for name, model in models.items():
        clean = accuracy(predict(model, x, batch) != y)
        fooled, seconds = {}, {}
        attacks = {
            "fgsm": lambda: fooled_by_budget(
                lambda xs, ys, e: fgsm(model, xs, ys, e, bounds=PIXEL_RANGE, batch_size=batch)[1], x, y, epsilons),
            "pgd": lambda: fooled_by_budget(
                lambda xs, ys, e: pgd(model, xs, ys, e, steps=r.pgd.steps, step_size=r.pgd.step_size,
                                      restarts=r.pgd.restarts, bounds=PIXEL_RANGE, batch_size=batch, seed=r.seed)[1],
                x, y, epsilons),
            "minimal": lambda: minimal_fooled(model, x, y, epsilons, step_size=run.step_size,
                                              max_steps=run.max_steps, batch_size=batch),
        }
        for attack, measure in attacks.items():
            began = time.perf_counter()
            fooled[attack] = measure()
            seconds[attack] = time.perf_counter() - began
        began = time.perf_counter()
        worst, only_autoattack = worst_case(
            fooled, lambda index, e: autoattack(model, x[index], y[index], e, bounds=PIXEL_RANGE, seed=r.seed,
                                                batch_size=max(batch, len(index)))[1], epsilons, r.autoattack)
        seconds["autoattack"] = time.perf_counter() - began
        curves[name] = {"clean": clean, "worst": [accuracy(row) for row in worst],
                        "only_autoattack": [only_autoattack.get(e) for e in epsilons]} \
            | {attack: [accuracy(row) for row in rows] for attack, rows in fooled.items()}
        split[name] = seconds
        print(f"robustness {name}: clean {clean:.4f}; worst case over the attacks " + ", ".join(
            f"{e / 2:g}: {a:.3f}" for e, a in zip(epsilons, curves[name]["worst"])) + " (epsilon in [0, 1]); "
            + ", ".join(f"{attack} {t:.1f} s" for attack, t in seconds.items()))

    source = models[r.source]
    transfer_rows = []
    for epsilon in epsilons:
        adversarial, _, _ = sign_gradient_attack(
            source, x, y, step_size=r.pgd.step_size, max_steps=r.pgd.steps, epsilon=epsilon,
            bounds=PIXEL_RANGE, batch_size=batch, early_stop=False, random_start=True, seed=r.seed)
        transfer_rows.append({"source": r.source, "setting": "pgd", "epsilon": epsilon, "epsilon_01": epsilon / 2, "margin": None,
                              "median_linf": None}
                             | {name: accuracy(predict(m, adversarial, batch) != y) for name, m in models.items()})
    for margin in r.margins:
        adversarial, fooled, _ = sign_gradient_attack(source, x, y, step_size=run.step_size,
                                                      max_steps=run.max_steps, bounds=PIXEL_RANGE,
                                                      batch_size=batch, margin=margin)
        linf, _ = perturbation_norms(x, adversarial)
        transfer_rows.append({"source": r.source, "setting": "margin", "epsilon": None, "epsilon_01": None, "margin": margin,
                              "median_linf": linf[fooled].median().item() if fooled.any() else None}
                             | {name: accuracy(predict(m, adversarial[fooled], batch) != y[fooled])
                                if fooled.any() else None for name, m in models.items()})
    seconds = time.perf_counter() - start

    metrics = {"models": {
        name: {"clean": c["clean"]} | {f"robust_{e / 2:g}": c["worst"][epsilons.index(e)] for e in r.headline}
        for name, c in curves.items()}}
    with staged_outputs() as stage:
        write_json(stage("metrics/robustness.json"), metrics)
        for name, c in curves.items():
            write_csv(stage(f"plots/robustness/{name}.csv"),
                      [{"epsilon": e, "epsilon_01": e / 2, "images": len(y)} | {k: c[k][i] for k in CURVES}
                       for i, e in enumerate(epsilons)])
        write_csv(stage("plots/robustness/transfer.csv"), transfer_rows)
    log_run("robustness", seconds=seconds, images=len(y), models=len(models), split=split)
    print(f"robustness: {len(models)} models x {len(epsilons)} budgets on {len(y)} test images in {seconds:.1f} s")


if __name__ == "__main__":
    cli.run(main)
