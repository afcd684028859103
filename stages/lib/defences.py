"""The defences, built on the attack core.

Defence 1 (retrain): adversarial copies of training images, made by the homework's attack on the
attacked model, added to the training set with their true labels.
Defences trained against an attack on the fly (adversarial training, TRADES): the params they share
(DefenceSection), the training run they share (train_defence: a held-out guard against catastrophic
overfitting, Adam on a linear one-cycle schedule, the budget ramped up from 0) around each one's own
per-batch loss, such as adversarial_loss.
"""
import math
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from stages.lib.attacks import batch_pgd, pgd, random_targets, sign_gradient_attack, uniform_noise
from stages.lib.data import PIXEL_RANGE
from stages.lib.errors import StageError, warn
from stages.lib.models import CnnSpec, predict, seeded_cnn
from stages.lib.params import Count, Section, Seed
from stages.lib.training import HEADLINE, Epochs, LearningRate, Schedule, Stopwatch, graph_safe_adam, train_epochs
from stages.lib.units import model_units

Budget = Annotated[float, Field(gt=0, le=1)]  # an epsilon or a step size, in the [0, 1] units of stages.lib.units


class Guard(Section):
    images: Count         # held out of the training set, attacked after every epoch
    pgd_steps: Count
    max_drop: Annotated[float, Field(gt=0, le=1)]  # PGD accuracy below best - max_drop: collapsed


class DefenceSection(Section):
    """What every defence trained against an attack on the fly reads of its params section; a defence's
    own section adds its attack's and its loss's keys."""
    model: CnnSpec | None  # the defended CNN's own architecture; null: the shared `model` section
    epsilon: Budget
    step_size: Budget
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
            raise ValueError(f"must be at most the section's 'epochs' ({epochs}), got {value}")
        return value

    def schedule(self):
        return Schedule(epochs=self.epochs, batch_size=self.batch_size, eval_batch_size=self.eval_batch_size)


