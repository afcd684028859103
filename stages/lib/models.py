"""The networks: the MNIST CNN of Problems 3 and 4 (with its self-describing checkpoints, predict and
evaluate), and the batched 2-2-1 XOR network of Problem 2."""
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stages.lib.cli import StageError
from stages.lib.data import NUM_CLASSES

ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "linear": lambda h: h}


def mnist_cnn(channels, kernel_size, hidden):
    """Blocks of conv (same padding) -> ReLU -> 2x2 max-pool, then a hidden layer and 10 logits.

    The weights are in channels-last memory format: on the CPU, convolution and max-pooling run
    about 1.4x faster that way (benchmarks/train_throughput.py).
    """
    layers, in_channels, side = [], 1, 28
    for out_channels in channels:
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                   nn.ReLU(), nn.MaxPool2d(2)]
        in_channels, side = out_channels, side // 2
    layers += [nn.Flatten(), nn.Linear(in_channels * side * side, hidden), nn.ReLU(),
               nn.Linear(hidden, NUM_CLASSES)]
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


def xor_init(seeds, hidden, init, scale):
    """Parameters of one 2-hidden-1 network per seed, stacked on a leading axis.

    init 'normal': N(0, scale²); 'uniform': U(-scale, scale); 'xavier': Glorot-uniform times scale.
    Each seed's draw depends on that seed alone, so a network is the same in any batch of seeds.
    """
    shapes = {"w1": (2, hidden), "b1": (hidden,), "w2": (hidden, 1), "b2": (1,)}
    params = {name: [] for name in shapes}
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        for name, shape in shapes.items():
            if init == "normal":
                t = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
            else:
                bound = scale if init == "uniform" else scale * (6 / (shape[0] + shape[-1])) ** 0.5
                t = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            params[name].append(t)
    return {name: torch.stack(ts) for name, ts in params.items()}


def xor_hidden(params, x, activation):
    """Hidden features (seeds x points x hidden) of inputs x (points x 2)."""
    return ACTIVATIONS[activation](torch.einsum("pi,sih->sph", x, params["w1"]) + params["b1"][:, None, :])


def xor_logits(params, x, activation):
    """Output logits (seeds x points); the probability is their sigmoid."""
    h = xor_hidden(params, x, activation)
    return (h @ params["w2"]).squeeze(-1) + params["b2"]


def save_cnn(model, spec, path):
    """A checkpoint that describes itself: the architecture arguments beside the weights."""
    torch.save({"spec": spec, "state_dict": model.state_dict()}, path)


def load_cnn(path, device):
    """The CNN saved by save_cnn at path, in eval mode; a foreign or corrupt file is a StageError."""
    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: not found; train it first (`dvc repro`; the name must be in train.models)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise StageError(f"{path}: cannot be read as a checkpoint ({type(error).__name__}); "
                         "delete it and rerun `dvc repro`") from None
    try:
        spec = checkpoint["spec"]
        model = mnist_cnn(list(spec["channels"]), int(spec["kernel_size"]), int(spec["hidden"]))
        model.load_state_dict(checkpoint["state_dict"])
    except Exception:  # a dict of other keys, other shapes, or not a dict at all
        raise StageError(f"{path}: not a checkpoint of this project's CNN (expected 'spec' and 'state_dict' "
                         "that match); rerun the stage that trains it") from None
    return model.to(device).eval()


@torch.no_grad()
def predict(model, images, batch_size):
    """Predicted labels of model-input images (an empty batch gives an empty tensor)."""
    model.eval()
    labels = [model(images[s:s + batch_size]).argmax(1) for s in range(0, len(images), batch_size)]
    return torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64, device=images.device)


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
