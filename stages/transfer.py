"""Stage transfer (seed section 4.3): the successful adversarial images of both attacks, made on
`attack.model` (model1), shown to `transfer.model` (model2, trained independently).

For each set: both models' accuracy against the true labels, model2's rate of predicting the target
(targeted set), and model2's clean accuracy on the same images. Writes metrics/transfer.json and a
confusion matrix (true label vs model2's prediction on the adversarial images) per set.
"""
import torch

from stages.lib import config, plotting
from stages.lib.attacks import KINDS
from stages.lib.data import NUM_CLASSES, load_split
from stages.lib.io import load_tensors, staged_outputs, write_json
from stages.lib.models import load_cnn
from stages.lib.training import MNIST_DIR, predict, to_model_input

ADVERSARIAL = {"images": torch.float32, "labels": torch.int64, "targets": torch.int64,
               "success": torch.bool, "steps": torch.int64, "indices": torch.int64}


def accuracy(predicted, labels):
    return (predicted == labels).double().mean().item() if len(labels) else None


def main(argv=None):
    args = config.parser(__doc__).parse_args(argv)
    params = config.load_params(args.params)
    models = config.value(params, "train.models")
    names = list(models) if isinstance(models, dict) else []
    source = config.choice(params, "attack.model", names)
    target = config.choice(params, "transfer.model", names)
    batch_size = config.number(params, "attack.batch_size", integer=True, low=1)
    device = config.resolve_device(params)
    sets = {kind: load_tensors(f"data/adversarial/{kind}.pt", ADVERSARIAL) for kind in KINDS}
    attacked_model, receiving_model = load_cnn(params, source, device), load_cnn(params, target, device)
    test_images, _ = load_split(MNIST_DIR, "test")
    metrics, confusions = {"source_model": source, "target_model": target}, {}
    for kind, adversarial in sets.items():
        won = adversarial["success"]
        images = adversarial["images"][won].to(device)
        labels = adversarial["labels"][won].to(device)
        clean = to_model_input(test_images[adversarial["indices"][won]]).to(device)
        on_receiver = predict(receiving_model, images, batch_size)
        metrics[kind] = {
            "images": len(labels),
            f"{source}_accuracy": accuracy(predict(attacked_model, images, batch_size), labels),
            f"{target}_accuracy": accuracy(on_receiver, labels),
            f"{target}_clean_accuracy": accuracy(predict(receiving_model, clean, batch_size), labels),
        }
        if kind == "targeted":
            metrics[kind][f"{target}_target_rate"] = accuracy(on_receiver, adversarial["targets"][won].to(device))
        pairs = labels.cpu() * NUM_CLASSES + on_receiver.cpu()
        confusions[kind] = torch.bincount(pairs, minlength=NUM_CLASSES ** 2).view(NUM_CLASSES, NUM_CLASSES)
    with staged_outputs() as stage:
        figures = stage("plots/transfer/figures")
        figures.mkdir()
        for kind, matrix in confusions.items():
            plotting.confusion_matrix(matrix, f"{kind} adversarial images of {source}: {target}'s predictions",
                                      figures / f"confusion_{kind}.png")
        write_json(stage("metrics/transfer.json"), metrics)
    for kind in KINDS:
        m = metrics[kind]
        print(f"transfer {kind}: {m['images']} images; {source} accuracy {m[f'{source}_accuracy']}, "
              f"{target} accuracy {m[f'{target}_accuracy']} (clean {m[f'{target}_clean_accuracy']})")


if __name__ == "__main__":
    config.run(main)
