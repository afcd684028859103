"""Stage robustness_transfer (beyond the seed): the seed's 4.3 transfer, as a function of the
perturbation's size. The source model's (robustness.transfer.source, model1) adversarial images are
shown to every model of robustness.models, on robustness.transfer.n_images seeded test images: PGD
images made on the source within each budget of robustness.epsilon ([0, 1] units; all steps, no early
stopping, one random start), and the seed's unbounded attack continued until the source's wrong logit
leads by each margin of robustness.transfer.margins.

Writes plots/robustness/transfer.csv: per setting, the budget or margin, the median L-inf size of the
source's successful perturbations ([0, 1] units), how many images it rests on, and every model's accuracy.
"""
from dataclasses import dataclass
from pathlib import Path

from stages.lib import cli
from stages.lib.adversarial_sets import AttackSection
from stages.lib.attacks import perturbation_norms, sign_gradient_attack
from stages.lib.data import PIXEL_RANGE
from stages.lib.io import staged_outputs, write_csv
from stages.lib.models import load_cnn, predict
from stages.lib.params import StageParams, load_params
from stages.lib.robustness import (ROBUSTNESS_CPU_BATCH, Pgd, RobustnessSection, Transfer, evaluation_images,
                                   robust_accuracy)
from stages.lib.runtime import Device, StageRun, Threads, set_up, working_batch
from stages.lib.units import UNIT_SPAN, model_units


class Params(StageParams):
    device: Device
    threads: Threads
    robustness: RobustnessSection
    attack: AttackSection


@dataclass(frozen=True, kw_only=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys."""
    models: list[str]
    transfer: Transfer
    epsilon: list[float]
    pgd: Pgd
    seed: int
    batch_size: int | str
    step_size: float  # the seed's unbounded attack, as attack.* sets it (the models' [-1, 1] units)
    max_steps: int


def read_params(path):
    p = load_params(Params, path)
    r = p.robustness
    return Run(device=p.device, threads=p.threads, models=list(r.models), transfer=r.transfer, epsilon=r.epsilon,
               pgd=r.pgd, seed=r.seed, batch_size=r.batch_size, step_size=p.attack.step_size,
               max_steps=p.attack.max_steps)


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--models", required=True, help="the folder of the checkpoints <name>.pt")
    args = parser.parse_args(argv)
    run = read_params(args.params)
    device, _ = set_up(run.device, run.threads)
    models = {name: load_cnn(Path(args.models) / f"{name}.pt", device) for name in run.models}
    x, y, _, _ = evaluation_images(args.data, run.transfer.n_images, run.seed, device)
    batch, source = working_batch(run.batch_size, device, ROBUSTNESS_CPU_BATCH), run.transfer.source
    rows = []
    for epsilon in run.epsilon:
        adversarial, _, _ = sign_gradient_attack(
            models[source], x, y, step_size=model_units(run.pgd.step_size), max_steps=run.pgd.steps,
            epsilon=model_units(epsilon), bounds=PIXEL_RANGE, batch_size=batch, early_stop=False, random_start=True,
            seed=run.seed)
        rows.append({"source": source, "setting": "pgd", "epsilon": epsilon, "margin": None, "median_linf": None,
                     "images": len(y)} | {name: robust_accuracy(predict(m, adversarial, batch) != y)
                                         for name, m in models.items()})
    for margin in run.transfer.margins:
        adversarial, fooled, _ = sign_gradient_attack(models[source], x, y, step_size=run.step_size,
                                                      max_steps=run.max_steps, bounds=PIXEL_RANGE,
                                                      batch_size=batch, margin=margin)
        linf, _ = perturbation_norms(x, adversarial)
        rows.append({"source": source, "setting": "margin", "epsilon": None, "margin": margin,
                     "median_linf": linf[fooled].median().item() / UNIT_SPAN if fooled.any() else None,
                     "images": int(fooled.sum())}
                    | {name: robust_accuracy(predict(m, adversarial[fooled], batch) != y[fooled])
                       for name, m in models.items()})
    with staged_outputs() as stage:
        write_csv(stage("plots/robustness/transfer.csv"), rows)
    print(f"robustness_transfer: {source}'s adversarial images shown to {len(models)} models, {len(rows)} settings "
          f"on {len(y):,} test images")


if __name__ == "__main__":
    cli.run(main)
