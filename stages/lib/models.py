"""The MNIST CNN of Problems 3 and 4: its architecture (the `model` section of params.yaml), its
self-describing checkpoints, predict and evaluate, and the two ways attacks hold a model (frozen, and as a
model of [0, 1] images)."""
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from stages.lib.data import NUM_CLASSES
from stages.lib.errors import StageError
from stages.lib.io import mark_input, save_tensors, tensors_sha256
from stages.lib.params import Section

MAX_CHANNELS = 512  # per conv block (activations of a 1,000-image batch stay < 2 GB)
MAX_HIDDEN = 4096


class CnnSpec(Section):
    """The CNN's architecture: params section `model`, and the `spec` every checkpoint stores."""
    channels: Annotated[list[Annotated[int, Field(ge=1, le=MAX_CHANNELS)]], Field(min_length=1, max_length=4)]
    kernel_size: Annotated[int, Field(ge=1, le=27)]
    hidden: Annotated[int, Field(ge=1, le=MAX_HIDDEN)]

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value):
        if value % 2 == 0:
            raise ValueError(f"must be odd (same padding), got {value}")
        return value


def mnist_cnn(spec):
    """Blocks of conv (same padding) -> ReLU -> 2x2 max-pool, then a hidden layer and 10 logits.

    The weights are in channels-last memory format: on the CPU, convolution and max-pooling run
    about 1.4x faster that way (benchmarks/train_throughput.py).
    """
    layers, in_channels, side = [], 1, 28
    for out_channels in spec.channels:
        layers += [nn.Conv2d(in_channels, out_channels, spec.kernel_size, padding=spec.kernel_size // 2),
                   nn.ReLU(), nn.MaxPool2d(2)]
        in_channels, side = out_channels, side // 2
    layers += [nn.Flatten(), nn.Linear(in_channels * side * side, spec.hidden), nn.ReLU(),
               nn.Linear(spec.hidden, NUM_CLASSES)]
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


def model_label(name):
    """What a reader calls a model of train.models: model1 -> "model 1" (other names as they are)."""
    return re.sub(r"(?<=[A-Za-z])(\d+)$", r" \1", name)


def to_device(model, device):
    """model on device, in the memory format its convolutions run fastest in there: mnist_cnn's
    channels-last on the CPU, PyTorch's default (NCHW) on a GPU, where cuDNN's deterministic float32
    kernels are several times slower on channels-last (benchmarks/gpu_step.py --variants)."""
    model = model.to(device)
    return model if device.type == "cpu" else model.to(memory_format=torch.contiguous_format)


def save_cnn(model, spec, path):
    """A checkpoint that describes itself: the architecture beside the weights, and their sha256."""
    weights = model.state_dict()
    save_tensors({"spec": spec.model_dump(), "state_dict": weights, "sha256": tensors_sha256(weights)}, path)


def load_cnn(path, device):
    """The CNN saved by save_cnn at path, in eval mode; a foreign or corrupt file, one whose weights are not
    the sha256 it records, or not all finite, is a StageError."""
    path = Path(path)
    mark_input(path)
    if not path.is_file():
        raise StageError(f"{path}: not found; train it first (`dvc repro`; the name must be in train.models)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise StageError(f"{path}: cannot be read as a checkpoint ({type(error).__name__}); "
                         "delete it and rerun `dvc repro`") from None
    try:
        model = mnist_cnn(CnnSpec.model_validate(checkpoint["spec"]))
        model.load_state_dict(checkpoint["state_dict"])
    except Exception:  # a dict of other keys, other shapes, or not a dict at all
        raise StageError(f"{path}: not a checkpoint of this project's CNN (expected 'spec' and 'state_dict' "
                         "that match); rerun the stage that trains it") from None
    if checkpoint.get("sha256") != tensors_sha256(checkpoint["state_dict"]):
        raise StageError(f"{path}: weights differ from the sha256 the checkpoint records (the file changed after it "
                         "was written, or was written without one); retrain it (`dvc repro -f` of the stage that "
                         "writes it)")
    for name, tensor in model.state_dict().items():
        if not torch.isfinite(tensor).all():
            raise StageError(f"{path}: parameter '{name}' holds NaN or infinite values (training diverged?); "
                             "retrain it (`dvc repro -f` of the stage that writes it)")
    return to_device(model, device).eval()


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


def seeded_cnn(spec, seed, device):
    """A fresh CNN of architecture spec, its initial weights drawn under `seed` (torch's global seed)."""
    torch.manual_seed(seed)
    return to_device(mnist_cnn(spec), device)


@contextmanager
def frozen(model):
    """The model in eval mode with its parameters' requires_grad off inside the block (an attack's
    gradients reach the images only), each parameter's own flag put back after."""
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), requires_grad):
            p.requires_grad_(flag)


class UnitRangeModel(nn.Module):
    """A model of images in `bounds`, as a model of images in [0, 1]: what torchattacks expects."""

    def __init__(self, model, bounds):
        super().__init__()
        self.model, self.low, self.span = model, bounds[0], bounds[1] - bounds[0]

    def forward(self, x):
        return self.model(self.from_unit(x))

    def to_unit(self, x):
        return (x - self.low) / self.span

    def from_unit(self, x):
        return x * self.span + self.low
