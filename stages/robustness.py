"""Stage robustness@<model> (beyond the seed): how far one model holds against bounded L-inf attacks,
measured as the robustness literature does, on robustness.models.<model>.n_images seeded test images.

Budgets are in the literature's [0, 1] pixel units (params and outputs alike). For each budget of
robustness.epsilon, accuracy under each attack alone: FGSM; PGD with random restarts
(robustness.pgd; the default, 50 steps x 10 restarts, is Wong et al. 2020's protocol); and the curve
the seed's unbounded early-stopping attack (attack.step_size in the models' [-1, 1] units,
attack.max_steps) gives for free (an image is robust at epsilon when its minimal L-inf perturbation
exceeds epsilon). At the budgets of robustness.autoattack, AutoAttack (torchattacks' standard version)
then attacks every image that all of those failed on. The robust accuracy is the worst case per image:
an image counts as robust only if every attack fails on it. An image fooled within a smaller budget
counts as fooled at every larger one, so no curve rises with epsilon.

Writes metrics/robustness/<model>.json (clean and worst-case accuracy at the robustness.headline
budgets), plots/robustness/<model>.csv (accuracy vs epsilon per attack, the worst case, and how many
images AutoAttack alone fooled) and plots/robustness/<model>.json (the evaluation as a reviewer reads it:
the threat model, the images, every attack's settings, the library versions, and each accuracy with its
count and 95 % Wilson interval).
"""
import platform
import time
from dataclasses import dataclass
from importlib.metadata import version

import torch

from stages.lib import cli
from stages.lib.adversarial_sets import AttackSection
from stages.lib.attacks import fgsm, perturbation_norms, pgd, sign_gradient_attack
from stages.lib.autoattack import AUTOATTACK, autoattack
from stages.lib.data import PIXEL_RANGE
from stages.lib.errors import StageError
from stages.lib.io import log_run, staged_outputs, write_csv, write_json
from stages.lib.models import load_cnn, predict
from stages.lib.params import StageParams, load_params
from stages.lib.robustness import CPU_BATCH, Pgd, RobustnessSection, evaluation_images
from stages.lib.runtime import Device, StageRun, Threads, set_up, working_batch
from stages.lib.stats import METHOD, interval
from stages.lib.units import UNIT_SPAN, UNITS, model_units

CURVES = ("fgsm", "pgd", "minimal", "worst", "only_autoattack")  # plots/robustness/<model>.csv, beside epsilon


class Params(StageParams):
    device: Device
    threads: Threads
    robustness: RobustnessSection
    attack: AttackSection


