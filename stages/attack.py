"""Stages attack_untargeted and attack_targeted (seed section 4): iterative sign-gradient attacks on
the model named by `attack.model` (model1), over the test images it classifies correctly.

Writes data/adversarial/<kind>.pt (adversarial images, true labels, targets, success flags, steps
used, test-set indices), metrics/attack_<kind>.json and the galleries in plots/attack_<kind>/figures/.
"""
import torch

from stages.lib import config, plotting
from stages.lib.attacks import KINDS, perturbation_norms, random_targets, sign_gradient_attack
from stages.lib.data import class_counts, load_split
from stages.lib.io import staged_outputs, write_json
from stages.lib.models import load_cnn
from stages.lib.training import MNIST_DIR, PIXEL_RANGE, predict, to_model_input

def read_params(params, kind):
    models = config.value(params, "train.models")
    p = {
        "model": config.choice(params, "attack.model", list(models) if isinstance(models, dict) else []),
        "step_size": config.number(params, "attack.step_size", low=0, low_open=True),
        "max_steps": config.number(params, "attack.max_steps", integer=True, low=1),
        "epsilon": config.number(params, "attack.epsilon", optional=True, low=0, low_open=True),
        "batch_size": config.number(params, "attack.batch_size", integer=True, low=1),
        "n_images": config.number(params, "attack.n_images", optional=True, integer=True, low=1),
        "seed": config.number(params, "attack.seed", integer=True, low=0),
        "grid_size": config.number(params, "attack.grid_size", integer=True, low=1),
        "gallery": config.number_list(params, f"attack.gallery.{kind}", min_len=0, integer=True, low=0),
    }
    return p


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
            config.warn(f"gallery index {index}: no successful example left to show instead")
            continue
        reason = "is not in the attacked test images" if pos is None else "was not attacked successfully"
        config.warn(f"gallery index {index} {reason}; showing test index {int(indices[spare[0]])} instead")
        chosen.append(spare[0])
    return chosen


def main(argv=None):
    parser = config.parser(__doc__)
    parser.add_argument("kind", choices=KINDS)
    args = parser.parse_args(argv)
    params = config.load_params(args.params)
    p = read_params(params, args.kind)
    device = config.resolve_device(params)
    model = load_cnn(params, p["model"], device)
    images, labels = load_split(MNIST_DIR, "test")
    inputs, labels = to_model_input(images).to(device), labels.to(device)
    correct = torch.nonzero(predict(model, inputs, p["batch_size"]) == labels).flatten()
    indices = correct[:p["n_images"]] if p["n_images"] else correct
    originals, true_labels = inputs[indices], labels[indices]
    targets = None
    if args.kind == "targeted":
        targets = random_targets(true_labels, torch.Generator().manual_seed(p["seed"])).to(device)
    adversarial, success, steps = sign_gradient_attack(
        model, originals, true_labels, targets=targets, step_size=p["step_size"], max_steps=p["max_steps"],
        bounds=PIXEL_RANGE, epsilon=p["epsilon"], batch_size=p["batch_size"])
    predicted = predict(model, adversarial, p["batch_size"])
    linf, l2 = perturbation_norms(originals, adversarial)
    won = success.nonzero().flatten()

    def over_successes(values, reduce):
        return reduce(values[won].double()).item() if len(won) else None

    metrics = {
        "model": p["model"], "images_attacked": len(indices), "successes": len(won),
        "success_rate": len(won) / max(len(indices), 1),
        "steps_mean": over_successes(steps, torch.mean), "steps_median": over_successes(steps, torch.median),
        "linf_mean": over_successes(linf, torch.mean), "linf_max": over_successes(linf, torch.max),
        "l2_mean": over_successes(l2, torch.mean), "l2_max": over_successes(l2, torch.max),
        "predicted_histogram": class_counts(predicted[won]),
    }
    examples = []
    for pos in gallery_positions(p["gallery"], indices.cpu(), success.cpu()):
        title = f"index {int(indices[pos])}: true {int(true_labels[pos])}, predicted {int(predicted[pos])}"
        if targets is not None:
            title += f", target {int(targets[pos])}"
        examples.append({"original": originals[pos, 0].cpu(), "adversarial": adversarial[pos, 0].cpu(), "title": title})
    with staged_outputs() as stage:
        torch.save({"images": adversarial.cpu(), "labels": true_labels.cpu(),
                    "targets": (targets if targets is not None else torch.full_like(true_labels, -1)).cpu(),
                    "success": success.cpu(), "steps": steps.cpu(), "indices": indices.cpu()},
                   stage(f"data/adversarial/{args.kind}.pt"))
        write_json(stage(f"metrics/attack_{args.kind}.json"), metrics)
        figures = stage(f"plots/attack_{args.kind}/figures")
        figures.mkdir()
        if examples:
            plotting.adversarial_gallery(examples, figures / "gallery.png")
        if len(won):
            plotting.image_grid(adversarial[won[:p["grid_size"]], 0].cpu(), figures / "grid.png")
    print(f"attack_{args.kind}: {len(won)}/{len(indices)} successful ({metrics['success_rate']:.1%}), "
          f"median {metrics['steps_median']} steps")


if __name__ == "__main__":
    config.run(main)
