"""Stage robustness@<model> (beyond the homework): how far one model holds against bounded L-inf attacks,
measured as the robustness literature does, on robustness.models.<model>.n_images seeded test images,
with the checks that tell a real defence from masked gradients (Carlini et al. 2019).

Budgets are in the literature's [0, 1] pixel units (params and outputs alike). At each budget of
robustness.epsilon: FGSM; PGD with random restarts (robustness.pgd; the default, 50 steps x 10
restarts, is Wong et al. 2020's protocol); the curve the homework's unbounded early-stopping attack
(attack.step_size in the models' [-1, 1] units, attack.max_steps) gives for free (an image counts as
fooled at epsilon when its first misclassified image lies within epsilon); and PGD images made on
robustness.transfer.source (an undefended model) shown to this one. At robustness.checks.epsilon, PGD
with each of robustness.checks.steps (one restart). At the budgets of robustness.autoattack, AutoAttack
(stages.lib.autoattack; the reference's standard version with its default steps and queries) then
attacks every image all of those failed on. The robust accuracy is the worst case per image: an image
counts as robust only if every attack fails on it; an image fooled within a smaller budget counts as
fooled at every larger one, so no curve rises with epsilon.

Writes metrics/robustness/<model>.json (clean and worst-case accuracy at the robustness.headline
budgets), plots/robustness/<model>.csv (accuracy vs epsilon per attack, the worst case, and how many
images AutoAttack alone fooled), plots/robustness/images/<model>.csv (per evaluated image and budget,
the attacks that fooled it) and plots/robustness/<model>.json (the evaluation as a reviewer reads it:
the threat model, the images, every attack's label and settings, the library versions, each accuracy
with its count and 95 % Wilson interval, and the gradient-masking checks with their numbers and verdicts).
"""
import platform
import time
from dataclasses import dataclass
from importlib.metadata import version

import torch

from stages.lib import cli
from stages.lib.adversarial_sets import AttackSection
from stages.lib.attacks import fgsm, perturbation_norms, pgd, sign_gradient_attack
from stages.lib.autoattack import autoattack, is_reference, settings
from stages.lib.data import PIXEL_RANGE
from stages.lib.errors import StageError
from stages.lib.io import log_run, staged_outputs, write_csv, write_json
from stages.lib.models import load_cnn, model_label, predict
from stages.lib.params import StageParams, load_params
from stages.lib.robustness import (ROBUSTNESS_CPU_BATCH, AutoAttack, Checks, Pgd, RobustnessSection, evaluation_images,
                                   robust_accuracy)
from stages.lib.runtime import Device, StageRun, Threads, set_up, working_batch
from stages.lib.stats import HIGHER, METHOD, interval, paired_flags
from stages.lib.units import UNIT_SPAN, UNITS, model_units

CURVES = ("fgsm", "pgd", "minimal", "transfer", "worst", "only_autoattack")  # plots/robustness/<model>.csv
SQUARE_ALPHA = 0.002  # the reference's check: Square lowering the robust accuracy by more is a warning
NEAR_ZERO = 0.1  # at the largest budget an attack that works leaves at most chance (one class of ten)


class Params(StageParams):
    device: Device
    threads: Threads
    robustness: RobustnessSection
    attack: AttackSection


