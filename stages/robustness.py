"""Stage robustness (beyond the seed): how far each model holds against bounded attacks, measured as
the robustness literature does, on a seeded subset of the test set (robustness.n_images).

For each model of robustness.models and each epsilon of the grid (pixel units [-1, 1]; the outputs
also give epsilon / 2, the literature's [0, 1] units): accuracy under FGSM, under PGD (robustness.pgd:
steps, step size, restarts), and the curve the seed's unbounded early-stopping attack (attack.step_size,
attack.max_steps) gives for free: an image is robust at epsilon when its minimal L-inf perturbation
exceeds epsilon. An image fooled within a smaller budget counts as fooled at every larger one (an
adversarial example within epsilon' < epsilon is one within epsilon), so no curve rises with epsilon.

Transfer vs perturbation size: the source model's (robustness.source, model1) adversarial images shown
to every model: PGD images made on it at each epsilon (all steps, no early stopping), and the unbounded
attack continued until the source's wrong logit leads by each margin of robustness.margins.

Writes metrics/robustness.json, plots/robustness/<model>.csv (accuracy vs epsilon per attack) and
plots/robustness/transfer.csv (accuracy of every model on the source's images vs epsilon and margin).
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
from stages.lib.data import PIXEL_RANGE, load_split, to_model_input
from stages.lib.io import log_run, staged_outputs, write_csv, write_json
from stages.lib.models import load_cnn, predict
from stages.lib.params import Count, Name, Positive, Section, Seed, StageParams, load_params, unique
from stages.lib.runtime import Device, StageRun, Threads, WorkingBatch, set_up, working_batch

CPU_BATCH = 256  # robustness.batch_size auto on the CPU
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
    pgd: Pgd
    margins: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]
    n_images: Count | None
    seed: Seed
    batch_size: WorkingBatch  # auto: CPU_BATCH on the CPU, a GPU's own size there

    @field_validator("models", "margins")
    @classmethod
    def _no_repeats(cls, value):
        return unique(value)

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


def bounded_curve(attack, images, labels, epsilons):
    """Accuracy at each epsilon under attack(images, labels, epsilon) -> fooled flags; an image fooled
    at a budget is not attacked again at the larger ones (it stays fooled)."""
    fooled = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
    curve = []
    for epsilon in epsilons:
        alive = (~fooled).nonzero().flatten()
        fooled[alive] = attack(images[alive], labels[alive], epsilon)
        curve.append(accuracy(fooled))
    return curve


def minimal_curve(model, images, labels, epsilons, *, step_size, max_steps, batch_size):
    """Accuracy at each epsilon from one run of the unbounded early-stopping attack: robust at epsilon
    when the attack failed or its (minimal) L-inf perturbation exceeds epsilon."""
    adversarial, fooled, _ = sign_gradient_attack(model, images, labels, step_size=step_size, max_steps=max_steps,
                                                  bounds=PIXEL_RANGE, batch_size=batch_size)
    linf, _ = perturbation_norms(images, adversarial)
    return [accuracy(fooled & (linf <= epsilon + 1e-6)) for epsilon in epsilons]


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

    curves = {}
    for name, model in models.items():
        clean = accuracy(predict(model, x, batch) != y)
        curves[name] = {
            "clean": clean,
            "fgsm": bounded_curve(lambda xs, ys, e: fgsm(model, xs, ys, e, bounds=PIXEL_RANGE, batch_size=batch)[1],
                                  x, y, epsilons),
            "pgd": bounded_curve(lambda xs, ys, e: pgd(model, xs, ys, e, steps=r.pgd.steps, step_size=r.pgd.step_size,
                                                       restarts=r.pgd.restarts, bounds=PIXEL_RANGE, batch_size=batch,
                                                       seed=r.seed)[1], x, y, epsilons),
            "minimal": minimal_curve(model, x, y, epsilons, step_size=run.step_size, max_steps=run.max_steps,
                                     batch_size=batch),
        }
        print(f"robustness {name}: clean {clean:.4f}; PGD " + ", ".join(
            f"{e / 2:g}: {a:.3f}" for e, a in zip(epsilons, curves[name]["pgd"])) + " (epsilon in [0, 1])")

    source = models[r.source]
    transfer_rows = []
    for epsilon in epsilons:
        adversarial, _, _ = sign_gradient_attack(
            source, x, y, step_size=r.pgd.step_size, max_steps=r.pgd.steps, epsilon=epsilon,
            bounds=PIXEL_RANGE, batch_size=batch, early_stop=False, random_start=True, seed=r.seed)
        transfer_rows.append({"setting": "pgd", "epsilon": epsilon, "epsilon_01": epsilon / 2, "margin": None,
                              "median_linf": None}
                             | {name: accuracy(predict(m, adversarial, batch) != y) for name, m in models.items()})
    for margin in r.margins:
        adversarial, fooled, _ = sign_gradient_attack(source, x, y, step_size=run.step_size,
                                                      max_steps=run.max_steps, bounds=PIXEL_RANGE,
                                                      batch_size=batch, margin=margin)
        linf, _ = perturbation_norms(x, adversarial)
        transfer_rows.append({"setting": "margin", "epsilon": None, "epsilon_01": None, "margin": margin,
                              "median_linf": linf[fooled].median().item() if fooled.any() else None}
                             | {name: accuracy(predict(m, adversarial[fooled], batch) != y[fooled])
                                if fooled.any() else None for name, m in models.items()})
    seconds = time.perf_counter() - start

    def by_epsilon(values):
        return {f"{e:g}": v for e, v in zip(epsilons, values)}

    metrics = {
        "n_images": len(y),
        "epsilon_01": by_epsilon([e / 2 for e in epsilons]),
        "models": {name: {"clean": c["clean"]} | {attack: by_epsilon(c[attack]) for attack in ("fgsm", "pgd", "minimal")}
                   for name, c in curves.items()},
        "transfer": {"source": r.source,
                     "pgd": {name: by_epsilon([r[name] for r in transfer_rows if r["setting"] == "pgd"])
                             for name in models},
                     "margin": {name: {f"{r['margin']:g}": r[name] for r in transfer_rows if r["setting"] == "margin"}
                                for name in models}},
    }
    with staged_outputs() as stage:
        write_json(stage("metrics/robustness.json"), metrics)
        for name, c in curves.items():
            write_csv(stage(f"plots/robustness/{name}.csv"),
                      [{"epsilon": e, "epsilon_01": e / 2, "fgsm": f, "pgd": g, "minimal": m}
                       for e, f, g, m in zip(epsilons, c["fgsm"], c["pgd"], c["minimal"])])
        write_csv(stage("plots/robustness/transfer.csv"), transfer_rows)
    log_run("robustness", seconds=seconds, images=len(y), models=len(models))
    print(f"robustness: {len(models)} models x {len(epsilons)} budgets on {len(y)} test images in {seconds:.1f} s")


if __name__ == "__main__":
    cli.run(main)
