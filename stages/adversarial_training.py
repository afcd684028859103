"""Stage adversarial_training (defence 2, the seed's second proposal: "a component in the loss function
which formulates adversarial loss"): a CNN trained on (1 - s) CE(clean) + s CE(adversarial), its
adversarial examples made on the fly for each batch within an epsilon ball (adversarial_training.*;
epsilon and step_size in the [0, 1] units of stages.lib.units):
by default PGD from a random start (Madry et al. 2018), or the fast FGSM (Wong et al. 2020); Adam with
a linear one-cycle learning-rate schedule. On a GPU each training step is replayed as a CUDA graph
(training.FullBatchSteps), the attack's steps included.

A guard against catastrophic overfitting holds guard.images training images out and attacks them with
PGD after every epoch; when that accuracy falls more than guard.max_drop below its best, training stops
and the best epoch's weights are kept (metrics: kept_epoch; the guard's accuracy per epoch is in the CSV).

Writes the checkpoint, metrics/train/adversarial_training.json and plots/train/adversarial_training.csv
(with the guard's PGD accuracy per epoch).
"""
import math
from typing import Annotated, Literal

import torch
from pydantic import Field, field_validator

from stages.lib import cli
from stages.lib.data import PIXEL_RANGE, load_model_inputs
from stages.lib.defences import CollapseGuard, adversarial_loss
from stages.lib.errors import StageError, warn
from stages.lib.io import staged_outputs
from stages.lib.models import CnnSpec, seeded_cnn
from stages.lib.params import Count, Section, Seed, StageParams, load_params
from stages.lib.runtime import Device, Threads, set_up
from stages.lib.training import (HEADLINE, Epochs, LearningRate, Schedule, Stopwatch, graph_safe_adam, train_epochs,
                                 write_trained_model)
from stages.lib.units import model_units

NAME = "adversarial_training"


class Guard(Section):
    images: Count         # held out of the training set, attacked after every epoch
    pgd_steps: Count
    max_drop: Annotated[float, Field(gt=0, le=1)]  # PGD accuracy below best - max_drop: collapsed


class AdversarialTrainingSection(Section):
    model: CnnSpec | None  # the defended CNN's own architecture; null: the shared `model` section
    method: Literal["fgsm", "pgd"]
    epsilon: Annotated[float, Field(gt=0, le=1)]    # [0, 1] units
    step_size: Annotated[float, Field(gt=0, le=1)]  # [0, 1] units
    pgd_steps: Count
    adversarial_share: Annotated[float, Field(ge=0, le=1)]
    epochs: Epochs
    epsilon_ramp_epochs: Annotated[int, Field(ge=0)]  # epsilon rises linearly from 0 over these epochs
    batch_size: Count
    lr: LearningRate
    eval_batch_size: Count
    seed: Seed
    guard: Guard

    @field_validator("epsilon_ramp_epochs")
    @classmethod
    def _within_the_epochs(cls, value, info):
        epochs = info.data.get("epochs", value)
        if value > epochs:
            raise ValueError(f"must be at most 'adversarial_training.epochs' ({epochs}), got {value}")
        return value

    def schedule(self):
        return Schedule(epochs=self.epochs, batch_size=self.batch_size, eval_batch_size=self.eval_batch_size)


class Params(StageParams):
    device: Device
    threads: Threads
    model: CnnSpec
    adversarial_training: AdversarialTrainingSection


def read_params(path):
    """What this stage reads of params.yaml (all of it is listed in dvc.yaml)."""
    return load_params(Params, path)


def hold_out(images, labels, count, seed):
    """(kept training set, held-out set): `count` images drawn by a permutation seeded with seed."""
    if count >= len(labels):
        raise StageError(f"params.yaml: 'adversarial_training.guard.images' ({count}) must be fewer than the "
                         f"{len(labels)} training images")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).to(labels.device)
    held, kept = order[:count], order[count:]
    return (images[kept], labels[kept]), (images[held], labels[held])


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--model", required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    p = read_params(args.params)
    a = p.adversarial_training
    device, threads = set_up(p.device, p.threads)
    (images, labels), test = load_model_inputs(args.data, device)
    train, held_out = hold_out(images, labels, a.guard.images, a.seed)
    epsilon, step_size = model_units(a.epsilon), model_units(a.step_size)
    guard = CollapseGuard(*held_out, epsilon=epsilon, steps=a.guard.pgd_steps, max_drop=a.guard.max_drop,
                          bounds=PIXEL_RANGE, batch_size=a.eval_batch_size)
    schedule = a.schedule()
    stopwatch = Stopwatch(NAME, device, threads)
    spec = a.model or p.model
    model = seeded_cnn(spec, a.seed, device)
    optimizer = graph_safe_adam(model.parameters(), a.lr, device)
    steps_per_epoch = math.ceil(len(train[1]) / schedule.batch_size)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(  # lr rises linearly from a.lr / 25 to a.lr and falls back
        optimizer, max_lr=a.lr, total_steps=schedule.epochs * steps_per_epoch, pct_start=0.5,
        anneal_strategy="linear", cycle_momentum=False)
    loss = adversarial_loss(epsilon=epsilon, step_size=step_size, steps=1 if a.method == "fgsm" else a.pgd_steps,
                            share=a.adversarial_share, bounds=PIXEL_RANGE,
                            ramp_steps=a.epsilon_ramp_epochs * steps_per_epoch, seed=a.seed)
    history = []
    for row in train_epochs(model, train, test, schedule, optimizer, seed=a.seed, batch_loss=loss,
                            lr_schedule=one_cycle, desc=NAME):
        history.append(row | {"guard_pgd_acc": guard.check(model, row["epoch"])})
        if guard.collapsed_at:
            break
    summary = stopwatch.report(history, len(train[1]))
    outcome = guard.summary()
    if outcome["collapsed_at_epoch"]:
        warn(f"adversarial_training: PGD accuracy collapsed at epoch {outcome['collapsed_at_epoch']}; "
             f"kept the weights of epoch {outcome['kept_epoch']}")
    kept = history[outcome["kept_epoch"] - 1] if outcome["collapsed_at_epoch"] else history[-1]
    headline = ({k: summary[k] for k in HEADLINE} | {"final_test_acc": kept["test_acc"]}
                | {"guard_pgd_acc": kept["guard_pgd_acc"], "kept_epoch": outcome["kept_epoch"]})
    with staged_outputs() as stage:
        write_trained_model(stage, NAME, model, spec, args.model, history, headline)


if __name__ == "__main__":
    cli.run(main)
