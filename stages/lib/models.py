"""The networks: the MNIST CNN of Problems 3 and 4, and the batched 2-2-1 XOR network of Problem 2."""
import torch
from torch import nn

from stages.lib import config
from stages.lib.data import NUM_CLASSES
from stages.lib.io import load_tensors

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


def cnn_spec(params):
    """The CNN's layer sizes from params `model`, validated."""
    channels = config.number_list(params, "model.channels", integer=True, low=1)
    if len(channels) > 4:
        raise config.StageError(f"params.yaml: 'model.channels' allows at most 4 conv blocks on 28 x 28 images, got {len(channels)}")
    kernel_size = config.number(params, "model.kernel_size", integer=True, low=1)
    if kernel_size % 2 == 0:
        raise config.StageError(f"params.yaml: 'model.kernel_size' must be odd (same padding), got {kernel_size}")
    return {"channels": channels, "kernel_size": kernel_size,
            "hidden": config.number(params, "model.hidden", integer=True, low=1)}


def load_cnn(params, name, device):
    """The trained CNN `name` (a key of train.models) from models/<name>.pt, in eval mode."""
    path = f"models/{name}.pt"
    model = mnist_cnn(**cnn_spec(params))
    state = load_tensors(path, {key: None for key in model.state_dict()})
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise config.StageError(f"{path}: weights do not match params 'model'; rerun `dvc repro train@{name}`") from None
    return model.to(device).eval()
