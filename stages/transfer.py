"""Stage transfer (seed section 4.3): the successful adversarial images of both attacks, made on the
source model (`attack.model`, model1), shown to the receiving models (`transfer.models`: model2,
trained independently, and the defended models retrain and adversarial_training). The sets are made
here with the attack stage's own function and settings (stages.lib.adversarial_sets): the same images
the attack stage reports, with no 30 MB file between the two stages.

For each set and model: accuracy against the true labels, the rate of predicting the target (targeted
set) and the clean accuracy on the same images. Writes plots/transfer/sets.csv (every figure per set, and
the source), metrics/transfer.json (the seed's headline: the first receiver's accuracy per set and its
target rate), a confusion matrix per set for the first receiver (true label vs its prediction), and
plots/transfer/predictions.csv, every model's prediction per test image, clean and on each set's
adversarial image (-1 where the attack did not succeed), so that two models on the same images can be
compared image by image (a paired test).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field, field_validator, model_validator

from stages.lib import cli, plotting
from stages.lib.adversarial_sets import SIGN_GRADIENT_CPU_BATCH, KINDS, AttackSection, adversarial_set
from stages.lib.data import NUM_CLASSES, load_split, to_model_input
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.models import load_cnn, predict
from stages.lib.params import Name, Section, StageParams, load_params, unique
from stages.lib.runtime import Device, StageRun, Threads, set_up, working_batch


class TransferSection(Section):
    models: Annotated[list[Name], Field(min_length=1)]  # the receivers of attack.model's adversarial sets

    @field_validator("models")
    @classmethod
    def _no_repeats(cls, value):
        return unique(value)


class Params(StageParams):
    device: Device
    threads: Threads
    attack: AttackSection
    transfer: TransferSection

    @model_validator(mode="after")
    def _receivers_are_not_the_source(self):
        if self.attack.model in self.transfer.models:
            raise ValueError(f"'transfer.models' names {self.attack.model!r}, the attacked model itself "
                             "(attack.model); name independently trained ones")
        return self


@dataclass(frozen=True, kw_only=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys."""
    batch_size: int | str
    source: str            # attack.model: the model the adversarial sets were made on
    receivers: list[str]   # transfer.models
    step_size: float       # the attack's settings, as the attack stage reads them
    max_steps: int
    epsilon: float | None
    n_images: int | None
    seed: int              # the targeted attack's random targets


def read_params(path):
    p = load_params(Params, path)
    a = p.attack
    return Run(device=p.device, threads=p.threads, batch_size=a.batch_size, source=a.model,
               receivers=list(p.transfer.models), step_size=a.step_size, max_steps=a.max_steps, epsilon=a.epsilon,
               n_images=a.n_images, seed=a.seed)


def accuracy(predicted, labels):
    return (predicted == labels).double().mean().item() if len(labels) else None


def _on_the_set(indices, values, n):
    """Per test image, the value of the set's image made from it; -1 for test images not in the set."""
    column = torch.full((n,), -1, dtype=torch.int64)
    column[indices] = values.to(torch.int64)
    return column


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--models", required=True, help="the folder of the checkpoints <name>.pt")
    args = parser.parse_args(argv)
    run = read_params(args.params)
    device, _ = set_up(run.device, run.threads)
    source, receivers = run.source, run.receivers
    batch = working_batch(run.batch_size, device, SIGN_GRADIENT_CPU_BATCH)
    test_images, test_labels = load_split(args.data, "test")
    test_images, test_labels = to_model_input(test_images).to(device), test_labels.to(device)
    models = {name: load_cnn(Path(args.models) / f"{name}.pt", device) for name in [source, *receivers]}
    metrics, rows, confusions = {}, [], {}
    predictions = {"test_index": torch.arange(len(test_labels)), "label": test_labels.cpu()} | {
        name: predict(model, test_images, batch).cpu() for name, model in models.items()}
    for kind in KINDS:
        adversarial = adversarial_set(kind, models[source], test_images, test_labels, step_size=run.step_size,
                                      max_steps=run.max_steps, epsilon=run.epsilon, n_images=run.n_images,
                                      seed=run.seed, batch_size=batch, desc=f"transfer: attack {kind}")
        won = adversarial["success"]
        images, labels, targets = adversarial["images"][won], adversarial["labels"][won], adversarial["targets"][won]
        clean = adversarial["originals"][won]
        row, metrics[kind] = {"set": kind, "source": source, "images": len(labels)}, {}
        indices = adversarial["indices"][won].cpu()
        if kind == "targeted":
            predictions[f"{kind}_target"] = _on_the_set(indices, targets.cpu(), len(test_labels))
        for name, model in models.items():
            predicted = predict(model, images, batch)
            predictions[f"{kind}_{name}"] = _on_the_set(indices, predicted.cpu(), len(test_labels))
            row[f"{name}_accuracy"] = accuracy(predicted, labels)
            row[f"{name}_clean_accuracy"] = accuracy(predict(model, clean, batch), labels)
            row[f"{name}_target_rate"] = accuracy(predicted, targets) if kind == "targeted" else None
            if name == receivers[0]:
                metrics[kind][f"{name}_accuracy"] = row[f"{name}_accuracy"]
                if kind == "targeted":
                    metrics[kind][f"{name}_target_rate"] = row[f"{name}_target_rate"]
                pairs = labels.cpu() * NUM_CLASSES + predicted.cpu()
                confusions[kind] = torch.bincount(pairs, minlength=NUM_CLASSES ** 2).view(NUM_CLASSES, NUM_CLASSES)
        rows.append(row)
    with staged_outputs() as stage:
        figures = stage("plots/transfer/figures")
        figures.mkdir()
        for kind, matrix in confusions.items():
            plotting.confusion_matrix(matrix, f"{kind} adversarial images of {source}: {receivers[0]}'s predictions",
                                      figures / f"confusion_{kind}.png")
        write_json(stage("metrics/transfer.json"), metrics)
        write_csv(stage("plots/transfer/sets.csv"), rows)
        write_csv(stage("plots/transfer/predictions.csv"), {k: v.tolist() for k, v in predictions.items()})
    for row in rows:
        print(f"transfer {row['set']}: {row['images']} images of {source}; accuracy " + ", ".join(
            f"{name} {row[f'{name}_accuracy']:.4f}" for name in models if row[f"{name}_accuracy"] is not None))


if __name__ == "__main__":
    cli.run(main)
