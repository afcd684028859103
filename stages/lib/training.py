"""Training loops: full-batch gradient descent for XOR, minibatch SGD for the MNIST CNN."""
import math
import time

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.lib import config
from stages.lib.data import load_split
from stages.lib.io import write_json
from stages.lib.models import cnn_spec, mnist_cnn, xor_logits

XOR_INPUTS = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float64)
XOR_TARGETS = torch.tensor([0, 1, 1, 0], dtype=torch.float64)
PIXEL_RANGE = (-1.0, 1.0)  # the seed's pixel range; the attacks clip to it
MNIST_DIR = "data/mnist"  # the fetch_mnist output


def train_xor(params, activation, lr, epochs, snapshot_epochs=()):
    """Plain gradient descent on the four XOR points for every network in the batch at once.

    Summing the per-network losses leaves each network's gradient its own, so the batch is exactly
    len(seeds) independent runs. Row e of the history is the state after e updates (e = 0..epochs).
    Returns (history: loss and accuracy, epochs+1 x seeds; snapshots: {epoch: params}; final params).
    """
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    losses, accuracies, snapshots = [], [], {}
    for epoch in range(epochs + 1):
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


def to_model_input(images):
    """uint8 images (N x 28 x 28) -> float32 N x 1 x 28 x 28 in PIXEL_RANGE."""
    low, high = PIXEL_RANGE
    return (images.to(torch.float32) * ((high - low) / 255.0) + low).unsqueeze(1)


@torch.no_grad()
def evaluate(model, images, labels, batch_size):
    """(mean cross-entropy, accuracy) of model on model-input images."""
    model.eval()
    loss, correct = torch.zeros((), device=images.device), torch.zeros((), device=images.device)
    for start in range(0, len(labels), batch_size):
        logits = model(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    return loss.item() / len(labels), correct.item() / len(labels)


@torch.no_grad()
def predict(model, images, batch_size):
    model.eval()
    return torch.cat([model(images[s:s + batch_size]).argmax(1) for s in range(0, len(images), batch_size)])


def train_classifier(model, train, test, *, epochs, batch_size, lr, momentum, seed, eval_batch_size,
                     desc="train"):
    """Minibatch SGD with cross-entropy; batches drawn by index from a seeded permutation.

    train and test are (model-input images, labels) already on the model's device. After every epoch
    it records the running train loss and accuracy over the epoch and the test loss and accuracy.
    A non-finite train loss ends training: that epoch is recorded and the run marked diverged.
    Returns (history rows, diverged, seconds spent in the training steps).
    """
    images, labels = train
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    history, diverged, seconds = [], False, 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(labels), generator=generator).to(labels.device)
        loss_sum = torch.zeros((), device=labels.device)
        correct = torch.zeros((), device=labels.device)
        start = time.perf_counter()
        for first in tqdm(range(0, len(labels), batch_size), desc=f"{desc} epoch {epoch}/{epochs}",
                          leave=False, disable=None):
            index = order[first:first + batch_size]
            x, y = images[index], labels[index]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(index)
            correct += (logits.detach().argmax(1) == y).sum()
        seconds += time.perf_counter() - start
        train_loss = loss_sum.item() / len(labels)
        test_loss, test_acc = evaluate(model, *test, eval_batch_size)
        history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": correct.item() / len(labels),
                        "test_loss": test_loss, "test_acc": test_acc})
        if not math.isfinite(train_loss):
            diverged = True
            break
    return history, diverged, seconds


def load_mnist_tensors(data_dir, device):
    """(train, test), each (model-input images, labels) on device, from the fetch_mnist output."""
    splits = []
    for split in ("train", "test"):
        images, labels = load_split(data_dir, split)
        splits.append((to_model_input(images).to(device), labels.to(device)))
    return tuple(splits)


def summarize(history, diverged, seconds, n_train):
    """The metrics of one training run; everything but 'timing' is bit-identical on a rerun."""
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
        "timing": {"seconds": seconds, "train_images_per_s": n_train * len(history) / seconds},
    }


def read_run_params(params, section):
    """Epochs, momentum and evaluation batch size of a training section ('train' or 'sweep')."""
    return {
        "epochs": config.number(params, f"{section}.epochs", integer=True, low=1),
        "momentum": config.number(params, f"{section}.momentum", low=0, high=1, high_open=True),
        "eval_batch_size": config.number(params, f"{section}.eval_batch_size", integer=True, low=1),
    }


def fit_cnn(params, run, *, batch_size, lr, seed, desc, data_dir=MNIST_DIR):
    """Validate the model params, then build the CNN from `seed` and train it. Returns (model, history, metrics)."""
    spec = cnn_spec(params)
    device = config.resolve_device(params)
    train, test = load_mnist_tensors(data_dir, device)
    torch.manual_seed(seed)
    model = mnist_cnn(**spec).to(device)
    history, diverged, seconds = train_classifier(
        model, train, test, epochs=run["epochs"], batch_size=batch_size, lr=lr, momentum=run["momentum"],
        seed=seed, eval_batch_size=run["eval_batch_size"], desc=desc)
    metrics = {"batch_size": batch_size, "lr": lr, "seed": seed,
               **summarize(history, diverged, seconds, len(train[1])), "device": device.type}
    return model, history, metrics


def point_name(batch_size, lr):
    """The file stem of a sweep point; dvc.yaml spells it ${item.batch_size}-${item.lr}."""
    return f"{batch_size}-{lr}"


def write_run(stage, history, metrics, metrics_path, curves_path):
    pd.DataFrame(history).to_csv(stage(curves_path), index=False, float_format="%.9g")
    write_json(stage(metrics_path), metrics)


def report(name, metrics):
    state = "DIVERGED" if metrics["diverged"] else f"test accuracy {metrics['final_test_acc']:.4f}"
    print(f"{name}: {state} after {metrics['epochs']} epochs "
          f"({metrics['timing']['train_images_per_s']:.0f} training images/s on {metrics['device']})")
