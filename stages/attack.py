"""Stage attack@untargeted and attack@targeted (seed sections 4.1 and 4.2): iterative sign-gradient
attacks on the model `attack.model` (model1), over the test images it classifies correctly.

Writes metrics/attack_<kind>.json (headline numbers), plots/attack_<kind>/images.csv (every attacked
image: label, target, prediction, steps, perturbation norms in the models' [-1, 1] pixel units, and the
row of the gallery figure that shows it) and the galleries in plots/attack_<kind>/figures/. The transfer stage makes the same set again where it shows it
to the other models (stages.lib.adversarial_sets).
"""
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from stages.lib import cli, plotting
from stages.lib.adversarial_sets import SIGN_GRADIENT_CPU_BATCH, KINDS, AttackSection, adversarial_set
from stages.lib.attacks import perturbation_norms
from stages.lib.data import load_split, to_model_input
from stages.lib.errors import warn
from stages.lib.io import log_run, staged_outputs, write_csv, write_json
from stages.lib.models import load_cnn, predict
from stages.lib.params import StageParams, load_params
from stages.lib.runtime import Device, StageRun, Threads, set_up, working_batch


class Params(StageParams):
    device: Device
    threads: Threads
    attack: AttackSection


@dataclass(frozen=True, kw_only=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys."""
    step_size: float
    max_steps: int
    epsilon: float | None
    batch_size: int | str
    n_images: int | None
    seed: int | None  # of the random targets; None for the untargeted attack
    grid_size: int
    gallery: list[int]


def read_params(path, kind):
    p = load_params(Params, path)
    a = p.attack
    return Run(device=p.device, threads=p.threads, step_size=a.step_size, max_steps=a.max_steps, epsilon=a.epsilon,
               batch_size=a.batch_size, n_images=a.n_images, seed=a.seed if kind == "targeted" else None,
               grid_size=a.grid_size, gallery=list(getattr(a.gallery, kind)))


def gallery_positions(requested, indices, success):
    """Positions (into the attacked set) of the requested test-set indices; an index that was not
    attacked or whose attack failed is replaced by the next successful example, with a warning."""
    position_of = {int(i): pos for pos, i in enumerate(indices.tolist())}
    successful = [pos for pos in range(len(indices)) if success[pos]]
    chosen = []
    for index in requested:
        pos = position_of.get(index)
        if pos is not None and success[pos] and pos not in chosen:
            chosen.append(pos)
            continue
        later = [q for q in successful if int(indices[q]) > index and q not in chosen]
        spare = later or [q for q in successful if q not in chosen]
        if not spare:
            warn(f"gallery index {index}: no successful example left to show instead")
            continue
        reason = "is not in the attacked test images" if pos is None else "was not attacked successfully"
        warn(f"gallery index {index} {reason}; showing test index {int(indices[spare[0]])} instead")
        chosen.append(spare[0])
    return chosen


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--model", required=True, help="the checkpoint of the attacked model")
    args = parser.parse_args(argv)
    run = read_params(args.params, args.kind)
    device, _ = set_up(run.device, run.threads)
    batch = working_batch(run.batch_size, device, SIGN_GRADIENT_CPU_BATCH)
    model = load_cnn(args.model, device)
    images, labels = load_split(args.data, "test")
    start = time.perf_counter()
    made = adversarial_set(args.kind, model, to_model_input(images).to(device), labels.to(device),
                           step_size=run.step_size, max_steps=run.max_steps, epsilon=run.epsilon,
                           n_images=run.n_images, seed=run.seed, batch_size=batch, desc=f"attack {args.kind}")
    seconds = time.perf_counter() - start
    originals, adversarial, indices, success = made["originals"], made["images"], made["indices"], made["success"]
    true_labels, targets, steps = made["labels"], made["targets"], made["steps"]
    predicted = predict(model, adversarial, batch)
    linf, l2 = perturbation_norms(originals, adversarial)
    won = success.nonzero().flatten()
    per_image = {"index": indices, "label": true_labels, "target": targets, "success": success,
                 "steps": steps, "predicted": predicted, "linf": linf, "l2": l2}
    metrics = {"success_rate": len(won) / max(len(indices), 1),
               "steps_median": steps[won].double().median().item() if len(won) else None}
    examples, shown = [], gallery_positions(run.gallery, indices.cpu(), success.cpu())
    per_image["gallery_row"] = torch.full_like(indices, -1)  # the row of the gallery figure that shows it, or -1
    per_image["gallery_row"][shown] = torch.arange(len(shown), device=indices.device)
    for pos in shown:
        title = f"index {int(indices[pos])}: true {int(true_labels[pos])}, predicted {int(predicted[pos])}"
        if args.kind == "targeted":
            title += f", target {int(targets[pos])}"
        examples.append({"original": originals[pos, 0].cpu(), "adversarial": adversarial[pos, 0].cpu(), "title": title})
    with staged_outputs() as stage:
        write_json(stage(f"metrics/attack_{args.kind}.json"), metrics)
        write_csv(stage(f"plots/attack_{args.kind}/images.csv"), {k: v.cpu().numpy() for k, v in per_image.items()})
        figures = stage(f"plots/attack_{args.kind}/figures")
        figures.mkdir()
        if examples:
            plotting.adversarial_gallery(examples, figures / "gallery.png")
        if len(won):
            plotting.image_grid(adversarial[won[:run.grid_size], 0].cpu(), figures / "grid.png")
    name = f"attack {args.kind} on {Path(args.model).stem}"
    log_run(name, seconds=seconds, images_per_s=len(indices) / seconds if seconds else None)
    print(f"{name}: {len(won)}/{len(indices)} successful ({metrics['success_rate']:.1%}), "
          f"median {metrics['steps_median']} steps, {seconds:.1f} s")


if __name__ == "__main__":
    cli.run(main)