def adversarial_copies(model, images, labels, *, share, kind, seed, step_size, max_steps, epsilon, bounds,
                       batch_size, desc=None):
    """Adversarial versions, made on `model` by the seed's attack, of a seeded `share` of `images`
    (those the model classifies correctly and the attack fools); returns (images, their true labels)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(labels), generator=generator)[:round(share * len(labels))].to(labels.device)
    x, y = images[chosen], labels[chosen]
    correct = predict(model, x, batch_size) == y
    x, y = x[correct], y[correct]
    targets = random_targets(y, generator).to(y.device) if kind == "targeted" else None
    adversarial, success, _ = sign_gradient_attack(model, x, y, targets=targets, step_size=step_size,
                                                   max_steps=max_steps, epsilon=epsilon, bounds=bounds,
                                                   batch_size=batch_size, desc=desc)
    return adversarial[success], y[success]


def adversarial_loss(*, epsilon, step_size, steps, share, bounds, ramp_steps=0, seed=0):
    """The per-batch loss of adversarial training, (1 - share) CE(clean) + share CE(adversarial), for
    training.train_epochs. Its examples start uniformly at random in the epsilon ball (the noise a pure
    function of seed and the training step) and take `steps` sign-gradient steps of step_size, never
    stopping early (attacks.batch_pgd): steps=1 is the fast FGSM of Wong et al. 2020, more is PGD of Madry
    et al. 2018. Over the first ramp_steps training steps the budget (and the step size with it) rises
    linearly from 0 to epsilon. The logits returned (for the running accuracy) are the adversarial
    examples'. Every step runs the same tensor operations with no host sync: `step` may be a 0-dim tensor
    on the device, as it is when a GPU replays the training step as a CUDA graph."""
    def loss(model, x, y, step):
        step = torch.as_tensor(step, device=x.device)
        scale = ((step + 1) / ramp_steps).clamp(max=1.0) if ramp_steps else 1.0
        adversarial = batch_pgd(model, x, y, epsilon=scale * epsilon, step_size=scale * step_size, steps=steps,
                                bounds=bounds, noise=uniform_noise(x.shape, seed, step, x.device))
        model.train()
        logits = model(adversarial)
        value = F.cross_entropy(logits, y)
        if share < 1:
            value = share * value + (1 - share) * F.cross_entropy(model(x), y)
        return value, logits
    return loss


def hold_out(images, labels, count, seed):
    """(kept training set, held-out set): `count` images drawn by a permutation seeded with seed."""
    if count >= len(labels):
        raise StageError(f"params.yaml: the guard's 'images' ({count}) must be fewer than the {len(labels)} "
                         "training images")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).to(labels.device)
    held, kept = order[:count], order[count:]
    return (images[kept], labels[kept]), (images[held], labels[held])


def train_defence(name, section, spec, batch_loss, train, test, *, device, threads, static_steps=None):
    """A CNN of architecture spec trained as `section` says with the per-batch loss batch_loss(ramp_steps)
    builds (ramp_steps: the training steps over which its budget rises from 0), guarded against
    catastrophic overfitting: after every epoch PGD attacks the held-out guard images, and when their
    accuracy falls more than guard.max_drop below its best, training stops with the best epoch's weights.
    Returns (model, history rows with the guard's accuracy, the headline metrics)."""
    train, held_out = hold_out(*train, section.guard.images, section.seed)
    guard = CollapseGuard(*held_out, epsilon=model_units(section.epsilon), steps=section.guard.pgd_steps,
                          max_drop=section.guard.max_drop, bounds=PIXEL_RANGE, batch_size=section.eval_batch_size)
    schedule = section.schedule()
    stopwatch = Stopwatch(name, device, threads)
    model = seeded_cnn(spec, section.seed, device)
    optimizer = graph_safe_adam(model.parameters(), section.lr, device)
    steps_per_epoch = math.ceil(len(train[1]) / schedule.batch_size)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(  # lr rises linearly from lr / 25 to lr and falls back
        optimizer, max_lr=section.lr, total_steps=schedule.epochs * steps_per_epoch, pct_start=0.5,
        anneal_strategy="linear", cycle_momentum=False)
    history = []
    for row in train_epochs(model, train, test, schedule, optimizer, seed=section.seed,
                            batch_loss=batch_loss(section.epsilon_ramp_epochs * steps_per_epoch),
                            lr_schedule=one_cycle, desc=name, static_steps=static_steps):
        history.append(row | {"guard_pgd_acc": guard.check(model, row["epoch"])})
        if guard.collapsed_at:
            break
    summary = stopwatch.report(history, len(train[1]))
    outcome = guard.summary()
    if outcome["collapsed_at_epoch"]:
        warn(f"{name}: PGD accuracy collapsed at epoch {outcome['collapsed_at_epoch']}; "
             f"kept the weights of epoch {outcome['kept_epoch']}")
    kept = history[outcome["kept_epoch"] - 1] if outcome["collapsed_at_epoch"] else history[-1]
    headline = ({k: summary[k] for k in HEADLINE} | {"final_test_acc": kept["test_acc"]}
                | {"guard_pgd_acc": kept["guard_pgd_acc"], "kept_epoch": outcome["kept_epoch"]})
    return model, history, headline


class CollapseGuard:
    """Catastrophic-overfitting guard: PGD accuracy on held-out images after every epoch. When it falls
    more than max_drop below its best, the run has collapsed: `check` puts the best epoch's weights
    back into the model and the caller stops training."""

    def __init__(self, images, labels, *, epsilon, steps, max_drop, bounds, batch_size):
        self.images, self.labels = images, labels
        self.epsilon, self.steps, self.max_drop = epsilon, steps, max_drop
        self.bounds, self.batch_size = bounds, batch_size
        self.best_accuracy, self.best_epoch, self.best_state = -1.0, 0, None
        self.collapsed_at = None

    def check(self, model, epoch):
        """The held-out PGD accuracy after `epoch`; on a collapse the model gets the best weights back."""
        _, fooled, _ = pgd(model, self.images, self.labels, self.epsilon, steps=self.steps,
                           step_size=self.epsilon / 4, bounds=self.bounds, batch_size=self.batch_size)
        accuracy = (~fooled).double().mean().item()
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif accuracy < self.best_accuracy - self.max_drop:
            self.collapsed_at = epoch
            model.load_state_dict(self.best_state)
        return accuracy

    def summary(self):
        return {"collapsed_at_epoch": self.collapsed_at,
                "kept_epoch": self.best_epoch if self.collapsed_at else None}
