"""Stage transfer (seed section 4.3): the successful adversarial images of both attacks, made on the
source model (`attack.model`, model1), shown to the receiving model (`transfer.model`, model2,
trained independently).

For each set: both models' accuracy against the true labels, the receiver's rate of predicting the
target (targeted set), and the receiver's clean accuracy on the same images. Writes
metrics/transfer.json (the receiver's accuracy per set and its target rate), plots/transfer/sets.csv
(every figure per set) and a confusion matrix per set (true label vs the receiver's prediction).
"""
from pathlib import Path

import torch

from stages.lib import cli, plotting
from stages.lib.attacks import KINDS, load_adversarial
from stages.lib.data import NUM_CLASSES, PIXEL_RANGE, load_split, to_model_input
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.models import load_cnn, predict
from stages.lib.params import load_params
from stages.lib.runtime import resolve_device, use_threads


def read_params(params):
    """The plain values this stage uses; dvc.yaml lists exactly these keys (the models come from the
    command line)."""
    return {"device": params.device, "threads": params.threads, "batch_size": params.attack.batch_size}


def accuracy(predicted, labels):
    return (predicted == labels).double().mean().item() if len(labels) else None


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--adversarial", required=True, help="the folder of the attacks' <kind>.pt files")
    parser.add_argument("--source", required=True, help="the checkpoint of the attacked model")
    parser.add_argument("--target", required=True, help="the checkpoint of the receiving model")
    args = parser.parse_args(argv)
    p = read_params(load_params(args.params))
    use_threads(p["threads"])
    device = resolve_device(p["device"])
    source, target = Path(args.source).stem, Path(args.target).stem
    if source == target:
        raise cli.StageError(f"params.yaml: 'transfer.model' is {target!r}, the attacked model itself; "
                             "name an independently trained one")
    test_images, _ = load_split(args.data, "test")
    sets = {kind: load_adversarial(Path(args.adversarial) / f"{kind}.pt", len(test_images), PIXEL_RANGE)
            for kind in KINDS}
    attacked_model, receiving_model = load_cnn(args.source, device), load_cnn(args.target, device)
    metrics, rows, confusions = {}, [], {}
    for kind, adversarial in sets.items():
        won = adversarial["success"]
        images = adversarial["images"][won].to(device)
        labels = adversarial["labels"][won].to(device)
        clean = to_model_input(test_images[adversarial["indices"][won]]).to(device)
        on_receiver = predict(receiving_model, images, p["batch_size"])
        row = {"set": kind, "images": len(labels),
               f"{source}_accuracy": accuracy(predict(attacked_model, images, p["batch_size"]), labels),
               f"{target}_accuracy": accuracy(on_receiver, labels),
               f"{target}_clean_accuracy": accuracy(predict(receiving_model, clean, p["batch_size"]), labels),
               f"{target}_target_rate": None}
        metrics[kind] = {f"{target}_accuracy": row[f"{target}_accuracy"]}
        if kind == "targeted":
            row[f"{target}_target_rate"] = accuracy(on_receiver, adversarial["targets"][won].to(device))
            metrics[kind][f"{target}_target_rate"] = row[f"{target}_target_rate"]
        rows.append(row)
        pairs = labels.cpu() * NUM_CLASSES + on_receiver.cpu()
        confusions[kind] = torch.bincount(pairs, minlength=NUM_CLASSES ** 2).view(NUM_CLASSES, NUM_CLASSES)
    with staged_outputs() as stage:
        figures = stage("plots/transfer/figures")
        figures.mkdir()
        for kind, matrix in confusions.items():
            plotting.confusion_matrix(matrix, f"{kind} adversarial images of {source}: {target}'s predictions",
                                      figures / f"confusion_{kind}.png")
        write_json(stage("metrics/transfer.json"), metrics)
        write_csv(stage("plots/transfer/sets.csv"), rows)
    for row in rows:
        print(f"transfer {row['set']}: {row['images']} images; {source} accuracy {row[f'{source}_accuracy']}, "
              f"{target} accuracy {row[f'{target}_accuracy']} (clean {row[f'{target}_clean_accuracy']})")


if __name__ == "__main__":
    cli.run(main)