@dataclass(frozen=True, kw_only=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys."""
    n_images: int | None
    epsilon: list[float]
    headline: list[float]
    autoattack: AutoAttack
    checks: Checks
    pgd: Pgd
    seed: int
    batch_size: int | str
    source: str  # the undefended model whose PGD images are shown to this one
    step_size: float  # the homework's unbounded attack, as attack.* sets it (the models' [-1, 1] units)
    max_steps: int


def read_params(path, name):
    p = load_params(Params, path)
    r = p.robustness
    if name not in r.models:
        raise StageError(f"{path}: 'robustness.models' has no model '{name}' (it has: {', '.join(r.models)})")
    return Run(device=p.device, threads=p.threads, n_images=r.models[name].n_images, epsilon=r.epsilon,
               headline=r.headline, autoattack=r.autoattack, checks=r.checks, pgd=r.pgd, seed=r.seed,
               batch_size=r.batch_size, source=r.transfer.source, step_size=p.attack.step_size,
               max_steps=p.attack.max_steps)


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


def at_one_budget(flags, row, rows):
    """Fooled flags of an attack run at one budget only, as rows per epsilon: its flags from `row` on (an
    example within a budget is one within every larger budget)."""
    fooled = torch.zeros(rows, len(flags), dtype=torch.bool, device=flags.device)
    fooled[row:] = flags
    return fooled


def worst_case(fooled):
    """Per image and budget, fooled by any attack, an image fooled within a budget counting as fooled
    within every larger one."""
    return torch.stack(list(fooled.values())).any(0).int().cummax(0).values.bool()


def masking_checks(fooled, run, names):
    """Carlini et al. 2019's checks that apply to a deterministic model, each {check, epsilon, numbers,
    verdict: pass | warning}; accuracies are shares of the evaluated images, paired comparisons by
    stats.paired_flags (McNemar's exact test, Newcombe's 95 % interval of the difference)."""
    right = {a: ~f for a, f in fooled.items()}
    n = fooled["fgsm"].shape[1]
    row = {e: i for i, e in enumerate(run.epsilon)}
    checks = []

    def compare(first, second):
        result = paired_flags(first.tolist(), second.tolist())
        return {k: result[k] for k in ("difference", "low", "high", "p_value", "only_first", "only_second", "words")}

    budgets = [e for e in run.epsilon if e > 0]
    rows = [{"epsilon": e, "fgsm": robust_accuracy(fooled["fgsm"][row[e]]),
             "pgd": robust_accuracy(fooled["pgd"][row[e]]),
             "pgd_minus_fgsm": compare(right["pgd"][row[e]], right["fgsm"][row[e]])} for e in budgets]
    checks.append({"check": "iterative_vs_single_step", "numbers": rows,
                   "verdict": "warning" if any(r["pgd_minus_fgsm"]["words"] == HIGHER for r in rows) else "pass"})

    e = run.checks.epsilon
    steps = [{"steps": k, "step_size": 2.5 * e / k, "accuracy": robust_accuracy(fooled[names[k]][row[e]])}
             for k in run.checks.steps]
    for shorter, longer in zip(steps, steps[1:]):
        longer["minus_fewer_steps"] = compare(right[names[longer["steps"]]][row[e]],
                                              right[names[shorter["steps"]]][row[e]])
    checks.append({"check": "more_steps", "epsilon": e, "numbers": steps,
                   "verdict": "warning" if any(s.get("minus_fewer_steps", {}).get("words") == HIGHER
                                               for s in steps) else "pass"})

    worst = worst_case(fooled)
    top = run.epsilon[-1]
    checks.append({"check": "large_budget", "epsilon": top,
                   "numbers": {"worst": robust_accuracy(worst[-1]), "pgd": robust_accuracy(fooled["pgd"][-1]),
                               "at_most": NEAR_ZERO},
                   "verdict": "pass" if robust_accuracy(worst[-1]) <= NEAR_ZERO else "warning"})

    for e in run.autoattack.epsilon:
        square = int(fooled["square"][row[e]].sum())
        checks.append({"check": "gradient_free", "epsilon": e,
                       "numbers": {"square_only": square, "images": n, "drop": square / n, "alpha": SQUARE_ALPHA},
                       "verdict": "warning" if square / n > SQUARE_ALPHA else "pass"})

    if "transfer" in fooled:
        white = [a for a in fooled if a not in ("transfer", "apgd_ce", "apgd_t", "fab_t", "square")]
        white_box = torch.stack([fooled[a] for a in white]).any(0)
        rows = [{"epsilon": e, "transfer": robust_accuracy(fooled["transfer"][row[e]]),
                 "white_box": robust_accuracy(white_box[row[e]]),
                 "transfer_only": int((fooled["transfer"][row[e]] & ~white_box[row[e]]).sum()),
                 "white_box_minus_transfer": compare(~white_box[row[e]], right["transfer"][row[e]])} for e in budgets]
        checks.append({"check": "transfer", "source": run.source, "white_box": white, "numbers": rows,
                       "verdict": "warning" if any(r["white_box_minus_transfer"]["words"] == HIGHER
                                                   for r in rows) else "pass"})
    return checks


def attack_record(run, names, with_transfer):
    """Every attack's label and settings, keyed by the names of the per-image table."""
    record = {
        "fgsm": {"label": "FGSM", "steps": 1, "step_size": "epsilon", "epsilon": run.epsilon},
        "pgd": {"label": f"PGD-{run.pgd.steps} × {run.pgd.restarts}", "steps": run.pgd.steps,
                "step_size": run.pgd.step_size, "restarts": run.pgd.restarts,
                "random_start": "uniform in the epsilon ball", "loss": "cross-entropy",
                "fooled": "at any step of any restart", "epsilon": run.epsilon},
        "minimal": {"label": "the homework's attack", "step_size_model_units": run.step_size,
                    "step_size": run.step_size / UNIT_SPAN, "max_steps": run.max_steps, "bounded": False,
                    "fooled_at_epsilon": "its first misclassified image lies within epsilon", "epsilon": run.epsilon},
    }
    if with_transfer:
        record["transfer"] = {"label": f"transfer from {model_label(run.source)}", "source": run.source,
                              "made_by": f"PGD-{run.pgd.steps} on {model_label(run.source)}, one random start, every step "
                                         "taken (no early stop)", "steps": run.pgd.steps,
                              "step_size": run.pgd.step_size, "epsilon": run.epsilon}
    for k in run.checks.steps:
        record[names[k]] = {"label": f"PGD-{k}", "steps": k, "step_size": 2.5 * run.checks.epsilon / k,
                            "restarts": 1, "random_start": "uniform in the epsilon ball", "epsilon": [run.checks.epsilon]}
    reference = is_reference(run.autoattack.steps, run.autoattack.queries)
    for name, attack in settings(run.autoattack.steps, run.autoattack.queries).items():
        record[name] = {**attack, "epsilon": run.autoattack.epsilon, "part_of": "autoattack"}
    record["autoattack"] = {
        "label": "AutoAttack, standard version" if reference else
                 f"AutoAttack, reduced ({run.autoattack.steps} steps, {run.autoattack.queries:,} queries)",
        "reference_settings": reference, "library": "torchattacks", "seed": run.seed,
        "attacks": list(settings(run.autoattack.steps, run.autoattack.queries)),
        "run": "one after another, each on the images every earlier attack (ours included) failed on",
        "epsilon": run.autoattack.epsilon}
    return record


