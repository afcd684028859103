"""Training the MNIST CNN: the schedule (the `train` section of params.yaml and what the sweep and the
defences build from theirs), one loop that runs whatever optimizer, learning-rate schedule and
per-batch loss its caller built, and the summary and outputs of a run.

A caller composes a run the way pytorch/examples' mnist does:

    torch.manual_seed(seed); model = mnist_cnn(spec).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    history = list(train_epochs(model, train, test, schedule, optimizer, seed=seed))
"""
import math
import time
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field
from tqdm import tqdm

from stages.lib.io import log_run, write_csv, write_json
from stages.lib.models import evaluate, save_cnn, seeded_cnn
from stages.lib.params import Count, Name, Section, Seed

Momentum = Annotated[float, Field(ge=0, lt=1)]
MAX_EPOCHS = 1000  # a bound on run time, not on memory


def _bounded_epochs(value):
    if value > MAX_EPOCHS:
        raise ValueError(f"must be at most {MAX_EPOCHS:,} (a bound on run time: one epoch of the full MNIST takes "
                         "about 25 s on 2 CPU cores, so 1,000 epochs about 7 hours)")
    return value


Epochs = Annotated[int, Field(ge=1), AfterValidator(_bounded_epochs)]
MAX_LR = 1e6  # far past divergence for this CNN, and within float32 (the optimizer scales float32 gradients by it)
LearningRate = Annotated[float, Field(gt=0, le=MAX_LR)]
HEADLINE = ("final_test_acc", "best_test_acc", "device", "threads")  # metrics/train/<name>.json


class Schedule(Section):
    """How the training loop runs: epochs over the training set in batches of batch_size, then an
    evaluation of the test set in batches of eval_batch_size."""
    epochs: Epochs
    batch_size: Count
    eval_batch_size: Count


class TrainedModel(Section):
    seed: Seed


class TrainSection(Schedule):
    """Params section `train`: how model1, model2 and the retrained model are trained (SGD at lr with
    momentum), and each model's seed."""
    lr: LearningRate
    momentum: Momentum  # 0 is plain SGD
    models: Annotated[dict[Name, TrainedModel], Field(min_length=1)]

    def sgd(self):
        schedule = Schedule(epochs=self.epochs, batch_size=self.batch_size, eval_batch_size=self.eval_batch_size)
        return Sgd(schedule, self.lr, self.momentum)


@dataclass(frozen=True)
class Sgd:
    """How train_cnn trains: the loop's schedule, and SGD's learning rate and momentum."""
    schedule: Schedule
    lr: float
    momentum: float


def clean_loss(model, x, y, step):
    """The per-batch loss of plain training: (cross-entropy, logits)."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


def train_epochs(model, train, test, schedule, optimizer, *, seed, batch_loss=clean_loss, lr_schedule=None,
                 desc="train"):
    """Train `model` epoch by epoch, yielding each epoch's row of the history.

    Every epoch visits every training image once, in batches drawn by index from a permutation seeded
    with `seed` (the last batch is smaller when batch_size does not divide the set). Each step takes
    batch_loss(model, x, y, step) -> (loss, logits), then an optimizer step and a lr_schedule step.
    train and test are (model-input images, labels) already on the model's device. A row holds the
    running train loss and accuracy over the epoch and the test loss and accuracy after it. Training
    stops after an epoch whose train loss is not finite (the run diverged); the caller may stop sooner
    by leaving the loop.
    """
    images, labels = train
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(labels) / schedule.batch_size)
    progress = tqdm(total=schedule.epochs * steps_per_epoch, desc=desc, unit="step", disable=None, mininterval=1)
    try:
        for epoch in range(1, schedule.epochs + 1):
            model.train()
            order = torch.randperm(len(labels), generator=generator).to(labels.device)
            loss_sum = torch.zeros((), device=labels.device)
            correct = torch.zeros((), device=labels.device)
            batches = range(0, len(labels), schedule.batch_size)
            for step, first in enumerate(batches, start=(epoch - 1) * steps_per_epoch):
                index = order[first:first + schedule.batch_size]
                x, y = images[index], labels[index]
                loss, logits = batch_loss(model, x, y, step)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if lr_schedule:
                    lr_schedule.step()
                loss_sum += loss.detach() * len(index)
                correct += (logits.detach().argmax(1) == y).sum()
                progress.update()
            test_loss, test_acc = evaluate(model, *test, schedule.eval_batch_size)
            row = {"epoch": epoch, "train_loss": loss_sum.item() / len(labels),
                   "train_acc": correct.item() / len(labels), "test_loss": test_loss, "test_acc": test_acc}
            progress.set_postfix(epoch=epoch, test_acc=f"{test_acc:.4f}")
            yield row
            if not math.isfinite(row["train_loss"]):
                return
    finally:
        progress.close()


def summarize(history):
    """The summary of one training run (bit-identical on a rerun with the same threads)."""
    final = history[-1]
    finite = [row for row in history if math.isfinite(row["train_loss"])]
    best = max(history, key=lambda row: (row["test_acc"], -row["epoch"]))
    return {
        "final_test_acc": final["test_acc"],
        "final_test_loss": final["test_loss"],
        "final_train_acc": final["train_acc"],
        "final_train_loss": final["train_loss"],
        "best_test_acc": best["test_acc"],
        "best_epoch": best["epoch"],
        "min_train_loss": min((row["train_loss"] for row in finite), default=None),
        "epochs": len(history),
        "diverged": not math.isfinite(final["train_loss"]),
    }


class Stopwatch:
    """The wall-clock figures of a training run: printed and kept in the git-ignored run log, never in a
    tracked output (they change from run to run)."""

    def __init__(self, name, device, threads):
        self.name, self.device, self.threads = name, device, threads
        self.start = time.perf_counter()

    def report(self, history, n_train):
        """The run's summary (with the device and thread count), its figures printed and logged."""
        summary = summarize(history) | {"threads": self.threads, "device": self.device.type}
        seconds = time.perf_counter() - self.start
        images_per_s = n_train * summary["epochs"] / seconds
        log_run(self.name, seconds=seconds, train_images_per_s=images_per_s, threads=self.threads,
                device=self.device.type)
        state = "DIVERGED" if summary["diverged"] else f"test accuracy {summary['final_test_acc']:.4f}"
        print(f"{self.name}: {state} after {summary['epochs']} epochs in {seconds:.1f} s "
              f"({images_per_s:.0f} training images/s on {self.device.type}, {self.threads} threads)")
        return summary


def train_cnn(spec, sgd, seed, train, test, *, name, device, threads):
    """A CNN of architecture spec, its weights drawn under seed, trained on `train` by SGD as `sgd` says
    (batch order seeded by seed too). Returns (model, history rows, summary of the run)."""
    stopwatch = Stopwatch(name, device, threads)
    model = seeded_cnn(spec, seed, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=sgd.lr, momentum=sgd.momentum)
    history = list(train_epochs(model, train, test, sgd.schedule, optimizer, seed=seed, desc=name))
    return model, history, stopwatch.report(history, len(train[1]))


def write_trained_model(stage, name, model, spec, model_path, history, headline):
    """A trained CNN's outputs, staged: the checkpoint, metrics/train/<name>.json (headline) and
    plots/train/<name>.csv (one row per epoch)."""
    save_cnn(model, spec, stage(model_path))
    write_json(stage(f"metrics/train/{name}.json"), headline)
    write_csv(stage(f"plots/train/{name}.csv"), history)
