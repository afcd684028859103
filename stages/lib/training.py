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
from pathlib import Path
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
HEADLINE = ("final_test_acc",)  # metrics/train/<name>.json: the rest is in plots/train/<name>.csv and the run log


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
                 desc="train", static_steps=None):
    """Train `model` epoch by epoch, yielding each epoch's row of the history.

    Every epoch visits every training image once, in batches drawn by index from a permutation seeded
    with `seed` (the last batch is smaller when batch_size does not divide the set). Each step takes
    batch_loss(model, x, y, step) -> (loss, logits), then an optimizer step and a lr_schedule step.
    train and test are (model-input images, labels) already on the model's device. A row holds the
    running train loss and accuracy over the epoch and the test loss and accuracy after it. Training
    stops after an epoch whose train loss is not finite (the run diverged); the caller may stop sooner
    by leaving the loop.

    batch_loss must run the same tensor operations for every batch, with no host sync (no .item(), no
    branch on a tensor's value): on a GPU the step is captured as a CUDA graph, `step` is then a 0-dim
    tensor on the device, and it may be one anywhere.

    static_steps: run the full batches as one step function of fixed tensors (see FullBatchSteps),
    captured as a CUDA graph on a GPU. None (the default) does so where it pays and applies: on a GPU,
    with an optimizer a graph can replay (graph_safe). The numbers are the same either way on the CPU
    (tests/test_problem_3.py and tests/test_defences.py check it, bit for bit).
    """
    images, labels = train
    if static_steps is None:
        static_steps = images.is_cuda and graph_safe(optimizer, lr_schedule)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(labels) / schedule.batch_size)
    full_batch_steps = None
    progress = tqdm(total=schedule.epochs * steps_per_epoch, desc=desc, unit="step", disable=None, mininterval=1)
    try:
        for epoch in range(1, schedule.epochs + 1):
            model.train()
            order = torch.randperm(len(labels), generator=generator).to(labels.device)
            if static_steps and len(labels) >= schedule.batch_size:
                full_batch_steps = full_batch_steps or FullBatchSteps(model, optimizer, train, schedule.batch_size,
                                                                      batch_loss, lr_schedule)
                loss_sum, correct = full_batch_steps.run_epoch(order, (epoch - 1) * steps_per_epoch, progress)
                done = full_batch_steps.count * schedule.batch_size  # the partial last batch runs below
            else:
                loss_sum = torch.zeros((), device=labels.device)
                correct = torch.zeros((), device=labels.device)
                done = 0
            batches = range(done, len(labels), schedule.batch_size)
            for step, first in enumerate(batches, start=(epoch - 1) * steps_per_epoch + done // schedule.batch_size):
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


def graph_safe(optimizer, lr_schedule):
    """Whether a CUDA graph can replay this optimizer's step: SGD at a fixed learning rate, or Adam built
    with capturable=True (its step count on the device) whose learning rate, under a schedule, is a
    tensor the schedule writes into (graph_safe_adam builds one)."""
    lr = optimizer.param_groups[0]["lr"]
    if type(optimizer) is torch.optim.SGD:
        return lr_schedule is None
    if type(optimizer) is torch.optim.Adam:
        return optimizer.defaults["capturable"] and (lr_schedule is None or isinstance(lr, torch.Tensor))
    return False


def graph_safe_adam(parameters, lr, device):
    """Adam at learning rate lr; on a GPU, in the form a CUDA graph replays (graph_safe): capturable,
    its learning rate a tensor on the device. Elsewhere plain Adam with a float learning rate."""
    if device.type != "cuda":
        return torch.optim.Adam(parameters, lr=lr)
    return torch.optim.Adam(parameters, lr=torch.tensor(lr, device=device), capturable=True)


class FullBatchSteps:
    """The training steps of an epoch's full batches as one step function of fixed tensors: the epoch's
    batch order, the position in it, the training step's number and the running loss and accuracy sums
    all live on the device.

    On a GPU the step is captured once as a CUDA graph and replayed, one launch per step with no host
    work beyond the lr schedule's and no host sync inside the epoch (launch and host overhead, not
    arithmetic, bound a small CNN there: benchmarks/gpu_step.py). Anywhere else the same function runs
    eagerly, which is how the CPU tests check that it computes what the plain loop computes. The
    optimizer must be one a graph can replay (graph_safe), and batch_loss free of host syncs.
    """

    def __init__(self, model, optimizer, train, batch_size, batch_loss, lr_schedule):
        self.model, self.optimizer, self.batch_loss, self.lr_schedule = model, optimizer, batch_loss, lr_schedule
        self.images, self.labels = train
        device = self.labels.device
        self.batch_size = batch_size
        self.count = len(self.labels) // batch_size
        self.order = torch.zeros(self.count * batch_size, dtype=torch.int64, device=device)
        self.position = torch.zeros(1, dtype=torch.int64, device=device)
        self.first_step = torch.zeros((), dtype=torch.int64, device=device)  # the epoch's first training step
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device)
        self.captured_grads = None  # on a GPU: the gradients' memory, which the graph writes on every replay
        self.replay = self.capture() if device.type == "cuda" else self.step

    def step(self):
        index = self.order.view(self.count, self.batch_size).index_select(0, self.position)[0]
        x, y = self.images.index_select(0, index), self.labels.index_select(0, index)
        loss, logits = self.batch_loss(self.model, x, y, self.first_step + self.position[0])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.loss_sum += loss.detach() * self.batch_size
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.position += 1

    def capture(self):
        """The step as a CUDA graph. Capturing needs a few real steps first (cuDNN and cuBLAS set-up,
        the optimizer's state); they run, then the weights are put back and the optimizer's state
        zeroed (a fresh state: SGD's first step is then 0 * m + g = g, Adam's step count 0 and moments
        0), so the training that follows is exactly the uncaptured one."""
        weights = [p.detach().clone() for p in self.model.parameters()]
        self.order.copy_(torch.arange(len(self.order), device=self.order.device))
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.position.zero_()
                self.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self.step()
        self.captured_grads = [p.grad for p in self.model.parameters()]
        with torch.no_grad():
            for p, w in zip(self.model.parameters(), weights):
                p.copy_(w)
            for state in self.optimizer.state.values():
                for value in state.values():
                    if isinstance(value, torch.Tensor):
                        value.zero_()
        return graph.replay

    def run_epoch(self, order, first_step, progress):
        """Every full batch of `order` (a permutation of the training set), the first of them training
        step number first_step; returns the running (loss sum, correct count) tensors, which the partial
        last batch adds to."""
        self.order.copy_(order[:len(self.order)])
        self.position.zero_()
        self.first_step.fill_(first_step)
        self.loss_sum.zero_()
        self.correct.zero_()
        for _ in range(self.count):
            self.replay()
            if self.lr_schedule:
                self.lr_schedule.step()
            progress.update()
        return self.loss_sum, self.correct


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


ROLES = ("baseline", "defence")  # a model of the homework's Problems 3 and 4, or a defence against its attacks


def card_path(model_path):
    """The model card beside a checkpoint: models/<name>.pt -> models/<name>.json."""
    return Path(model_path).with_suffix(".json")


def write_trained_model(stage, name, model, spec, model_path, history, headline, card):
    """A trained CNN's outputs, staged: the checkpoint, its card beside it (card_path: the model's role, the
    label a reader sees and, for a defence, the homework claim it tests and a sentence on how it was
    trained; the report goes by them), metrics/train/<name>.json (headline numbers only, so that `dvc
    metrics show` stays a table of numbers) and plots/train/<name>.csv (one row per epoch)."""
    if card["role"] not in ROLES or not card.keys() <= {"role", "label", "claim", "summary"}:
        raise ValueError(f"a model card is a role of {ROLES}, a label, and optionally a claim and a summary; "
                         f"got {card!r}")
    save_cnn(model, spec, stage(model_path))
    write_json(stage(card_path(model_path)), card)
    write_json(stage(f"metrics/train/{name}.json"), headline)
    write_csv(stage(f"plots/train/{name}.csv"), history)