@dataclass(frozen=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys."""
    n_images: int | None
    epsilon: list[float]
    headline: list[float]
    autoattack: list[float]
    pgd: Pgd
    seed: int
    batch_size: int | str
    step_size: float  # the seed's unbounded attack, as attack.* sets it (the models' [-1, 1] units)
    max_steps: int


def read_params(path, name):
    p = load_params(Params, path)
    r = p.robustness
    if name not in r.models:
        raise StageError(f"{path}: 'robustness.models' has no model '{name}' (it has: {', '.join(r.models)})")
    return Run(p.device, p.threads, r.models[name].n_images, r.epsilon, r.headline, r.autoattack, r.pgd, r.seed,
               r.batch_size, p.attack.step_size, p.attack.max_steps)


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
    """Per-image fooled flags, one row per epsilon (model units), from one run of the unbounded
    early-stopping attack: fooled at epsilon when it succeeded with an L-inf perturbation within epsilon."""
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


def evaluation_record(name, run, n_test, clean, worst_at):
    """The evaluation as a reviewer reads it: what was attacked, how, with what, and each accuracy with
    its count and 95 % interval. clean and worst_at[epsilon] are accuracies on the evaluated images."""
    images = clean["images"]
    return {
        "model": name,
        "interval": METHOD,
        "threat_model": {"norm": "Linf", "epsilon_units": UNITS, "epsilon": run.epsilon,
                         "pixel_bounds": "[0, 1] (every adversarial image stays a valid image)"},
        "images": {"count": images, "test_set_size": n_test, "seed": run.seed,
                   "selection": f"the first {images:,} of a random permutation of the {n_test:,} test images "
                                f"(torch.randperm under seed {run.seed}); a smaller evaluation's images are the "
                                "first of a larger one's"},
        "attacks": {
            "fgsm": {"steps": 1, "step_size": "epsilon"},
            "pgd": {"steps": run.pgd.steps, "step_size": run.pgd.step_size, "restarts": run.pgd.restarts,
                    "random_start": "uniform in the epsilon ball", "loss": "cross-entropy",
                    "fooled": "at any step of any restart"},
            "seed_attack": {"step_size_model_units": run.step_size, "step_size": run.step_size / UNIT_SPAN,
                            "max_steps": run.max_steps, "bounded": False,
                            "fooled_at_epsilon": "its first misclassified image lies within epsilon"},
            "autoattack": {**AUTOATTACK, "epsilon": run.autoattack,
                           "on": "the images every other attack failed on"},
        },
        "worst_case_rule": "an image counts as robust only if every attack fails on it, and an image fooled "
                           "within a smaller budget counts as fooled at every larger one",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchattacks": version("torchattacks")},
        "clean": clean,
        "worst_case": {f"{e:g}": worst_at[e] for e in run.headline},
    }


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("name", help="a model under robustness.models in params.yaml")
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--model", required=True, help="the model's checkpoint")
    args = parser.parse_args(argv)
    run = read_params(args.params, args.name)
    device, _ = set_up(run.device, run.threads)
    model = load_cnn(args.model, device)
    x, y, _, n_test = evaluation_images(args.data, run.n_images, run.seed, device)
    epsilons, batch = [model_units(e) for e in run.epsilon], working_batch(run.batch_size, device, CPU_BATCH)
    step = model_units(run.pgd.step_size)
    start = time.perf_counter()

    clean = accuracy(predict(model, x, batch) != y)
    attacks = {
        "fgsm": lambda: fooled_by_budget(
            lambda xs, ys, e: fgsm(model, xs, ys, e, bounds=PIXEL_RANGE, batch_size=batch)[1], x, y, epsilons),
        "pgd": lambda: fooled_by_budget(
            lambda xs, ys, e: pgd(model, xs, ys, e, steps=run.pgd.steps, step_size=step, restarts=run.pgd.restarts,
                                  bounds=PIXEL_RANGE, batch_size=batch, seed=run.seed)[1], x, y, epsilons),
        "minimal": lambda: minimal_fooled(model, x, y, epsilons, step_size=run.step_size, max_steps=run.max_steps,
                                          batch_size=batch),
    }
    fooled, seconds = {}, {}
    for attack, measure in attacks.items():
        began = time.perf_counter()
        fooled[attack] = measure()
        seconds[attack] = time.perf_counter() - began
    began = time.perf_counter()
    worst, only_autoattack = worst_case(
        fooled, lambda index, e: autoattack(model, x[index], y[index], e, bounds=PIXEL_RANGE, seed=run.seed,
                                            batch_size=max(batch, len(index)))[1],
        epsilons, [model_units(e) for e in run.autoattack])
    seconds["autoattack"] = time.perf_counter() - began
    curves = {"worst": [accuracy(row) for row in worst]} | {a: [accuracy(row) for row in rows] for a, rows in fooled.items()}
    curves["only_autoattack"] = [only_autoattack.get(e) for e in epsilons]
    worst_at = {e: interval(curves["worst"][i], len(y)) for i, e in enumerate(run.epsilon)}
    record = evaluation_record(args.name, run, n_test, interval(clean, len(y)), worst_at)
    metrics = {"clean": clean} | {f"robust_{e:g}": worst_at[e]["accuracy"] for e in run.headline}
    with staged_outputs() as stage:
        write_json(stage(f"metrics/robustness/{args.name}.json"), metrics)
        write_json(stage(f"plots/robustness/{args.name}.json"), record)
        write_csv(stage(f"plots/robustness/{args.name}.csv"),
                  [{"epsilon": e, "images": len(y)} | {k: curves[k][i] for k in CURVES} | {
                      "worst_low": worst_at[e]["low"], "worst_high": worst_at[e]["high"]}
                   for i, e in enumerate(run.epsilon)])
    seconds["total"] = time.perf_counter() - start
    log_run(f"robustness@{args.name}", images=len(y), split=seconds)
    print(f"robustness {args.name}: clean {clean:.4f} on {len(y):,} test images; worst case over the attacks "
          + ", ".join(f"ε {e:g}: {a['accuracy']:.4f} [{a['low']:.4f}, {a['high']:.4f}]" for e, a in worst_at.items())
          + " ([0, 1] units, 95 % Wilson); " + ", ".join(f"{k} {t:.1f} s" for k, t in seconds.items()))


if __name__ == "__main__":
    cli.run(main)