def evaluation_record(name, run, n_test, clean, worst_at, attacks, checks):
    """The evaluation as a reviewer reads it: what was attacked, how, with what, each accuracy with its
    count and 95 % interval, and the checks. clean and worst_at[epsilon] are accuracies on the evaluated
    images."""
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
        "attacks": attacks,
        "worst_case_rule": "an image counts as robust only if every attack fails on it, and an image fooled "
                           "within a smaller budget counts as fooled at every larger one",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchattacks": version("torchattacks")},
        "clean": clean,
        "worst_case": {f"{e:g}": worst_at[e] for e in run.headline},
        "checks": checks,
    }


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("name", help="a model under robustness.models in params.yaml")
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--model", required=True, help="the model's checkpoint")
    parser.add_argument("--source", required=True, help="robustness.transfer.source's checkpoint")
    args = parser.parse_args(argv)
    run = read_params(args.params, args.name)
    device, _ = set_up(run.device, run.threads)
    model = load_cnn(args.model, device)
    source = None if run.source == args.name else load_cnn(args.source, device)
    x, y, chosen, n_test = evaluation_images(args.data, run.n_images, run.seed, device)
    epsilons, batch = [model_units(e) for e in run.epsilon], working_batch(run.batch_size, device, ROBUSTNESS_CPU_BATCH)
    step, rows = model_units(run.pgd.step_size), len(run.epsilon)
    check_row = run.epsilon.index(run.checks.epsilon)
    names = {k: f"pgd{k}" for k in run.checks.steps}
    start = time.perf_counter()

    clean = robust_accuracy(predict(model, x, batch) != y)

    def transferred(xs, ys, e):
        made, _, _ = sign_gradient_attack(source, xs, ys, step_size=step, max_steps=run.pgd.steps, epsilon=e,
                                          bounds=PIXEL_RANGE, batch_size=batch, early_stop=False,
                                          random_start=True, seed=run.seed)
        return predict(model, made, batch) != ys

    attacks = {
        "fgsm": lambda: fooled_by_budget(
            lambda xs, ys, e: fgsm(model, xs, ys, e, bounds=PIXEL_RANGE, batch_size=batch)[1], x, y, epsilons),
        "pgd": lambda: fooled_by_budget(
            lambda xs, ys, e: pgd(model, xs, ys, e, steps=run.pgd.steps, step_size=step, restarts=run.pgd.restarts,
                                  bounds=PIXEL_RANGE, batch_size=batch, seed=run.seed)[1], x, y, epsilons),
        "minimal": lambda: minimal_fooled(model, x, y, epsilons, step_size=run.step_size, max_steps=run.max_steps,
                                          batch_size=batch),
    } | ({"transfer": lambda: fooled_by_budget(transferred, x, y, epsilons)} if source is not None else {}) | {
        names[k]: lambda k=k: at_one_budget(
            pgd(model, x, y, epsilons[check_row], steps=k, step_size=2.5 * epsilons[check_row] / k, restarts=1,
                bounds=PIXEL_RANGE, batch_size=batch, seed=run.seed)[1], check_row, rows)
        for k in run.checks.steps}
    fooled, seconds = {}, {}
    for attack, measure in attacks.items():
        began = time.perf_counter()
        fooled[attack] = measure()
        seconds[attack] = time.perf_counter() - began

    began = time.perf_counter()
    parts = settings(run.autoattack.steps, run.autoattack.queries)
    fooled |= {part: torch.zeros(rows, len(y), dtype=torch.bool, device=y.device) for part in parts}
    only_autoattack = [None] * rows
    for e in run.autoattack.epsilon:
        row = run.epsilon.index(e)
        alive = (~worst_case(fooled)[row]).nonzero().flatten()
        _, found = autoattack(model, x[alive], y[alive], epsilons[row], bounds=PIXEL_RANGE, seed=run.seed,
                              batch_size=batch, steps=run.autoattack.steps, queries=run.autoattack.queries)
        for part, flags in found.items():
            fooled[part][row:, alive[flags]] = True
        only_autoattack[row] = sum(int(flags.sum()) for flags in found.values())
    seconds["autoattack"] = time.perf_counter() - began

    worst = worst_case(fooled)
    curves = {"worst": [robust_accuracy(r) for r in worst]} | {
        a: [robust_accuracy(r) for r in fooled[a]] if a in fooled else [None] * rows
        for a in ("fgsm", "pgd", "minimal", "transfer")}
    curves["only_autoattack"] = only_autoattack
    worst_at = {e: interval(curves["worst"][i], len(y)) for i, e in enumerate(run.epsilon)}
    checks = masking_checks(fooled, run, names)
    record = evaluation_record(args.name, run, n_test, interval(clean, len(y)), worst_at,
                               attack_record(run, names, source is not None), checks)
    per_image = [{"test_index": int(i), "label": int(label)} | {
        f"{e:g}": " ".join(a for a in fooled if fooled[a][row, j]) for row, e in enumerate(run.epsilon)}
        for j, (i, label) in enumerate(zip(chosen.tolist(), y.tolist()))]
    metrics = {"clean": clean} | {f"robust_{e:g}": worst_at[e]["accuracy"] for e in run.headline}
    with staged_outputs() as stage:
        write_json(stage(f"metrics/robustness/{args.name}.json"), metrics)
        write_json(stage(f"plots/robustness/{args.name}.json"), record)
        write_csv(stage(f"plots/robustness/{args.name}.csv"),
                  [{"epsilon": e, "images": len(y)} | {k: curves[k][i] for k in CURVES} | {
                      "worst_low": worst_at[e]["low"], "worst_high": worst_at[e]["high"]}
                   for i, e in enumerate(run.epsilon)])
        write_csv(stage(f"plots/robustness/images/{args.name}.csv"), per_image)
    seconds["total"] = time.perf_counter() - start
    log_run(f"robustness@{args.name}", images=len(y), split=seconds)
    print(f"robustness {args.name}: clean {clean:.4f} on {len(y):,} test images; worst case over the attacks "
          + ", ".join(f"ε {e:g}: {a['accuracy']:.4f} [{a['low']:.4f}, {a['high']:.4f}]" for e, a in worst_at.items())
          + " ([0, 1] units, 95 % Wilson); checks: " + ", ".join(f"{c['check']} {c['verdict']}" for c in checks)
          + "; " + ", ".join(f"{k} {t:.1f} s" for k, t in seconds.items()))


if __name__ == "__main__":
    cli.run(main)
