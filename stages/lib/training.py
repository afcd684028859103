"""Training loops: full-batch gradient descent for XOR, minibatch SGD for the MNIST CNN, and the
summary of a run."""
import math
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.lib.data import XOR_INPUTS, XOR_TARGETS, load_model_inputs
from stages.lib.io import log_run, write_csv, write_json
from stages.lib.models import evaluate, mnist_cnn, save_cnn, xor_logits
from stages.lib.runtime import resolve_device, use_threads


def train_xor(params, activation, lr, epochs, snapshot_epochs=(), desc=None):
    """Plain gradient descent on the four XOR points for every network in the batch at once.

    Summing the per-network losses leaves each network's gradient its own, so the batch is exactly
    len(seeds) independent runs. Row e of the history is the state after e updates (e = 0..epochs).
    Returns (history: loss and accuracy, epochs+1 x seeds; snapshots: {epoch: params}; final params).
    """
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    losses, accuracies, snapshots = [], [], {}
    for epoch in tqdm(range(epochs + 1), desc=desc, disable=None if desc else True, mininterval=1):
        if epoch in snapshot_epochs:
            snapshots[epoch] = {k: v.detach().clone() for k, v in params.items()}
        logits = xor_logits(params, XOR_INPUTS, activation)
        loss = F.binary_cross_entropy_with_logits(
            logits, XOR_TARGETS.expand_as(logits), reduction="none").mean(dim=1)
        losses.append(loss.detach())
        accuracies.append(((logits.detach() > 0).double() == XOR_TARGETS).double().mean(dim=1))
        if epoch == epochs:
            break
        grads = torch.autograd.grad(loss.sum(), list(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads):
                p -= lr * g
    history = {"loss": torch.stack(losses), "accuracy": torch.stack(accuracies)}
    return history, snapshots, {k: v.detach() for k, v in params.items()}


def first_solved_epoch(accuracy):
    """First epoch (row) with all four points correct, per network; None where never."""
    solved = accuracy == 1.0
    first = solved.double().argmax(dim=0)
    return [int(f) if s else None for f, s in zip(first.tolist(), solved.any(dim=0).tolist())]


def train_classifier(model, train, test, *, epochs, batch_size, lr, momentum, seed, eval_batch_size,
                     desc="train", adam=False, one_cycle=False, adversary=None, adversarial_share=1.0,
                     after_epoch=None):
    """Minibatch SGD (or Adam) with cross-entropy; batches drawn by index from a seeded permutation.

    train and test are (model-input images, labels) already on the model's device. After every epoch
    it records the running train loss and accuracy over the epoch and the test loss and accuracy.
    one_cycle: the learning rate rises linearly from lr/25 to lr over the first half and falls back.
    adversary(model, x, y, step) -> adversarial x: the loss becomes (1 - adversarial_share) CE(clean)
    + adversarial_share CE(adversarial), and the running train figures are those of the adversarial
    images. after_epoch(model, epoch) -> (extra columns for the epoch's row, stop?) runs after each
    epoch. A non-finite train loss ends training: that epoch is recorded and the run marked diverged.
    Returns (history rows, diverged).
    """
    images, labels = train
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    optimizer = (torch.optim.Adam(model.parameters(), lr=lr) if adam
                 else torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum))
    schedule = (torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.5, anneal_strategy="linear",
        cycle_momentum=False) if one_cycle else None)
    history, diverged = [], False
    steps = tqdm(total=epochs * steps_per_epoch, desc=desc, unit="step", disable=None, mininterval=1)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(labels), generator=generator).to(labels.device)
        loss_sum = torch.zeros((), device=labels.device)
        correct = torch.zeros((), device=labels.device)
        for first in range(0, len(labels), batch_size):
            index = order[first:first + batch_size]
            x, y = images[index], labels[index]
            if adversary is None:
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            else:
                x_adversarial = adversary(model, x, y, (epoch - 1) * steps_per_epoch + first // batch_size)
                model.train()
                logits = model(x_adversarial)
                loss = F.cross_entropy(logits, y)
                if adversarial_share < 1:
                    loss = adversarial_share * loss + (1 - adversarial_share) * F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule:
                schedule.step()
            loss_sum += loss.detach() * len(index)
            correct += (logits.detach().argmax(1) == y).sum()
            steps.update()
        train_loss = loss_sum.item() / len(labels)
        test_loss, test_acc = evaluate(model, *test, eval_batch_size)
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": correct.item() / len(labels),
               "test_loss": test_loss, "test_acc": test_acc}
        extra, stop = after_epoch(model, epoch) if after_epoch else ({}, False)
        history.append(row | extra)
        steps.set_postfix(epoch=epoch, test_acc=f"{test_acc:.4f}", **extra)
        if not math.isfinite(train_loss):
            diverged = True
            break
        if stop:
            break
    steps.close()
    return history, diverged


def fit_cnn(spec, train, test, *, seed, **options):
    """A CNN of architecture `spec`, its weights drawn under `seed`, trained on `train` by
    train_classifier with `options`. Returns (model, history rows, the run's summary)."""
    torch.manual_seed(seed)
    model = mnist_cnn(**spec).to(train[0].device)
    history, diverged = train_classifier(model, train, test, seed=seed, **options)
    return model, history, summarize(history, diverged)


def summarize(history, diverged):
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
        "diverged": diverged,
    }


def train_and_report(data_dir, desc, *, device, threads, spec, prepare=None, **run):
    """Train the CNN `spec` on the MNIST folder data_dir with `run` (fit_cnn's keywords) on `device`
    ('auto', 'cpu', 'cuda') with `threads`; returns (model, history, summary). prepare(train, device)
    -> (training set, more of fit_cnn's keywords) changes the training set first (the defences).
    The wall-clock figures are printed and kept in the git-ignored run log, never in a tracked output."""
    threads = use_threads(threads)
    device = resolve_device(device)
    train, test = load_model_inputs(data_dir, device)
    if prepare:
        train, more = prepare(train, device)
        run |= more
    start = time.perf_counter()
    model, history, summary = fit_cnn(spec, train, test, desc=desc, **run)
    seconds = time.perf_counter() - start
    images_per_s = len(train[1]) * summary["epochs"] / seconds
    summary |= {"threads": threads, "device": device.type}
    log_run(desc, seconds=seconds, train_images_per_s=images_per_s, threads=threads, device=device.type)
    state = "DIVERGED" if summary["diverged"] else f"test accuracy {summary['final_test_acc']:.4f}"
    print(f"{desc}: {state} after {summary['epochs']} epochs in {seconds:.1f} s "
          f"({images_per_s:.0f} training images/s on {device.type}, {threads} threads)")
    return model, history, summary


def write_trained_model(stage, name, model, spec, model_path, history, headline):
    """A trained CNN's outputs, staged: the checkpoint, metrics/train/<name>.json (headline) and
    plots/train/<name>.csv (one row per epoch)."""
    save_cnn(model, spec, stage(model_path))
    write_json(stage(f"metrics/train/{name}.json"), headline)
    write_csv(stage(f"plots/train/{name}.csv"), history)
